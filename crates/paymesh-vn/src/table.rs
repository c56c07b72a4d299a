//! Reference lists kept as tab-separated files in a crate's `data/` folder and compiled in with
//! `include_str!` (this crate's BIN, province and prefix lists; a service's own lists, such as the
//! merchant service's accepted MCCs).
//!
//! A file is UTF-8 text: lines starting with `#` are comments, empty lines are skipped, every other
//! line is one row of tab-separated columns. Each list's module turns rows into entries and skips
//! a row it cannot read; its tests check that no row was skipped, so a bad edit to a file fails the
//! tests instead of failing (or panicking) at run time.

/// The data rows of a list, each split into its columns.
pub fn rows(text: &'static str) -> impl Iterator<Item = Vec<&'static str>> {
    text.lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|line| line.split('\t').collect())
}

/// Whether `s` is exactly `len` ASCII digits.
pub fn is_digits(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `s` has more than `max` characters, looking at no more than `max + 1` of them.
pub fn longer_than(s: &str, max: usize) -> bool {
    s.chars().nth(max).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_blank_lines_are_not_rows() {
        let text = "# header\n\n001\tHà Nội\n  \n# note\n002\tHà Giang";
        let rows: Vec<_> = rows(text).collect();
        assert_eq!(rows, vec![vec!["001", "Hà Nội"], vec!["002", "Hà Giang"]]);
    }

    #[test]
    fn digits_and_lengths() {
        assert!(is_digits("970436", 6));
        assert!(!is_digits("97043", 6));
        assert!(!is_digits("97043a", 6));
        assert!(!is_digits("９７０４３６", 6));
        assert!(!longer_than("abc", 3));
        assert!(longer_than("abcd", 3));
        assert!(!longer_than("ốốố", 3));
    }
}
