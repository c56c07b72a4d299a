//! What kind of merchant an application is for, and what a biller collects.

use std::fmt;

/// A merchant is a market vendor (takes VietQR payments at a stall) or a biller (posts bills).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MerchantKind {
    Vendor,
    Biller,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be one of: vendor, biller")]
pub struct MerchantKindError;

impl MerchantKind {
    pub const ALL: [MerchantKind; 2] = [MerchantKind::Vendor, MerchantKind::Biller];

    /// Parses the snake_case name, `vendor` or `biller`.
    pub fn parse(input: &str) -> Result<MerchantKind, MerchantKindError> {
        MerchantKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == input.trim())
            .ok_or(MerchantKindError)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MerchantKind::Vendor => "vendor",
            MerchantKind::Biller => "biller",
        }
    }
}

impl fmt::Display for MerchantKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a biller collects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BillerCategory {
    Electricity,
    Water,
    Tuition,
    HospitalFee,
    AdministrativeFee,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be one of: electricity, water, tuition, hospital_fee, administrative_fee")]
pub struct BillerCategoryError;

impl BillerCategory {
    pub const ALL: [BillerCategory; 5] = [
        BillerCategory::Electricity,
        BillerCategory::Water,
        BillerCategory::Tuition,
        BillerCategory::HospitalFee,
        BillerCategory::AdministrativeFee,
    ];

    /// Parses the snake_case name, e.g. `hospital_fee`.
    pub fn parse(input: &str) -> Result<BillerCategory, BillerCategoryError> {
        BillerCategory::ALL
            .into_iter()
            .find(|category| category.as_str() == input.trim())
            .ok_or(BillerCategoryError)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BillerCategory::Electricity => "electricity",
            BillerCategory::Water => "water",
            BillerCategory::Tuition => "tuition",
            BillerCategory::HospitalFee => "hospital_fee",
            BillerCategory::AdministrativeFee => "administrative_fee",
        }
    }
}

impl fmt::Display for BillerCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn categories_parse_from_their_snake_case_names() {
        for (input, category) in [
            ("electricity", BillerCategory::Electricity),
            ("water", BillerCategory::Water),
            ("tuition", BillerCategory::Tuition),
            ("hospital_fee", BillerCategory::HospitalFee),
            ("administrative_fee", BillerCategory::AdministrativeFee),
            (" water ", BillerCategory::Water),
        ] {
            assert_eq!(BillerCategory::parse(input), Ok(category));
        }
        for category in BillerCategory::ALL {
            assert_eq!(BillerCategory::parse(&category.to_string()), Ok(category));
        }
    }

    #[test]
    fn other_names_are_refused_with_the_list() {
        for input in [
            "",
            "Electricity",
            "ELECTRICITY",
            "hospital-fee",
            "hospitalFee",
            "HOSPITAL_FEE",
            "gas",
            "electricity_",
        ] {
            assert_eq!(
                BillerCategory::parse(input),
                Err(BillerCategoryError),
                "{input:?}"
            );
        }
        let listed = BillerCategoryError.to_string();
        for category in BillerCategory::ALL {
            assert!(listed.contains(category.as_str()), "{listed}");
        }
    }

    #[test]
    fn kinds() {
        assert_eq!(MerchantKind::parse("vendor"), Ok(MerchantKind::Vendor));
        assert_eq!(MerchantKind::parse("biller"), Ok(MerchantKind::Biller));
        assert_eq!(MerchantKind::parse("Vendor"), Err(MerchantKindError));
        assert_eq!(MerchantKind::parse(""), Err(MerchantKindError));
        for kind in MerchantKind::ALL {
            assert_eq!(MerchantKind::parse(kind.as_str()), Ok(kind));
            assert!(MerchantKindError.to_string().contains(kind.as_str()));
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = BillerCategory::parse(&s);
            let _ = MerchantKind::parse(&s);
        }
    }
}
