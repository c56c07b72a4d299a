//! Every bad field of a request, named, in one `INVALID_ARGUMENT`.

use crate::error::{ApiError, FieldViolation};

/// Violations kept per request; a request with more gets the first ones and a last entry
/// saying how many more there were.
pub const VIOLATIONS_MAX: usize = 100;

#[derive(Debug, Default)]
pub struct Violations {
    kept: Vec<FieldViolation>,
    dropped: usize,
}

impl Violations {
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        if self.kept.len() < VIOLATIONS_MAX {
            self.kept.push(FieldViolation::new(field, description));
        } else {
            self.dropped += 1;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// How many violations were recorded (kept or not), e.g. to tell whether an item added any.
    pub fn len(&self) -> usize {
        self.kept.len() + self.dropped
    }

    /// Parses `text` with `parse`, recording its error under `field`.
    pub fn parse<T, E: std::fmt::Display>(
        &mut self,
        field: &str,
        parsed: Result<T, E>,
    ) -> Option<T> {
        match parsed {
            Ok(value) => Some(value),
            Err(e) => {
                self.add(field, e.to_string());
                None
            }
        }
    }

    /// `Ok` when nothing was wrong, else one INVALID_ARGUMENT naming every field.
    pub fn into_result(mut self) -> Result<(), ApiError> {
        if self.kept.is_empty() {
            return Ok(());
        }
        if self.dropped > 0
            && let Some(last) = self.kept.last_mut()
        {
            last.description = format!(
                "{} (and {} more violations not listed)",
                last.description, self.dropped
            );
        }
        Err(ApiError::InvalidArgument(self.kept))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violations_are_capped_and_the_rest_counted() {
        let mut v = Violations::default();
        for i in 0..VIOLATIONS_MAX + 5 {
            v.add(format!("items[{i}]"), "bad");
        }
        let Err(ApiError::InvalidArgument(list)) = v.into_result() else {
            panic!("expected INVALID_ARGUMENT");
        };
        assert_eq!(list.len(), VIOLATIONS_MAX);
        assert!(list[VIOLATIONS_MAX - 1].description.contains("5 more"));
    }

    #[test]
    fn nothing_wrong_is_ok() {
        assert!(Violations::default().into_result().is_ok());
        let mut v = Violations::default();
        assert_eq!(v.parse::<u8, _>("n", "7".parse()), Some(7));
        assert_eq!(v.parse::<u8, _>("n", "x".parse()), None);
        assert!(!v.is_empty());
    }
}
