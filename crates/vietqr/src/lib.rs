//! VietQR: EMVCo merchant-presented QR strings as NAPAS's VietQR uses them.
//!
//! - [`decode`]: a strict decoder returning a typed [`VietQr`], or an [`Error`]
//!   naming the field (e.g. `"38/01/00"`) and the rule broken.
//! - [`VietQrBuilder`] and [`VietQr::encode`]: an encoder that refuses whatever
//!   the decoder would reject, so encode then decode round-trips.
//! - [`render_png`], [`render_svg`] and [`render_text`]: the QR image (level M, 4-module quiet
//!   zone), or text for a terminal.
//!
//! Format notes: each field is a two-digit id, a two-digit length and the
//! value; lengths count characters, not UTF-8 bytes. Field 00 (`"01"`) comes
//! first and 63 (the CRC) last; the CRC is CRC-16/CCITT-FALSE over the UTF-8
//! bytes up to and including `"6304"`, four hex digits compared ignoring case.
//! Lengths count Unicode scalar values, so text should be in NFC (precomposed)
//! form, as Vietnamese keyboards produce it.
//!
//! ```
//! let qr = vietqr::decode(
//!     "00020101021238530010A0000007270123000697041601092576788590208QRIBFTTA\
//!      5303704540410005802VN62150811Chuyen tien6304BBB8",
//! )?;
//! assert_eq!(qr.bank_bin(), Some("970416"));
//! assert_eq!(qr.account(), Some("257678859"));
//! assert_eq!(qr.amount.as_deref(), Some("1000"));
//! assert_eq!(qr.additional.purpose.as_deref(), Some("Chuyen tien"));
//! # Ok::<(), vietqr::Error>(())
//! ```

mod builder;
pub mod crc;
mod error;
mod model;
mod render;
mod rules;
mod tlv;

pub use builder::VietQrBuilder;
pub use error::{DecodeError, Error, ErrorKind};
pub use model::{
    AdditionalData, MerchantAccount, PointOfInitiation, Scheme, ServiceCode, TemplateAccount,
    VIETQR_GUID, VND, VNPAYQR_GUID, VietQr, VietQrAccount, decode,
};
pub use render::{MAX_MODULE_PX, QUIET_ZONE, RenderError, render_png, render_svg, render_text};
