//! Bank BINs: the 6-digit NAPAS/VietQR member ids, from the list in `data/napas_banks.tsv`.

use std::fmt;
use std::sync::LazyLock;

use crate::table::{self, is_digits};

const BIN_DIGITS: usize = 6;
const DATA: &str = include_str!("../data/napas_banks.tsv");

static BANKS: LazyLock<Vec<Bank>> = LazyLock::new(|| {
    table::rows(DATA)
        .filter_map(|cols| match cols[..] {
            [bin, short_name, full_name]
                if is_digits(bin, BIN_DIGITS)
                    && !short_name.is_empty()
                    && !full_name.is_empty() =>
            {
                Some(Bank {
                    bin,
                    short_name,
                    full_name,
                })
            }
            _ => None,
        })
        .collect()
});

/// A NAPAS/VietQR member: a bank (or wallet) and its BIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Bank {
    bin: &'static str,
    short_name: &'static str,
    full_name: &'static str,
}

impl Bank {
    pub fn bin(&self) -> &'static str {
        self.bin
    }

    /// The name people use, e.g. `Vietcombank`.
    pub fn short_name(&self) -> &'static str {
        self.short_name
    }

    /// The registered name, e.g. `Ngân hàng TMCP Ngoại Thương Việt Nam`.
    pub fn full_name(&self) -> &'static str {
        self.full_name
    }

    /// Every member of the list, ordered by BIN.
    pub fn all() -> &'static [Bank] {
        &BANKS
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BankBinError {
    #[error("is empty")]
    Empty,
    #[error("must be exactly 6 digits")]
    Format,
    #[error("{bin} is not a NAPAS/VietQR member BIN")]
    Unknown { bin: String },
}

/// A BIN on the NAPAS/VietQR member list.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct BankBin(&'static Bank);

impl BankBin {
    /// Parses 6 ASCII digits (whitespace around them is ignored) that are on the list.
    pub fn parse(input: &str) -> Result<BankBin, BankBinError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(BankBinError::Empty);
        }
        if !is_digits(input, BIN_DIGITS) {
            return Err(BankBinError::Format);
        }
        BANKS
            .iter()
            .find(|bank| bank.bin == input)
            .map(BankBin)
            .ok_or_else(|| BankBinError::Unknown {
                bin: input.to_owned(),
            })
    }

    pub fn as_str(&self) -> &'static str {
        self.0.bin
    }

    /// The member this BIN belongs to.
    pub fn bank(&self) -> &'static Bank {
        self.0
    }
}

impl fmt::Display for BankBin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.bin)
    }
}

impl fmt::Debug for BankBin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BankBin({} {})", self.0.bin, self.0.short_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_list_is_read_whole_sorted_and_unique() {
        assert_eq!(table::rows(DATA).count(), BANKS.len(), "a row was not read");
        assert!(BANKS.len() >= 60, "{} members", BANKS.len());
        assert!(
            BANKS.windows(2).all(|w| w[0].bin < w[1].bin),
            "BINs must be sorted and unique"
        );
    }

    #[test]
    fn well_known_banks() {
        for (bin, short) in [
            ("970436", "Vietcombank"),
            ("970415", "VietinBank"),
            ("970418", "BIDV"),
            ("970405", "Agribank"),
            ("970422", "MBBank"),
            ("970407", "Techcombank"),
            ("970416", "ACB"),
            ("970432", "VPBank"),
            ("970423", "TPBank"),
            ("970403", "Sacombank"),
            ("963388", "Timo"),
            ("971025", "MoMo"),
        ] {
            let parsed = BankBin::parse(bin).unwrap();
            assert_eq!(parsed.as_str(), bin);
            assert_eq!(parsed.bank().short_name(), short);
            assert!(!parsed.bank().full_name().is_empty());
        }
        assert_eq!(
            BankBin::parse(" 970436 ").unwrap().bank().full_name(),
            "Ngân hàng TMCP Ngoại Thương Việt Nam"
        );
        assert_eq!(
            format!("{:?}", BankBin::parse("970436").unwrap()),
            "BankBin(970436 Vietcombank)"
        );
    }

    #[test]
    fn rejected_bins_say_which_rule() {
        use BankBinError::*;
        for (input, error) in [
            ("", Empty),
            ("97043", Format),
            ("9704360", Format),
            ("97043a", Format),
            ("970 436", Format),
            ("９７０４３６", Format),
            (
                "970499",
                Unknown {
                    bin: "970499".into(),
                },
            ),
            (
                "000000",
                Unknown {
                    bin: "000000".into(),
                },
            ),
        ] {
            assert_eq!(BankBin::parse(input), Err(error), "{input:?}");
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = BankBin::parse(&s);
        }

        #[test]
        fn listed_bins_round_trip(bank in proptest::sample::select(Bank::all())) {
            let bin = BankBin::parse(bank.bin()).unwrap();
            prop_assert_eq!(bin.bank(), &bank);
            prop_assert_eq!(BankBin::parse(&bin.to_string()).unwrap(), bin);
        }

        #[test]
        fn six_digits_parse_exactly_when_listed(bin in "[0-9]{6}") {
            let listed = Bank::all().iter().any(|b| b.bin() == bin);
            prop_assert_eq!(BankBin::parse(&bin).is_ok(), listed);
        }
    }
}
