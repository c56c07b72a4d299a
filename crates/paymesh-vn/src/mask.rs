//! Masking of personal data for `Display` and `Debug` (DESIGN §7: citizen ids, phone numbers and
//! account numbers are masked in logs).

use std::fmt::{self, Write};

/// Writes `value` with every character but the first `keep_start` and the last `keep_end`
/// replaced by `*`. Callers keep fewer characters than the value has, so the whole value never
/// appears.
pub(crate) fn write_masked(
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
