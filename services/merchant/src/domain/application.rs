//! Onboarding applications: raw strings in, a parsed vendor or biller application out, or every
//! field violation at once.
//!
//! [`RawApplication`] is what a form or an RPC carries. [`VendorApplication::parse`] and
//! [`BillerApplication::parse`] check every field and collect each violation as a field name and
//! a message (`tax_code: check digit is 3, expected 7`), so a gRPC layer can return them all as
//! `google.rpc.BadRequest` field violations instead of one at a time.
//!
//! What each kind needs:
//!
//! | field | vendor | biller |
//! |---|---|---|
//! | `business_name`, `tax_code`, `phone`, `address`, `mcc`, `settlement_bank_bin`, `settlement_account_number` | required | required |
//! | `trading_name` | optional | optional |
//! | `owner_citizen_id` | required | optional (the legal representative's) |
//! | `market_name`, `stall_number` | required | must be empty |
//! | `biller_category` | must be empty | required |
//!
//! A field is empty when it is empty or whitespace. A field that must be empty is refused rather
//! than ignored, so that nothing a caller sent is silently dropped.

use std::fmt;

use paymesh_vn::{BankAccountNumber, BankBin, CitizenId, PhoneNumber, TaxCode};

use super::{
    Address, BillerCategory, MarketName, Mcc, MerchantKind, MerchantName, StallNumber, TradingName,
};

/// An application as typed: every field a string, none checked.
///
/// `Debug` leaves out the citizen id, the phone number and the account number (DESIGN §7), and
/// shows the tax code only as [`TaxCode`]'s `Display` shows it: a household business's (its
/// owner's citizen id) masked, one that does not parse left out.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RawApplication {
    pub business_name: String,
    pub trading_name: String,
    pub tax_code: String,
    pub owner_citizen_id: String,
    pub phone: String,
    pub address: String,
    pub market_name: String,
    pub stall_number: String,
    pub mcc: String,
    pub settlement_bank_bin: String,
    pub settlement_account_number: String,
    pub biller_category: String,
}

impl fmt::Debug for RawApplication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |s: &str| if s.is_empty() { "" } else { "<redacted>" };
        let tax_code = TaxCode::parse(&self.tax_code)
            .map_or_else(|_| redacted(&self.tax_code).to_owned(), |t| t.to_string());
        f.debug_struct("RawApplication")
            .field("business_name", &self.business_name)
            .field("trading_name", &self.trading_name)
            .field("tax_code", &tax_code)
            .field("owner_citizen_id", &redacted(&self.owner_citizen_id))
            .field("phone", &redacted(&self.phone))
            .field("address", &self.address)
            .field("market_name", &self.market_name)
            .field("stall_number", &self.stall_number)
            .field("mcc", &self.mcc)
            .field("settlement_bank_bin", &self.settlement_bank_bin)
            .field(
                "settlement_account_number",
                &redacted(&self.settlement_account_number),
            )
            .field("biller_category", &self.biller_category)
            .finish()
    }
}

/// One broken rule: which field (as named in [`RawApplication`]) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    field: &'static str,
    message: String,
}

impl FieldViolation {
    /// The field's name, e.g. `tax_code`.
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// What is wrong, e.g. `check digit is 3, expected 7`.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Every field violation of an application, in the order of [`RawApplication`]'s fields.
/// Never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InvalidApplication {
    violations: Vec<FieldViolation>,
}

impl InvalidApplication {
    pub fn violations(&self) -> &[FieldViolation] {
        &self.violations
    }
}

impl fmt::Display for InvalidApplication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid application: ")?;
        for (i, violation) in self.violations.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{violation}")?;
        }
        Ok(())
    }
}

/// A market vendor's application, every field parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorApplication {
    pub business_name: MerchantName,
    pub trading_name: Option<TradingName>,
    pub tax_code: TaxCode,
    pub owner_citizen_id: CitizenId,
    pub phone: PhoneNumber,
    pub address: Address,
    pub market_name: MarketName,
    pub stall_number: StallNumber,
    pub mcc: Mcc,
    pub settlement_bank: BankBin,
    pub settlement_account_number: BankAccountNumber,
}

/// A biller's application (a utility, school, hospital or public office), every field parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillerApplication {
    pub business_name: MerchantName,
    pub trading_name: Option<TradingName>,
    pub tax_code: TaxCode,
    /// The legal representative's citizen id, when given.
    pub owner_citizen_id: Option<CitizenId>,
    pub phone: PhoneNumber,
    pub address: Address,
    pub category: BillerCategory,
    pub mcc: Mcc,
    pub settlement_bank: BankBin,
    pub settlement_account_number: BankAccountNumber,
}

/// A parsed application of either kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Application {
    Vendor(VendorApplication),
    Biller(BillerApplication),
}

impl Application {
    /// Parses `raw` as an application of `kind`.
    pub fn parse(
        kind: MerchantKind,
        raw: &RawApplication,
    ) -> Result<Application, InvalidApplication> {
        match kind {
            MerchantKind::Vendor => VendorApplication::parse(raw).map(Application::Vendor),
            MerchantKind::Biller => BillerApplication::parse(raw).map(Application::Biller),
        }
    }

    pub fn kind(&self) -> MerchantKind {
        match self {
            Application::Vendor(_) => MerchantKind::Vendor,
            Application::Biller(_) => MerchantKind::Biller,
        }
    }
}

impl VendorApplication {
    /// Parses every field of `raw` as a vendor's; all violations are reported together.
    pub fn parse(raw: &RawApplication) -> Result<VendorApplication, InvalidApplication> {
        let mut v = Violations::default();
        let business_name = v.required("business_name", MerchantName::parse(&raw.business_name));
        let trading_name = v.optional("trading_name", &raw.trading_name, TradingName::parse);
        let tax_code = v.required("tax_code", TaxCode::parse(&raw.tax_code));
        let owner_citizen_id =
            v.required("owner_citizen_id", CitizenId::parse(&raw.owner_citizen_id));
        let phone = v.required("phone", PhoneNumber::parse(&raw.phone));
        let address = v.required("address", Address::parse(&raw.address));
        let market_name = v.required("market_name", MarketName::parse(&raw.market_name));
        let stall_number = v.required("stall_number", StallNumber::parse(&raw.stall_number));
        let mcc = v.required("mcc", Mcc::parse(&raw.mcc));
        let settlement_bank = v.required(
            "settlement_bank_bin",
            BankBin::parse(&raw.settlement_bank_bin),
        );
        let settlement_account_number = v.required(
            "settlement_account_number",
            BankAccountNumber::parse(&raw.settlement_account_number),
        );
        v.must_be_empty(
            "biller_category",
            &raw.biller_category,
            "only billers have a category",
        );
        match (
            business_name,
            trading_name,
            tax_code,
            owner_citizen_id,
            phone,
            address,
            market_name,
            stall_number,
            mcc,
            settlement_bank,
            settlement_account_number,
        ) {
            (
                Some(business_name),
                Some(trading_name),
                Some(tax_code),
                Some(owner_citizen_id),
                Some(phone),
                Some(address),
                Some(market_name),
                Some(stall_number),
                Some(mcc),
                Some(settlement_bank),
                Some(settlement_account_number),
            ) if v.is_empty() => Ok(VendorApplication {
                business_name,
                trading_name,
                tax_code,
                owner_citizen_id,
                phone,
                address,
                market_name,
                stall_number,
                mcc,
                settlement_bank,
                settlement_account_number,
            }),
            _ => Err(v.into_error()),
        }
    }
}

impl BillerApplication {
    /// Parses every field of `raw` as a biller's; all violations are reported together.
    pub fn parse(raw: &RawApplication) -> Result<BillerApplication, InvalidApplication> {
        let mut v = Violations::default();
        let business_name = v.required("business_name", MerchantName::parse(&raw.business_name));
        let trading_name = v.optional("trading_name", &raw.trading_name, TradingName::parse);
        let tax_code = v.required("tax_code", TaxCode::parse(&raw.tax_code));
        let owner_citizen_id =
            v.optional("owner_citizen_id", &raw.owner_citizen_id, CitizenId::parse);
        let phone = v.required("phone", PhoneNumber::parse(&raw.phone));
        let address = v.required("address", Address::parse(&raw.address));
        v.must_be_empty(
            "market_name",
            &raw.market_name,
            "only vendors have a market",
        );
        v.must_be_empty(
            "stall_number",
            &raw.stall_number,
            "only vendors have a stall",
        );
        let mcc = v.required("mcc", Mcc::parse(&raw.mcc));
        let settlement_bank = v.required(
            "settlement_bank_bin",
            BankBin::parse(&raw.settlement_bank_bin),
        );
        let settlement_account_number = v.required(
            "settlement_account_number",
            BankAccountNumber::parse(&raw.settlement_account_number),
        );
        let category = v.required(
            "biller_category",
            BillerCategory::parse(&raw.biller_category),
        );
        match (
            business_name,
            trading_name,
            tax_code,
            owner_citizen_id,
            phone,
            address,
            mcc,
            settlement_bank,
            settlement_account_number,
            category,
        ) {
            (
                Some(business_name),
                Some(trading_name),
                Some(tax_code),
                Some(owner_citizen_id),
                Some(phone),
                Some(address),
                Some(mcc),
                Some(settlement_bank),
                Some(settlement_account_number),
                Some(category),
            ) if v.is_empty() => Ok(BillerApplication {
                business_name,
                trading_name,
                tax_code,
                owner_citizen_id,
                phone,
                address,
                category,
                mcc,
                settlement_bank,
                settlement_account_number,
            }),
            _ => Err(v.into_error()),
        }
    }
}

/// The violations found so far.
#[derive(Default)]
struct Violations(Vec<FieldViolation>);

impl Violations {
    /// The parsed value, or `None` after recording why the field is wrong.
    fn required<T, E: fmt::Display>(
        &mut self,
        field: &'static str,
        parsed: Result<T, E>,
    ) -> Option<T> {
        match parsed {
            Ok(value) => Some(value),
            Err(error) => {
                self.push(field, error.to_string());
                None
            }
        }
    }

    /// `Some(None)` for an empty field, else the parsed value as for [`Violations::required`].
    fn optional<T, E: fmt::Display>(
        &mut self,
        field: &'static str,
        raw: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<Option<T>> {
        if raw.trim().is_empty() {
            Some(None)
        } else {
            self.required(field, parse(raw)).map(Some)
        }
    }

    fn must_be_empty(&mut self, field: &'static str, raw: &str, why: &str) {
        if !raw.trim().is_empty() {
            self.push(field, format!("must be empty: {why}"));
        }
    }

    fn push(&mut self, field: &'static str, message: String) {
        self.0.push(FieldViolation { field, message });
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn into_error(self) -> InvalidApplication {
        InvalidApplication { violations: self.0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paymesh_vn::TaxCodeKind;
    use proptest::prelude::*;

    fn vendor() -> RawApplication {
        RawApplication {
            business_name: "Hộ kinh doanh Nguyễn Thị Lan".into(),
            trading_name: "Bún bò Cô Lan".into(),
            tax_code: "0100109106".into(),
            owner_citizen_id: "079187001234".into(),
            phone: "090 123 4567".into(),
            address: "Sạp 45, chợ Bến Thành, Q.1, TP. Hồ Chí Minh".into(),
            market_name: "Chợ Bến Thành".into(),
            stall_number: "A-45".into(),
            mcc: "5812".into(),
            settlement_bank_bin: "970436".into(),
            settlement_account_number: "0011012345678".into(),
            biller_category: String::new(),
        }
    }

    fn biller() -> RawApplication {
        RawApplication {
            business_name: "Công ty Cổ phần Cấp nước Bến Thành".into(),
            trading_name: String::new(),
            tax_code: "0300588569".into(),
            owner_citizen_id: String::new(),
            phone: "+84 912 345 678".into(),
            address: "194 Pasteur, Q.3, TP. Hồ Chí Minh".into(),
            market_name: String::new(),
            stall_number: String::new(),
            mcc: "4900".into(),
            settlement_bank_bin: "970418".into(),
            settlement_account_number: "12010000123456".into(),
            biller_category: "water".into(),
        }
    }

    fn messages(error: &InvalidApplication) -> Vec<String> {
        error.violations().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_good_vendor_application() {
        let app = VendorApplication::parse(&vendor()).unwrap();
        assert_eq!(app.business_name.as_str(), "Hộ kinh doanh Nguyễn Thị Lan");
        assert_eq!(
            app.trading_name.as_ref().map(TradingName::as_str),
            Some("Bún bò Cô Lan")
        );
        assert_eq!(app.tax_code.expose(), "0100109106");
        assert_eq!(app.owner_citizen_id.province().name(), "Hồ Chí Minh");
        assert_eq!(app.phone.expose(), "+84901234567");
        assert_eq!(app.market_name.as_str(), "Chợ Bến Thành");
        assert_eq!(app.stall_number.as_str(), "A-45");
        assert_eq!(app.mcc.as_str(), "5812");
        assert_eq!(app.settlement_bank.bank().short_name(), "Vietcombank");
        assert_eq!(app.settlement_account_number.expose(), "0011012345678");
        assert_eq!(
            Application::parse(MerchantKind::Vendor, &vendor()).map(|a| a.kind()),
            Ok(MerchantKind::Vendor)
        );
    }

    #[test]
    fn a_good_biller_application() {
        let app = BillerApplication::parse(&biller()).unwrap();
        assert_eq!(app.category, BillerCategory::Water);
        assert_eq!(app.trading_name, None);
        assert_eq!(app.owner_citizen_id, None);
        assert_eq!(
            app.mcc.description(),
            "Utilities: electric, gas, water and sanitary"
        );
        let with_representative = RawApplication {
            owner_citizen_id: "001087123456".into(),
            ..biller()
        };
        assert!(
            BillerApplication::parse(&with_representative)
                .unwrap()
                .owner_citizen_id
                .is_some()
        );
        assert_eq!(
            Application::parse(MerchantKind::Biller, &biller()).map(|a| a.kind()),
            Ok(MerchantKind::Biller)
        );
    }

    #[test]
    fn every_violation_is_reported_in_field_order() {
        let raw = RawApplication {
            business_name: "   ".into(),
            trading_name: "Bún\u{7}bò".into(),
            tax_code: "0100109103".into(),
            owner_citizen_id: "999187001234".into(),
            phone: "0241234567".into(),
            address: "a".repeat(201),
            market_name: String::new(),
            stall_number: "A 45".into(),
            mcc: "7995".into(),
            settlement_bank_bin: "970499".into(),
            settlement_account_number: "0011-0123".into(),
            biller_category: "water".into(),
        };
        let error = VendorApplication::parse(&raw).unwrap_err();
        assert_eq!(
            messages(&error),
            [
                "business_name: is empty",
                "trading_name: character 4 (U+0007) is not allowed; use letters, digits, spaces and . , - & ' ( ) / + : # \"",
                "tax_code: check digit is 3, expected 6",
                "owner_citizen_id: 999 is not a province code of Circular 07/2016/TT-BCA",
                "phone: 024 is not a Vietnamese mobile prefix",
                "address: must be at most 200 characters",
                "market_name: is empty",
                "stall_number: character 2 (U+0020) is not allowed; use letters, digits, - and /",
                "mcc: 7995 is not a merchant category code paymesh accepts",
                "settlement_bank_bin: 970499 is not a NAPAS/VietQR member BIN",
                "settlement_account_number: may contain only ASCII letters and digits; character 5 is not one",
                "biller_category: must be empty: only billers have a category",
            ]
        );
        let fields: Vec<_> = error
            .violations()
            .iter()
            .map(FieldViolation::field)
            .collect();
        assert_eq!(fields.len(), 12);
        assert!(
            error
                .to_string()
                .starts_with("invalid application: business_name: is empty; trading_name:")
        );
    }

    #[test]
    fn what_each_kind_needs() {
        let empty = RawApplication::default();
        let vendor_fields: Vec<_> = VendorApplication::parse(&empty)
            .unwrap_err()
            .violations()
            .iter()
            .map(FieldViolation::field)
            .collect();
        assert_eq!(
            vendor_fields,
            [
                "business_name",
                "tax_code",
                "owner_citizen_id",
                "phone",
                "address",
                "market_name",
                "stall_number",
                "mcc",
                "settlement_bank_bin",
                "settlement_account_number",
            ]
        );
        let biller_fields: Vec<_> = BillerApplication::parse(&empty)
            .unwrap_err()
            .violations()
            .iter()
            .map(FieldViolation::field)
            .collect();
        assert_eq!(
            biller_fields,
            [
                "business_name",
                "tax_code",
                "phone",
                "address",
                "mcc",
                "settlement_bank_bin",
                "settlement_account_number",
                "biller_category",
            ]
        );
        // A vendor's application is not a biller's: market and stall must be empty, the category
        // is missing.
        assert_eq!(
            messages(&BillerApplication::parse(&vendor()).unwrap_err()),
            [
                "market_name: must be empty: only vendors have a market",
                "stall_number: must be empty: only vendors have a stall",
                "biller_category: must be one of: electricity, water, tuition, hospital_fee, administrative_fee",
            ]
        );
    }

    #[test]
    fn a_household_business_applies_with_its_owners_personal_identification_number() {
        let raw = RawApplication {
            tax_code: "079187001234".into(),
            ..vendor()
        };
        let app = VendorApplication::parse(&raw).unwrap();
        assert_eq!(app.tax_code.kind(), TaxCodeKind::Household);
        assert_eq!(app.tax_code.expose(), "079187001234");
        assert_eq!(app.tax_code.household_owner(), Some(&app.owner_citizen_id));
        let (raw_debug, app_debug) = (format!("{raw:?}"), format!("{app:?}"));
        for debug in [&raw_debug, &app_debug] {
            assert!(!debug.contains("187001234"), "{debug}");
        }
        assert!(
            raw_debug.contains("tax_code: \"079*******34\""),
            "{raw_debug}"
        );
        assert!(
            app_debug.contains("tax_code: TaxCode(079*******34)"),
            "{app_debug}"
        );

        // 12 digits that are no citizen id: refused, naming the rule, not the number.
        let bad = RawApplication {
            tax_code: "999187001234".into(),
            ..vendor()
        };
        let bad_debug = format!("{bad:?}");
        assert!(
            bad_debug.contains("tax_code: \"<redacted>\""),
            "{bad_debug}"
        );
        assert_eq!(
            messages(&VendorApplication::parse(&bad).unwrap_err()),
            [
                "tax_code: a 12-digit tax code is a personal identification number (CCCD): 999 is not a province code of Circular 07/2016/TT-BCA"
            ]
        );
    }

    #[test]
    fn personal_data_stays_out_of_debug_and_errors() {
        let raw = vendor();
        let app = VendorApplication::parse(&raw).unwrap();
        let raw_debug = format!("{raw:?}");
        let app_debug = format!("{app:?}");
        for secret in ["079187001234", "0901234567", "901234567", "0011012345678"] {
            assert!(!raw_debug.contains(secret), "{raw_debug}");
            assert!(!app_debug.contains(secret), "{app_debug}");
        }
        assert!(app_debug.contains("CitizenId(079*******34)"), "{app_debug}");
        assert!(
            app_debug.contains("PhoneNumber(+8490****567)"),
            "{app_debug}"
        );
        assert!(
            app_debug.contains("BankAccountNumber(****5678)"),
            "{app_debug}"
        );

        let bad = RawApplication {
            owner_citizen_id: "999187001234".into(),
            phone: "0241234567".into(),
            settlement_account_number: "0011012345678-".into(),
            ..vendor()
        };
        let error = VendorApplication::parse(&bad).unwrap_err().to_string();
        for secret in ["187001234", "1234567", "0011012345678"] {
            assert!(!error.contains(secret), "{error}");
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(fields in proptest::collection::vec(any::<String>(), 12)) {
            let mut f = fields.into_iter();
            let mut next = || f.next().unwrap_or_default();
            let raw = RawApplication {
                business_name: next(),
                trading_name: next(),
                tax_code: next(),
                owner_citizen_id: next(),
                phone: next(),
                address: next(),
                market_name: next(),
                stall_number: next(),
                mcc: next(),
                settlement_bank_bin: next(),
                settlement_account_number: next(),
                biller_category: next(),
            };
            for kind in MerchantKind::ALL {
                if let Err(error) = Application::parse(kind, &raw) {
                    prop_assert!(!error.violations().is_empty());
                }
            }
        }
    }
}
