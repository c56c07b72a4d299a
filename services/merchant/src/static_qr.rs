//! The static VietQR of a merchant's virtual account.
//!
//! A payer's bank app reads: the collection bank's BIN and the virtual account (38/01), no
//! amount (static, 01 = `11`: the payer types it), the MCC (52), and the merchant's name (59,
//! the trading name when there is one) and city (60) in upper-case ASCII without diacritics,
//! cut to EMVCo's 25 and 15 characters. The city is the last comma-separated part of the
//! address, without a leading "TP." / "Thành phố" / "Tỉnh" (`…, TP. Hồ Chí Minh` → `HO CHI
//! MINH`); when nothing is left, `VIET NAM`.

use crate::fold::qr_text;

/// EMVCo's limits for fields 59 and 60.
pub const NAME_CHARS_MAX: usize = 25;
pub const CITY_CHARS_MAX: usize = 15;
const CITY_FALLBACK: &str = "VIET NAM";

/// What goes into the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticQrInput<'a> {
    pub collection_bank_bin: &'a str,
    pub virtual_account_number: &'a str,
    pub mcc: &'a str,
    pub business_name: &'a str,
    pub trading_name: Option<&'a str>,
    pub address: &'a str,
}

/// The city for field 60, from an address.
pub fn city_of(address: &str) -> String {
    let last = address.rsplit(',').next().unwrap_or_default();
    // Fold first, so that the prefixes below are matched in ASCII.
    let folded = qr_text(last, usize::MAX);
    let mut rest = folded.as_str();
    for prefix in ["THANH PHO ", "TP. ", "TP.", "TP ", "TINH ", "T. "] {
        if let Some(r) = rest.strip_prefix(prefix) {
            rest = r;
            break;
        }
    }
    let city = qr_text(rest, CITY_CHARS_MAX);
    if city.is_empty() {
        CITY_FALLBACK.to_string()
    } else {
        city
    }
}

/// The payload string, checked by the VietQR encoder.
pub fn payload(input: &StaticQrInput<'_>) -> Result<String, vietqr::Error> {
    let name_source = input.trading_name.unwrap_or(input.business_name);
    let mut name = qr_text(name_source, NAME_CHARS_MAX);
    if name.is_empty() {
        name = qr_text(input.business_name, NAME_CHARS_MAX);
    }
    let mut builder =
        vietqr::VietQrBuilder::new(input.collection_bank_bin, input.virtual_account_number)
            .point_of_initiation(vietqr::PointOfInitiation::Static)
            .mcc(input.mcc)
            .merchant_city(city_of(input.address));
    if !name.is_empty() {
        builder = builder.merchant_name(name);
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cities() {
        for (address, city) in [
            ("Sạp 45, chợ Bến Thành, Q.1, TP. Hồ Chí Minh", "HO CHI MINH"),
            ("12 Lê Lợi, Phường Phú Hội, Thành phố Huế", "HUE"),
            ("Km 5 + 300, QL1A, Tỉnh Đồng Nai", "DONG NAI"),
            ("Chợ Đông Ba, Thừa Thiên Huế", "THUA THIEN HUE"),
            ("Số 1, Bà Rịa - Vũng Tàu", "BA RIA - VUNG"),
            ("Sạp 1", "SAP 1"),
            ("Sạp 1, ", CITY_FALLBACK),
        ] {
            assert_eq!(city_of(address), city, "{address}");
        }
    }

    #[test]
    fn payload_decodes_to_what_went_in() {
        let p = payload(&StaticQrInput {
            collection_bank_bin: "970436",
            virtual_account_number: "886800000000015",
            mcc: "5812",
            business_name: "Hộ kinh doanh Nguyễn Thị Lan",
            trading_name: Some("Bún bò Cô Lan"),
            address: "Sạp 45, chợ Bến Thành, Q.1, TP. Hồ Chí Minh",
        })
        .unwrap();
        let qr = vietqr::decode(&p).unwrap();
        assert_eq!(qr.bank_bin(), Some("970436"));
        assert_eq!(qr.account(), Some("886800000000015"));
        assert_eq!(qr.point_of_initiation, vietqr::PointOfInitiation::Static);
        assert_eq!(qr.amount, None);
        assert_eq!(qr.mcc.as_deref(), Some("5812"));
        assert_eq!(qr.merchant_name.as_deref(), Some("BUN BO CO LAN"));
        assert_eq!(qr.merchant_city.as_deref(), Some("HO CHI MINH"));
    }
}
