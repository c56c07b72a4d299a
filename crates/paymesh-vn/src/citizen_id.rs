//! CCCD (căn cước công dân) number: the 12-digit personal identification number (số định danh cá
//! nhân) of Circular 07/2016/TT-BCA, art. 7:
//!
//! - digits 1-3: the province where the birth was registered (appendix I, `data/cccd_provinces.tsv`);
//! - digit 4: century of birth and gender: 0/1 male/female born 1900-1999, 2/3 born 2000-2099,
//!   4/5 2100-2199, 6/7 2200-2299, 8/9 2300-2399;
//! - digits 5-6: the last two digits of the year of birth;
//! - digits 7-12: a random number (there is no check digit).
//!
//! The number is personal data: `Display` and `Debug` show `001*******89`, [`CitizenId::expose`]
//! gives the full number, and errors never repeat it.

use std::fmt;
use std::sync::LazyLock;

use crate::mask::write_masked;
use crate::table::{self, is_digits};

const DIGITS: usize = 12;
const PROVINCE_DIGITS: usize = 3;
const DATA: &str = include_str!("../data/cccd_provinces.tsv");

static PROVINCES: LazyLock<Vec<Province>> = LazyLock::new(|| {
    table::rows(DATA)
        .filter_map(|cols| match cols[..] {
            [code, name] if is_digits(code, PROVINCE_DIGITS) && !name.is_empty() => {
                Some(Province { code, name })
            }
            _ => None,
        })
        .collect()
});

/// A province of the CCCD list (where a birth was registered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Province {
    code: &'static str,
    name: &'static str,
}

impl Province {
    /// The three-digit code, e.g. `001`.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The province's name, e.g. `Hà Nội`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// All 63 provinces of the list.
    pub fn all() -> &'static [Province] {
        &PROVINCES
    }

    fn find(code: &str) -> Option<&'static Province> {
        PROVINCES.iter().find(|p| p.code == code)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Gender {
    Male,
    Female,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CitizenIdError {
    #[error("is empty")]
    Empty,
    #[error("may contain only the digits 0-9")]
    NotDigits,
    #[error("must be exactly 12 digits; got {0}")]
    Length(usize),
    #[error("{code} is not a province code of Circular 07/2016/TT-BCA")]
    UnknownProvince { code: String },
}

/// A CCCD number with a known province code.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CitizenId {
    digits: String,
    province: &'static Province,
}

impl CitizenId {
    /// Parses exactly 12 ASCII digits (whitespace around them is ignored) whose first three are a
    /// province code of the list.
    pub fn parse(input: &str) -> Result<CitizenId, CitizenIdError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(CitizenIdError::Empty);
        }
        if !input.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CitizenIdError::NotDigits);
        }
        if input.len() != DIGITS {
            return Err(CitizenIdError::Length(input.len()));
        }
        let code = input.get(..PROVINCE_DIGITS).unwrap_or_default();
        let province = Province::find(code).ok_or_else(|| CitizenIdError::UnknownProvince {
            code: code.to_owned(),
        })?;
        Ok(CitizenId {
            digits: input.to_owned(),
            province,
        })
    }

    /// The full 12-digit number. Personal data: do not log it.
    pub fn expose(&self) -> &str {
        &self.digits
    }

    /// Where the birth was registered.
    pub fn province(&self) -> &'static Province {
        self.province
    }

    pub fn gender(&self) -> Gender {
        if self.century_gender_digit() % 2 == 0 {
            Gender::Male
        } else {
            Gender::Female
        }
    }

    /// The year of birth, from the century digit and the two year digits (e.g. 1987).
    pub fn birth_year(&self) -> u16 {
        let century = 1900 + 100 * u16::from(self.century_gender_digit() / 2);
        century + 10 * u16::from(self.digit(4)) + u16::from(self.digit(5))
    }

    fn century_gender_digit(&self) -> u8 {
        self.digit(3)
    }

    /// The digit at 0-based `index` (an ASCII digit by construction).
    fn digit(&self, index: usize) -> u8 {
        self.digits
            .as_bytes()
            .get(index)
            .map_or(0, |b| b.wrapping_sub(b'0'))
    }
}

impl fmt::Display for CitizenId {
    /// Masked: the province code and the last two digits, `001*******89`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_masked(f, &self.digits, PROVINCE_DIGITS, 2)
    }
}

impl fmt::Debug for CitizenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CitizenId(")?;
        write_masked(f, &self.digits, PROVINCE_DIGITS, 2)?;
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_list_has_the_63_provinces_of_the_circular() {
        assert_eq!(
            table::rows(DATA).count(),
            PROVINCES.len(),
            "a row was not read"
        );
        assert_eq!(Province::all().len(), 63);
        let mut codes: Vec<_> = Province::all().iter().map(|p| p.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), 63, "duplicate codes");
        for (code, name) in [
            ("001", "Hà Nội"),
            ("002", "Hà Giang"),
            ("004", "Cao Bằng"),
            ("031", "Hải Phòng"),
            ("048", "Đà Nẵng"),
            ("079", "Hồ Chí Minh"),
            ("092", "Cần Thơ"),
            ("096", "Cà Mau"),
        ] {
            assert_eq!(Province::find(code).map(|p| p.name()), Some(name));
        }
        // Codes the circular skips.
        for gap in ["000", "003", "005", "013", "090", "097", "099"] {
            assert!(Province::find(gap).is_none(), "{gap}");
        }
    }

    #[test]
    fn accepted_numbers_and_what_they_say() {
        for (input, province, gender, year) in [
            ("001087123456", "Hà Nội", Gender::Male, 1987),
            ("079199001234", "Hồ Chí Minh", Gender::Female, 1999),
            (" 048200000001 ", "Đà Nẵng", Gender::Male, 2000),
            ("096305654321", "Cà Mau", Gender::Female, 2005),
            ("031400000000", "Hải Phòng", Gender::Male, 2100),
            ("002999999999", "Hà Giang", Gender::Female, 2399),
        ] {
            let id = CitizenId::parse(input).unwrap();
            assert_eq!(id.expose(), input.trim());
            assert_eq!(id.province().name(), province, "{input}");
            assert_eq!(id.gender(), gender, "{input}");
            assert_eq!(id.birth_year(), year, "{input}");
        }
    }

    #[test]
    fn rejected_numbers_say_which_rule() {
        use CitizenIdError::*;
        for (input, error) in [
            ("", Empty),
            (" \t", Empty),
            ("00108712345a", NotDigits),
            ("001 087 123456", NotDigits),
            ("001-087-123456", NotDigits),
            ("００１０８７１２３４５６", NotDigits),
            ("-01087123456", NotDigits),
            ("00108712345", Length(11)),
            ("0010871234567", Length(13)),
            ("123456789", Length(9)),
            ("000087123456", UnknownProvince { code: "000".into() }),
            ("003087123456", UnknownProvince { code: "003".into() }),
            ("097087123456", UnknownProvince { code: "097".into() }),
            ("999087123456", UnknownProvince { code: "999".into() }),
        ] {
            assert_eq!(CitizenId::parse(input), Err(error), "{input:?}");
        }
    }

    #[test]
    fn masked_in_display_and_debug() {
        let id = CitizenId::parse("001087123489").unwrap();
        assert_eq!(id.to_string(), "001*******89");
        assert_eq!(format!("{id:?}"), "CitizenId(001*******89)");
        assert_eq!(format!("{:?}", Some(&id)), "Some(CitizenId(001*******89))");
    }

    #[test]
    fn errors_do_not_repeat_the_number() {
        for input in ["999087123456", "00108712345678", "00108712345x"] {
            let message = CitizenId::parse(input).unwrap_err().to_string();
            assert!(!message.contains(&input[3..]), "{message}");
        }
    }

    fn valid_id() -> impl Strategy<Value = String> {
        (proptest::sample::select(Province::all()), "[0-9]{9}")
            .prop_map(|(p, rest)| format!("{}{rest}", p.code()))
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = CitizenId::parse(&s);
        }

        #[test]
        fn parse_never_panics_on_near_misses(s in "[0-9 ]{0,14}") {
            let _ = CitizenId::parse(&s);
        }

        #[test]
        fn valid_ids_round_trip(input in valid_id()) {
            let id = CitizenId::parse(&input).unwrap();
            prop_assert_eq!(CitizenId::parse(id.expose()).unwrap(), id.clone());
            let year = id.birth_year();
            prop_assert!((1900..2400).contains(&year));
            prop_assert_eq!(u32::from(year % 100), input[4..6].parse::<u32>().unwrap());
        }

        #[test]
        fn display_and_debug_never_show_the_number(input in valid_id()) {
            let id = CitizenId::parse(&input).unwrap();
            let shown = format!("{id} {id:?} {:?}", vec![&id]);
            prop_assert!(!shown.contains(&input));
            // Only the province code and the last two digits are visible.
            prop_assert!(!shown.contains(&input[3..10]));
            prop_assert_eq!(shown.matches('*').count(), 3 * 7);
        }
    }
}
