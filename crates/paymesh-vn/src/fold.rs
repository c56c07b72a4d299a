//! Vietnamese text without its diacritics: for search keys (`Chợ Bến Thành` → `cho ben thanh`)
//! and for the ASCII merchant name and city printed in a VietQR (`BUN BO CO LAN`).
//!
//! Precomposed (NFC) letters map to their base letter, `đ`/`Đ` to `d`/`D`, and the combining
//! diacritics of decomposed (NFD) text (U+0300-U+036F) are dropped, so both forms fold alike.

/// Each Vietnamese letter with diacritics, grouped by the base letter it folds to.
const GROUPS: &[(&str, char)] = &[
    ("àáạảãâầấậẩẫăằắặẳẵ", 'a'),
    ("ÀÁẠẢÃÂẦẤẬẨẪĂẰẮẶẲẴ", 'A'),
    ("èéẹẻẽêềếệểễ", 'e'),
    ("ÈÉẸẺẼÊỀẾỆỂỄ", 'E'),
    ("ìíịỉĩ", 'i'),
    ("ÌÍỊỈĨ", 'I'),
    ("òóọỏõôồốộổỗơờớợởỡ", 'o'),
    ("ÒÓỌỎÕÔỒỐỘỔỖƠỜỚỢỞỠ", 'O'),
    ("ùúụủũưừứựửữ", 'u'),
    ("ÙÚỤỦŨƯỪỨỰỬỮ", 'U'),
    ("ỳýỵỷỹ", 'y'),
    ("ỲÝỴỶỸ", 'Y'),
    ("đ", 'd'),
    ("Đ", 'D'),
];

/// U+0300-U+036F, the marks Vietnamese text in NFD form puts after its base letters.
pub(crate) fn is_combining_diacritic(c: char) -> bool {
    ('\u{0300}'..='\u{036F}').contains(&c)
}

/// The letter without its Vietnamese diacritics (other characters unchanged).
pub fn fold_char(c: char) -> char {
    base(c)
}

fn base(c: char) -> char {
    if c.is_ascii() {
        return c;
    }
    GROUPS
        .iter()
        .find(|(letters, _)| letters.contains(c))
        .map_or(c, |(_, b)| *b)
}

/// `text` without Vietnamese diacritics, lower-cased, whitespace runs as one space, trimmed.
/// The key that name and market searches compare.
pub fn search_key(text: &str) -> String {
    let folded: String = text
        .chars()
        .flat_map(char::to_lowercase)
        .filter(|c| !is_combining_diacritic(*c))
        .map(base)
        .collect();
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `text` as printable upper-case ASCII without diacritics, at most `max_chars` characters
/// (cut at a word boundary when one is near), for EMVCo fields 59 and 60.
pub fn qr_text(text: &str, max_chars: usize) -> String {
    let ascii: String = text
        .chars()
        .filter(|c| !is_combining_diacritic(*c))
        .map(base)
        .map(|c| if c.is_ascii_graphic() { c } else { ' ' })
        .flat_map(|c| c.to_uppercase())
        .collect();
    let words: Vec<&str> = ascii.split_whitespace().collect();
    let mut out = String::new();
    for word in words {
        let needed = if out.is_empty() { 0 } else { 1 } + word.len();
        if out.len() + needed <= max_chars {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(word);
        } else {
            if out.is_empty() {
                // One long word: cut it.
                out.extend(word.chars().take(max_chars));
            }
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn search_keys() {
        assert_eq!(search_key("Chợ Bến Thành"), "cho ben thanh");
        assert_eq!(search_key("  ĐIỆN LỰC   Đồng Nai "), "dien luc dong nai");
        // Decomposed (NFD) input folds like precomposed input.
        assert_eq!(search_key("Be\u{0302}\u{0301}n"), "ben");
        assert_eq!(search_key("Bún bò Huế"), "bun bo hue");
        assert_eq!(search_key("A&B Co., Ltd."), "a&b co., ltd.");
    }

    #[test]
    fn qr_texts() {
        assert_eq!(qr_text("Bún bò Cô Lan", 25), "BUN BO CO LAN");
        assert_eq!(
            qr_text("Hộ kinh doanh Nguyễn Thị Lan", 25),
            "HO KINH DOANH NGUYEN THI"
        );
        assert_eq!(qr_text("TP. Hồ Chí Minh", 15), "TP. HO CHI MINH");
        assert_eq!(qr_text("Thừa Thiên Huế", 15), "THUA THIEN HUE");
        assert_eq!(qr_text("Supercalifragilistic", 5), "SUPER");
        assert_eq!(qr_text("Giá 50€ — rẻ", 25), "GIA 50 RE");
        assert_eq!(qr_text("", 25), "");
    }

    proptest! {
        #[test]
        fn qr_text_is_bounded_printable_ascii(s in any::<String>(), max in 1usize..40) {
            let t = qr_text(&s, max);
            prop_assert!(t.chars().count() <= max);
            prop_assert!(t.chars().all(|c| c == ' ' || c.is_ascii_graphic()));
            prop_assert_eq!(t.trim(), t.as_str());
        }

        #[test]
        fn search_key_is_idempotent(s in any::<String>()) {
            let once = search_key(&s);
            prop_assert_eq!(search_key(&once), once);
        }
    }
}
