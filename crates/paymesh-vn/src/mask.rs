//! Masking of personal data for `Display` and `Debug`: citizen ids, phone numbers, account numbers
//! and household tax codes are masked wherever they are shown.

use std::fmt::{self, Write};

/// Writes `value` with every character but the first `keep_start` and the last `keep_end`
/// replaced by `*`. Callers keep fewer characters than the value has, so the whole value never
/// appears.
pub fn write_masked(
    f: &mut fmt::Formatter<'_>,
    value: &str,
    keep_start: usize,
    keep_end: usize,
) -> fmt::Result {
    let len = value.chars().count();
    for (i, c) in value.chars().enumerate() {
        let shown = i < keep_start || i + keep_end >= len;
        f.write_char(if shown { c } else { '*' })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Masked(&'static str, usize, usize);

    impl fmt::Display for Masked {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write_masked(f, self.0, self.1, self.2)
        }
    }

    #[test]
    fn keeps_the_ends_and_counts_characters_not_bytes() {
        assert_eq!(Masked("001087123489", 3, 2).to_string(), "001*******89");
        assert_eq!(Masked("+84901234567", 5, 3).to_string(), "+8490****567");
        assert_eq!(Masked("Đặng", 1, 1).to_string(), "Đ**g");
        assert_eq!(Masked("abc", 0, 0).to_string(), "***");
        assert_eq!(Masked("", 3, 2).to_string(), "");
    }
}
