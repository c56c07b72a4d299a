//! An amount of đồng as Vietnamese words, the way a bank's payment sound box speaks it:
//! `150_000` → `một trăm năm mươi nghìn`, announced as `Đã nhận một trăm năm mươi nghìn đồng`.
//!
//! The number is read in groups of three digits with the scales `nghìn` (10^3), `triệu` (10^6)
//! and `tỷ` (10^9). The count of `tỷ` is itself read as a number, so larger amounts need no
//! further scale words: `1_000_000_000_000` → `một nghìn tỷ`, `2_500_000_000_000` → `hai nghìn
//! năm trăm tỷ`. Groups that are all zeros are not spoken (`1_000_000` → `một triệu`).
//!
//! Each group is read in full once something has been spoken before it, as banks read amounts:
//!
//! - **Hundreds**: a zero hundreds digit after an earlier group is `không trăm` (`1_005_000` →
//!   `một triệu không trăm linh năm nghìn`, `2_050_000` → `hai triệu không trăm năm mươi nghìn`);
//!   in the leading group it is left out (`50_000` → `năm mươi nghìn`).
//! - **Zero tens** between the hundreds and a units digit is `linh` (northern, the default) or
//!   `lẻ` (southern), see [`ZeroTens`]: `105` → `một trăm linh năm`, `1_001` → `một nghìn không
//!   trăm linh một`. A units digit alone (`5` → `năm`) has neither.
//! - **Tens 1** is `mười`; after it 5 is `lăm` and 1 and 4 keep their names: `15` → `mười lăm`,
//!   `11` → `mười một`, `14` → `mười bốn`.
//! - **Tens 2-9** is `X mươi`; after it 1 is `mốt`, 4 is `tư`, 5 is `lăm`, 0 is silent: `21` →
//!   `hai mươi mốt`, `24` → `hai mươi tư`, `25` → `hai mươi lăm`, `20` → `hai mươi`.
//! - Otherwise the digits keep their names (`không một hai ba bốn năm sáu bảy tám chín`), so a
//!   5 after `linh` stays `năm`; `0` alone is `không`.

/// The name of each digit as it is read on its own.
const DIGITS: [&str; 10] = [
    "không", "một", "hai", "ba", "bốn", "năm", "sáu", "bảy", "tám", "chín",
];

/// The scales below `tỷ`, highest first; the count of `tỷ` is read as a number of its own.
const SCALES: [(u64, &str); 3] = [(1_000_000, "triệu"), (1_000, "nghìn"), (1, "")];

const BILLION: u64 = 1_000_000_000;

/// How a zero tens digit after hundreds is read: "linh" (northern, default) or "lẻ" (southern).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ZeroTens {
    /// `105` → `một trăm linh năm`.
    #[default]
    Linh,
    /// `105` → `một trăm lẻ năm`.
    Le,
}

impl ZeroTens {
    fn word(self) -> &'static str {
        match self {
            ZeroTens::Linh => "linh",
            ZeroTens::Le => "lẻ",
        }
    }
}

/// `n` in words, lower case, single spaces: 105_000 → "một trăm linh năm nghìn".
///
/// ```
/// use paymesh_vn::words::number_words;
/// assert_eq!(number_words(105_000), "một trăm linh năm nghìn");
/// assert_eq!(number_words(1_000_000_000_000), "một nghìn tỷ");
/// ```
pub fn number_words(n: u64) -> String {
    number_words_with(n, ZeroTens::Linh)
}

/// `n` in words, with a zero tens digit read as `zero_tens` says.
pub fn number_words_with(n: u64, zero_tens: ZeroTens) -> String {
    if n == 0 {
        return DIGITS[0].to_owned();
    }
    let mut words = Vec::new();
    push_number(&mut words, n, zero_tens);
    words.join(" ")
}

/// What the sound box says for a payment received: "Đã nhận một trăm năm mươi nghìn đồng".
pub fn received_announcement(amount: u64) -> String {
    format!("Đã nhận {} đồng", number_words(amount))
}

/// Pushes the words of `n` (not 0). The count of `tỷ` recurses (at most twice for a `u64`).
fn push_number(words: &mut Vec<&'static str>, n: u64, zero_tens: ZeroTens) {
    let billions = n / BILLION;
    if billions > 0 {
        push_number(words, billions, zero_tens);
        words.push("tỷ");
    }
    for (scale, name) in SCALES {
        let group = (n % BILLION / scale % 1_000) as usize;
        if group == 0 {
            continue;
        }
        // Whatever precedes this group (in this number or in an enclosing one) was spoken first.
        push_group(words, group, !words.is_empty(), zero_tens);
        if !name.is_empty() {
            words.push(name);
        }
    }
}

/// Pushes the words of one group of three digits, 1-999; `full` reads a zero hundreds digit.
fn push_group(words: &mut Vec<&'static str>, group: usize, full: bool, zero_tens: ZeroTens) {
    let (hundreds, tens, units) = (group / 100, group / 10 % 10, group % 10);
    let before = full || hundreds > 0;
    if before {
        words.extend([DIGITS[hundreds], "trăm"]);
    }
    match tens {
        0 if units > 0 && before => words.push(zero_tens.word()),
        0 => {}
        1 => words.push("mười"),
        _ => words.extend([DIGITS[tens], "mươi"]),
    }
    match (tens, units) {
        (_, 0) => {}
        (1.., 5) => words.push("lăm"),
        (2.., 1) => words.push("mốt"),
        (2.., 4) => words.push("tư"),
        _ => words.push(DIGITS[units]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Amounts and how they are read with `linh`.
    const TABLE: &[(u64, &str)] = &[
        (0, "không"),
        (1, "một"),
        (4, "bốn"),
        (5, "năm"),
        (9, "chín"),
        (10, "mười"),
        (11, "mười một"),
        (14, "mười bốn"),
        (15, "mười lăm"),
        (19, "mười chín"),
        (20, "hai mươi"),
        (21, "hai mươi mốt"),
        (24, "hai mươi tư"),
        (25, "hai mươi lăm"),
        (27, "hai mươi bảy"),
        (30, "ba mươi"),
        (41, "bốn mươi mốt"),
        (44, "bốn mươi tư"),
        (55, "năm mươi lăm"),
        (99, "chín mươi chín"),
        (100, "một trăm"),
        (101, "một trăm linh một"),
        (104, "một trăm linh bốn"),
        (105, "một trăm linh năm"),
        (110, "một trăm mười"),
        (111, "một trăm mười một"),
        (115, "một trăm mười lăm"),
        (121, "một trăm hai mươi mốt"),
        (124, "một trăm hai mươi tư"),
        (125, "một trăm hai mươi lăm"),
        (150, "một trăm năm mươi"),
        (200, "hai trăm"),
        (305, "ba trăm linh năm"),
        (999, "chín trăm chín mươi chín"),
        (1_000, "một nghìn"),
        (1_001, "một nghìn không trăm linh một"),
        (1_005, "một nghìn không trăm linh năm"),
        (1_010, "một nghìn không trăm mười"),
        (1_015, "một nghìn không trăm mười lăm"),
        (1_021, "một nghìn không trăm hai mươi mốt"),
        (1_100, "một nghìn một trăm"),
        (1_234, "một nghìn hai trăm ba mươi tư"),
        (2_024, "hai nghìn không trăm hai mươi tư"),
        (5_500, "năm nghìn năm trăm"),
        (10_000, "mười nghìn"),
        (10_500, "mười nghìn năm trăm"),
        (15_000, "mười lăm nghìn"),
        (21_000, "hai mươi mốt nghìn"),
        (24_000, "hai mươi tư nghìn"),
        (25_000, "hai mươi lăm nghìn"),
        (50_000, "năm mươi nghìn"),
        (100_000, "một trăm nghìn"),
        (105_000, "một trăm linh năm nghìn"),
        (150_000, "một trăm năm mươi nghìn"),
        (500_000, "năm trăm nghìn"),
        (
            999_999,
            "chín trăm chín mươi chín nghìn chín trăm chín mươi chín",
        ),
        (1_000_000, "một triệu"),
        (1_000_010, "một triệu không trăm mười"),
        (1_000_100, "một triệu một trăm"),
        (1_005_000, "một triệu không trăm linh năm nghìn"),
        (1_500_000, "một triệu năm trăm nghìn"),
        (2_050_000, "hai triệu không trăm năm mươi nghìn"),
        (15_000_000, "mười lăm triệu"),
        (21_000_001, "hai mươi mốt triệu không trăm linh một"),
        (100_000_000, "một trăm triệu"),
        (1_000_000_000, "một tỷ"),
        (1_000_000_005, "một tỷ không trăm linh năm"),
        (1_000_001_000, "một tỷ không trăm linh một nghìn"),
        (1_200_000_000, "một tỷ hai trăm triệu"),
        (25_000_000_000, "hai mươi lăm tỷ"),
        (
            999_999_999_999,
            "chín trăm chín mươi chín tỷ chín trăm chín mươi chín triệu \
             chín trăm chín mươi chín nghìn chín trăm chín mươi chín",
        ),
        (1_000_000_000_000, "một nghìn tỷ"),
        (1_000_000_000_005, "một nghìn tỷ không trăm linh năm"),
        (2_500_000_000_000, "hai nghìn năm trăm tỷ"),
        (1_005_000_000_000, "một nghìn không trăm linh năm tỷ"),
        (1_000_000_000_000_000, "một triệu tỷ"),
        (1_000_000_000_000_000_000, "một tỷ tỷ"),
        (
            u64::MAX, // 18_446_744_073_709_551_615
            "mười tám tỷ bốn trăm bốn mươi sáu triệu bảy trăm bốn mươi tư nghìn \
             không trăm bảy mươi ba tỷ bảy trăm linh chín triệu \
             năm trăm năm mươi mốt nghìn sáu trăm mười lăm",
        ),
    ];

    /// Amounts and how they are read with `lẻ`.
    const TABLE_LE: &[(u64, &str)] = &[
        (5, "năm"),
        (15, "mười lăm"),
        (21, "hai mươi mốt"),
        (101, "một trăm lẻ một"),
        (104, "một trăm lẻ bốn"),
        (105, "một trăm lẻ năm"),
        (1_001, "một nghìn không trăm lẻ một"),
        (1_005_000, "một triệu không trăm lẻ năm nghìn"),
        (1_000_000_005, "một tỷ không trăm lẻ năm"),
        (1_000_000_000_000, "một nghìn tỷ"),
    ];

    #[test]
    fn words_table() {
        assert!(TABLE.len() >= 60);
        for &(n, expected) in TABLE {
            assert_eq!(number_words(n), expected, "{n}");
            assert_eq!(number_words_with(n, ZeroTens::Linh), expected, "{n}");
        }
    }

    #[test]
    fn words_table_le() {
        for &(n, expected) in TABLE_LE {
            assert_eq!(number_words_with(n, ZeroTens::Le), expected, "{n}");
        }
        assert_eq!(ZeroTens::default(), ZeroTens::Linh);
    }

    #[test]
    fn words_announcement() {
        assert_eq!(
            received_announcement(150_000),
            "Đã nhận một trăm năm mươi nghìn đồng"
        );
        assert_eq!(
            received_announcement(105_000),
            "Đã nhận một trăm linh năm nghìn đồng"
        );
        assert_eq!(received_announcement(0), "Đã nhận không đồng");
    }

    /// The amounts the properties are checked on: every n in 0..=2_000, a stride through
    /// 0..10^13, amounts next to each power of a thousand, and pseudo-random `u64`s.
    fn samples() -> impl Iterator<Item = u64> {
        let powers = (0..7).flat_map(|k| {
            let p = 1_000u64.pow(k);
            (0..=30).flat_map(move |d| {
                [
                    p.saturating_mul(d),
                    p.saturating_mul(d).saturating_add(5 * d + 1),
                ]
            })
        });
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let random = std::iter::repeat_with(move || {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x >> (x % 64)
        });
        (0..=2_000)
            .chain((0..10_000_000_000_000).step_by(199_999_991))
            .chain(powers)
            .chain(random.take(20_000))
            .chain([u64::MAX, u64::MAX - 1])
    }

    /// Independent of the implementation: `n`'s groups of three decimal digits (hundreds, tens,
    /// units), highest first, each with whether an earlier group is non-zero.
    fn groups(n: u64) -> Vec<([u8; 3], bool)> {
        let mut digits: Vec<u8> = n.to_string().bytes().map(|b| b - b'0').collect();
        while digits.len() % 3 != 0 {
            digits.insert(0, 0);
        }
        let mut seen = false;
        digits
            .chunks(3)
            .map(|c| {
                let g = ([c[0], c[1], c[2]], seen);
                seen |= c != [0, 0, 0];
                g
            })
            .collect()
    }

    /// Reads words back into a number (lenient: it checks the value, not the grammar).
    fn parse(text: &str) -> Option<u128> {
        let (mut total, mut below_billion, mut group, mut digit) = (0u128, 0u128, 0u128, None);
        for word in text.split(' ') {
            let d = match word {
                "không" => Some(0),
                "một" | "mốt" => Some(1),
                "hai" => Some(2),
                "ba" => Some(3),
                "bốn" | "tư" => Some(4),
                "năm" | "lăm" => Some(5),
                "sáu" => Some(6),
                "bảy" => Some(7),
                "tám" => Some(8),
                "chín" => Some(9),
                _ => None,
            };
            if d.is_some() {
                if digit.is_some() {
                    return None;
                }
                digit = d;
                continue;
            }
            match word {
                "linh" | "lẻ" => {}
                "mười" => group += 10,
                "mươi" => group += digit.take()? * 10,
                "trăm" => group += digit.take()? * 100,
                "nghìn" | "triệu" | "tỷ" => {
                    group += digit.take().unwrap_or(0);
                    match word {
                        "nghìn" => below_billion += group * 1_000,
                        "triệu" => below_billion += group * 1_000_000,
                        _ => {
                            total = (total + below_billion + group) * 1_000_000_000;
                            below_billion = 0;
                        }
                    }
                    group = 0;
                }
                _ => return None,
            }
        }
        Some(total + below_billion + group + digit.unwrap_or(0))
    }

    fn count(text: &str, word: &str) -> usize {
        text.split(' ').filter(|w| *w == word).count()
    }

    #[test]
    fn words_properties() {
        for n in samples() {
            for zero_tens in [ZeroTens::Linh, ZeroTens::Le] {
                let text = number_words_with(n, zero_tens);
                let ctx = format!("{n} → {text:?}");
                assert!(!text.is_empty(), "{ctx}");
                assert_eq!(text.trim(), text, "{ctx}");
                assert!(!text.contains("  "), "{ctx}");
                assert_eq!(text.to_lowercase(), text, "{ctx}");
                for wrong in ["mươi một", "mươi bốn", "mươi năm"] {
                    assert!(!text.contains(wrong), "{ctx}");
                }
                assert_eq!(parse(&text), Some(u128::from(n)), "{ctx}");

                let groups = groups(n);
                let with = |f: fn(u8, u8, u8, bool) -> bool| {
                    groups
                        .iter()
                        .filter(|([h, t, u], seen)| f(*h, *t, *u, *seen))
                        .count()
                };
                let zero_tens_groups = with(|h, t, u, seen| t == 0 && u != 0 && (h != 0 || seen));
                let (this, other) = match zero_tens {
                    ZeroTens::Linh => ("linh", "lẻ"),
                    ZeroTens::Le => ("lẻ", "linh"),
                };
                assert_eq!(count(&text, this), zero_tens_groups, "{ctx}");
                assert_eq!(count(&text, other), 0, "{ctx}");
                assert_eq!(count(&text, "mười"), with(|_, t, _, _| t == 1), "{ctx}");
                assert_eq!(count(&text, "mươi"), with(|_, t, _, _| t >= 2), "{ctx}");
                assert_eq!(
                    count(&text, "mốt"),
                    with(|_, t, u, _| t >= 2 && u == 1),
                    "{ctx}"
                );
                assert_eq!(
                    count(&text, "tư"),
                    with(|_, t, u, _| t >= 2 && u == 4),
                    "{ctx}"
                );
                assert_eq!(
                    count(&text, "lăm"),
                    with(|_, t, u, _| t >= 1 && u == 5),
                    "{ctx}"
                );
                if text.contains("mười một") {
                    assert!(with(|_, t, u, _| t == 1 && u == 1) > 0, "{ctx}");
                }
            }
        }
    }
}
