//! The VietQR model and the encoder; the strict decoder and the rules both share are in
//! [`crate::rules`].

use std::fmt;

use crate::crc::{crc16_ccitt_false, format_crc};
use crate::error::{Error, ErrorKind};
pub use crate::rules::decode;
use crate::rules::*;
use crate::tlv::{self, path};

/// GUID of NAPAS VietQR (merchant account information 38).
pub const VIETQR_GUID: &str = "A000000727";
/// GUID of VNPAY-QR (merchant account information 26).
pub const VNPAYQR_GUID: &str = "A000000775";
/// ISO 4217 numeric code of the Vietnamese dong, which has no minor units.
pub const VND: &str = "704";

pub(crate) const ID_PAYLOAD_FORMAT: u8 = 0;
pub(crate) const ID_POINT_OF_INITIATION: u8 = 1;
pub(crate) const ID_MCC: u8 = 52;
pub(crate) const ID_CURRENCY: u8 = 53;
pub(crate) const ID_AMOUNT: u8 = 54;
pub(crate) const ID_COUNTRY: u8 = 58;
pub(crate) const ID_MERCHANT_NAME: u8 = 59;
pub(crate) const ID_MERCHANT_CITY: u8 = 60;
pub(crate) const ID_ADDITIONAL: u8 = 62;
pub(crate) const ID_CRC: u8 = 63;

/// Ids 02..=25: primitive merchant identifiers reserved for card networks.
pub(crate) const NETWORK_IDS: std::ops::RangeInclusive<u8> = 2..=25;
/// Ids 26..=51: merchant account information templates, told apart by GUID.
pub(crate) const TEMPLATE_IDS: std::ops::RangeInclusive<u8> = 26..=51;

pub(crate) const MAX_GUID_LEN: usize = 32;
pub(crate) const MAX_ACCOUNT_LEN: usize = 19;
pub(crate) const MAX_AMOUNT_LEN: usize = 13;

/// Field 01: whether the code is reusable or for one payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PointOfInitiation {
    /// `11`: the same code for many payments.
    Static,
    /// `12`: a code for one payment, usually with an amount.
    Dynamic,
}

impl PointOfInitiation {
    /// The two-digit code written in field 01.
    pub fn code(self) -> &'static str {
        match self {
            Self::Static => "11",
            Self::Dynamic => "12",
        }
    }

    pub(crate) fn from_code(code: &str) -> Option<Self> {
        match code {
            "11" => Some(Self::Static),
            "12" => Some(Self::Dynamic),
            _ => None,
        }
    }
}

/// VietQR sub 02: where the money goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceCode {
    /// `QRIBFTTA`: fast transfer to a bank account.
    ToAccount,
    /// `QRIBFTTC`: fast transfer to a card number.
    ToCard,
}

impl ServiceCode {
    /// The code written in the template.
    pub fn code(self) -> &'static str {
        match self {
            Self::ToAccount => "QRIBFTTA",
            Self::ToCard => "QRIBFTTC",
        }
    }

    pub(crate) fn from_code(code: &str) -> Option<Self> {
        match code {
            "QRIBFTTA" => Some(Self::ToAccount),
            "QRIBFTTC" => Some(Self::ToCard),
            _ => None,
        }
    }
}

/// The payment scheme a merchant account belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// NAPAS VietQR, GUID `A000000727`.
    VietQr,
    /// VNPAY-QR, GUID `A000000775`.
    VnPayQr,
    /// Another template scheme, named by its GUID.
    Other(String),
    /// A card network's primitive merchant identifier (ids 02..=25).
    Network(u8),
}

impl Scheme {
    /// The scheme a template GUID names (compared ignoring ASCII case).
    pub fn from_guid(guid: &str) -> Self {
        if guid.eq_ignore_ascii_case(VIETQR_GUID) {
            Self::VietQr
        } else if guid.eq_ignore_ascii_case(VNPAYQR_GUID) {
            Self::VnPayQr
        } else {
            Self::Other(guid.to_owned())
        }
    }

    /// A short name: `VIETQR`, `VNPAYQR`, the GUID, or `NETWORK-nn`.
    pub fn name(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::VietQr => f.write_str("VIETQR"),
            Self::VnPayQr => f.write_str("VNPAYQR"),
            Self::Other(guid) => f.write_str(guid),
            Self::Network(id) => write!(f, "NETWORK-{id:02}"),
        }
    }
}

/// A NAPAS VietQR merchant account template (normally id 38).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VietQrAccount {
    /// The template id, normally 38.
    pub id: u8,
    /// Sub 01/00: the acquirer (bank) BIN, six digits.
    pub bank_bin: String,
    /// Sub 01/01: the account or card number, 1..=19 ASCII letters or digits.
    pub account: String,
    /// Sub 02: transfer to an account or to a card.
    pub service_code: ServiceCode,
    /// Other subs of the beneficiary organisation (01/02 onwards), in order.
    pub beneficiary_others: Vec<(u8, String)>,
    /// Other subs of the template (03 onwards), in order.
    pub others: Vec<(u8, String)>,
}

/// Any merchant account information template that is not VietQR, kept whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateAccount {
    /// The template id, 26..=51.
    pub id: u8,
    /// Every sub, including the GUID (sub 00), in the order written.
    pub fields: Vec<(u8, String)>,
}

impl TemplateAccount {
    /// The value of sub `id`, if present.
    pub fn field(&self, id: u8) -> Option<&str> {
        self.fields
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, v)| v.as_str())
    }

    /// The GUID (sub 00).
    pub fn guid(&self) -> Option<&str> {
        self.field(0)
    }

    /// The scheme named by the GUID.
    pub fn scheme(&self) -> Scheme {
        Scheme::from_guid(self.guid().unwrap_or_default())
    }

    /// The template value exactly as written (the subs re-joined in order).
    pub fn raw(&self) -> Result<String, Error> {
        let container = path("", self.id);
        let mut out = String::new();
        for (id, value) in &self.fields {
            tlv::push(&mut out, &container, *id, value)?;
        }
        Ok(out)
    }
}

/// One merchant account information field (ids 02..=51).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MerchantAccount {
    /// NAPAS VietQR, decoded into its parts.
    VietQr(VietQrAccount),
    /// Another scheme's template (VNPAY-QR and others), kept whole.
    Template(TemplateAccount),
    /// A card network's primitive merchant identifier (ids 02..=25).
    Network {
        /// The id, 02..=25.
        id: u8,
        /// The value as written.
        value: String,
    },
}

impl MerchantAccount {
    /// The field id.
    pub fn id(&self) -> u8 {
        match self {
            Self::VietQr(a) => a.id,
            Self::Template(t) => t.id,
            Self::Network { id, .. } => *id,
        }
    }

    /// The scheme this account belongs to.
    pub fn scheme(&self) -> Scheme {
        match self {
            Self::VietQr(_) => Scheme::VietQr,
            Self::Template(t) => t.scheme(),
            Self::Network { id, .. } => Scheme::Network(*id),
        }
    }
}

/// Field 62, additional data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdditionalData {
    /// Sub 01.
    pub bill_number: Option<String>,
    /// Sub 03.
    pub store_label: Option<String>,
    /// Sub 05.
    pub reference_label: Option<String>,
    /// Sub 06.
    pub customer_label: Option<String>,
    /// Sub 07.
    pub terminal_label: Option<String>,
    /// Sub 08, the transfer message shown to the payer.
    pub purpose: Option<String>,
    /// Every other sub (02 mobile number, 04 loyalty number, 09, ...), in order.
    pub others: Vec<(u8, String)>,
}

impl AdditionalData {
    /// True when no sub is set (field 62 is then left out).
    pub fn is_empty(&self) -> bool {
        self.named().iter().all(|(_, v)| v.is_none()) && self.others.is_empty()
    }

    pub(crate) fn named(&self) -> [(u8, &Option<String>); 6] {
        [
            (1, &self.bill_number),
            (3, &self.store_label),
            (5, &self.reference_label),
            (6, &self.customer_label),
            (7, &self.terminal_label),
            (8, &self.purpose),
        ]
    }

    pub(crate) fn named_slot(&mut self, id: u8) -> Option<&mut Option<String>> {
        match id {
            1 => Some(&mut self.bill_number),
            3 => Some(&mut self.store_label),
            5 => Some(&mut self.reference_label),
            6 => Some(&mut self.customer_label),
            7 => Some(&mut self.terminal_label),
            8 => Some(&mut self.purpose),
            _ => None,
        }
    }
}

/// A decoded VietQR / EMVCo merchant-presented QR payload.
///
/// [`decode`] only returns values that [`VietQr::encode`] accepts; the fields
/// are public, and `encode` re-checks every rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VietQr {
    /// Field 01.
    pub point_of_initiation: PointOfInitiation,
    /// Fields 02..=51, in order. At least one.
    pub merchant_accounts: Vec<MerchantAccount>,
    /// Field 52, merchant category code (four digits).
    pub mcc: Option<String>,
    /// Field 53, ISO 4217 numeric currency (`704` for VND).
    pub currency: String,
    /// Field 54, the amount as written (no decimals for VND).
    pub amount: Option<String>,
    /// Field 58, ISO 3166 alpha-2 country (`VN`).
    pub country: String,
    /// Field 59.
    pub merchant_name: Option<String>,
    /// Field 60.
    pub merchant_city: Option<String>,
    /// Field 62.
    pub additional: AdditionalData,
    /// Every other top-level field (55, 56, 57, 61, 64..=99), in order.
    pub unknown: Vec<(u8, String)>,
}

impl VietQr {
    /// The VietQR template, if there is one.
    pub fn vietqr_account(&self) -> Option<&VietQrAccount> {
        self.merchant_accounts.iter().find_map(|a| match a {
            MerchantAccount::VietQr(v) => Some(v),
            _ => None,
        })
    }

    /// The account payers' apps use: the VietQR template if present, else the first one.
    pub fn primary_account(&self) -> Option<&MerchantAccount> {
        self.merchant_accounts
            .iter()
            .find(|a| matches!(a, MerchantAccount::VietQr(_)))
            .or_else(|| self.merchant_accounts.first())
    }

    /// The scheme of [`Self::primary_account`].
    pub fn scheme(&self) -> Option<Scheme> {
        self.primary_account().map(MerchantAccount::scheme)
    }

    /// VietQR acquirer BIN.
    pub fn bank_bin(&self) -> Option<&str> {
        self.vietqr_account().map(|a| a.bank_bin.as_str())
    }

    /// VietQR account or card number.
    pub fn account(&self) -> Option<&str> {
        self.vietqr_account().map(|a| a.account.as_str())
    }

    /// VietQR service code.
    pub fn service_code(&self) -> Option<ServiceCode> {
        self.vietqr_account().map(|a| a.service_code)
    }

    /// Writes the payload: 00, 01, the merchant accounts in order, 52, 53, 54,
    /// 58, 59, 60, 62, the unknown fields in order, then 63 with the CRC.
    ///
    /// Refuses (with the error the decoder would give) anything [`decode`]
    /// would reject.
    pub fn encode(&self) -> Result<String, Error> {
        let mut out = String::new();
        let mut seen = [false; 100];
        tlv::push(&mut out, "", ID_PAYLOAD_FORMAT, "01")?;
        tlv::push(
            &mut out,
            "",
            ID_POINT_OF_INITIATION,
            self.point_of_initiation.code(),
        )?;

        if self.merchant_accounts.is_empty() {
            return Err(Error::new("payload", ErrorKind::NoMerchantAccount));
        }
        for account in &self.merchant_accounts {
            let id = account.id();
            claim(&mut seen, "", id)?;
            let value = encode_account(account)?;
            tlv::push(&mut out, "", id, &value)?;
        }

        if let Some(mcc) = &self.mcc {
            check_mcc(mcc)?;
            tlv::push(&mut out, "", ID_MCC, mcc)?;
        }
        check_currency(&self.currency)?;
        tlv::push(&mut out, "", ID_CURRENCY, &self.currency)?;
        if let Some(amount) = &self.amount {
            check_amount(amount, &self.currency)?;
            tlv::push(&mut out, "", ID_AMOUNT, amount)?;
        }
        check_country(&self.country)?;
        tlv::push(&mut out, "", ID_COUNTRY, &self.country)?;
        if let Some(name) = &self.merchant_name {
            tlv::push(&mut out, "", ID_MERCHANT_NAME, name)?;
        }
        if let Some(city) = &self.merchant_city {
            tlv::push(&mut out, "", ID_MERCHANT_CITY, city)?;
        }
        if !self.additional.is_empty() {
            let value = encode_additional(&self.additional)?;
            tlv::push(&mut out, "", ID_ADDITIONAL, &value)?;
        }
        for (id, value) in &self.unknown {
            if !is_unknown_top_level(*id) {
                return Err(Error::new(path("", *id), ErrorKind::ReservedId));
            }
            claim(&mut seen, "", *id)?;
            tlv::push(&mut out, "", *id, value)?;
        }

        out.push_str("6304");
        let crc = crc16_ccitt_false(out.as_bytes());
        out.push_str(&format_crc(crc));

        // Belt and braces: never hand out a string the decoder rejects.
        decode(&out)?;
        Ok(out)
    }
}
