//! Page sizes and opaque page tokens, the same rules for every listing (AIP-158):
//! - `page_size` 0 is the listing's default, above its maximum is its maximum, negative is an
//!   error;
//! - a token is base64url of the last row's cursor (bytes the listing chooses, e.g. a sequence
//!   number) and 8 bytes of SHA-256 over the listing's name and the request's filters, so a
//!   token is refused by another listing or with other filters;
//! - an empty `next_page_token` means there is nothing more.

use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::Violations;

/// Longest cursor a listing may put in a token.
const CURSOR_BYTES_MAX: usize = 64;
const DIGEST_BYTES: usize = 8;
/// Longest token text looked at.
const TOKEN_CHARS_MAX: usize = (CURSOR_BYTES_MAX + DIGEST_BYTES).div_ceil(3) * 4;

/// A listing's page sizes.
#[derive(Debug, Clone, Copy)]
pub struct PageLimits {
    pub size_default: usize,
    pub size_max: usize,
}

/// One page request, checked: how many rows to fetch and after which cursor.
#[derive(Debug, Clone)]
pub struct Paging {
    digest: [u8; DIGEST_BYTES],
    size: usize,
    after: Option<Vec<u8>>,
}

fn digest(listing: &str, filters: &[&[u8]]) -> [u8; DIGEST_BYTES] {
    let mut h = Sha256::new();
    h.update((listing.len() as u64).to_be_bytes());
    h.update(listing.as_bytes());
    for f in filters {
        // Length-prefixed: moving a byte from one filter to the next changes the digest.
        h.update((f.len() as u64).to_be_bytes());
        h.update(f);
    }
    let d = h.finalize();
    let mut out = [0u8; DIGEST_BYTES];
    out.copy_from_slice(&d[..DIGEST_BYTES]);
    out
}

impl Paging {
    /// Checks `page_size` and `page_token` of a request to `listing` with `filters`, recording
    /// what is wrong in `v` (fields `page_size`, `page_token`).
    pub fn parse(
        v: &mut Violations,
        listing: &str,
        filters: &[&[u8]],
        page_size: i32,
        page_token: &str,
        limits: PageLimits,
    ) -> Paging {
        let size = match page_size {
            0 => limits.size_default,
            n if n < 0 => {
                v.add("page_size", format!("must not be negative, got {n}"));
                limits.size_default
            }
            n => (n as usize).min(limits.size_max),
        };
        let digest = digest(listing, filters);
        let after = if page_token.is_empty() {
            None
        } else {
            match decode(page_token, &digest) {
                Ok(cursor) => Some(cursor),
                Err(why) => {
                    v.add("page_token", why);
                    None
                }
            }
        };
        Paging {
            digest,
            size,
            after,
        }
    }

    /// Rows to fetch: one more than the page, to know whether another page follows.
    pub fn fetch_limit(&self) -> i64 {
        self.size as i64 + 1
    }

    /// The cursor the page starts after; `None` for the first page.
    pub fn after(&self) -> Option<&[u8]> {
        self.after.as_deref()
    }

    /// Cuts `rows` (fetched with [`Paging::fetch_limit`]) to the page and makes the next
    /// page's token from the last row kept (empty when nothing follows).
    pub fn finish<T>(&self, mut rows: Vec<T>, cursor: impl Fn(&T) -> Vec<u8>) -> (Vec<T>, String) {
        if rows.len() <= self.size {
            return (rows, String::new());
        }
        rows.truncate(self.size);
        let token = rows
            .last()
            .map(|last| self.token(&cursor(last)))
            .unwrap_or_default();
        (rows, token)
    }

    fn token(&self, cursor: &[u8]) -> String {
        let mut bytes = Vec::with_capacity(cursor.len() + DIGEST_BYTES);
        bytes.extend_from_slice(cursor);
        bytes.extend_from_slice(&self.digest);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }
}

fn decode(token: &str, digest: &[u8; DIGEST_BYTES]) -> Result<Vec<u8>, String> {
    let foreign = || "not a page token of this listing".to_string();
    if token.len() > TOKEN_CHARS_MAX {
        return Err(foreign());
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| foreign())?;
    if bytes.len() <= DIGEST_BYTES {
        return Err(foreign());
    }
    let (cursor, tail) = bytes.split_at(bytes.len() - DIGEST_BYTES);
    if tail != digest {
        return Err(
            "not a page token of this listing with these filters (filters must stay the same \
             from page to page)"
                .into(),
        );
    }
    Ok(cursor.to_vec())
}

/// An `i64` cursor (a sequence number) as token bytes.
pub fn i64_cursor(key: i64) -> Vec<u8> {
    key.to_be_bytes().to_vec()
}

/// The `i64` a cursor made by [`i64_cursor`] holds.
pub fn cursor_i64(cursor: &[u8]) -> Option<i64> {
    <[u8; 8]>::try_from(cursor).ok().map(i64::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: PageLimits = PageLimits {
        size_default: 50,
        size_max: 100,
    };

    fn parse(size: i32, token: &str, filters: &[&[u8]]) -> (Paging, Violations) {
        let mut v = Violations::default();
        let p = Paging::parse(&mut v, "things", filters, size, token, LIMITS);
        (p, v)
    }

    #[test]
    fn sizes_follow_aip_158() {
        assert_eq!(parse(0, "", &[]).0.size, 50);
        assert_eq!(parse(7, "", &[]).0.size, 7);
        assert_eq!(parse(100, "", &[]).0.size, 100);
        assert_eq!(parse(1000, "", &[]).0.size, 100);
        assert!(!parse(-1, "", &[]).1.is_empty());
        assert_eq!(parse(7, "", &[]).0.fetch_limit(), 8);
    }

    #[test]
    fn tokens_round_trip_and_are_bound_to_listing_and_filters() {
        let (p, _) = parse(2, "", &[b"ACTIVE", b""]);
        let (rows, token) = p.finish(vec![1i64, 2, 3], |r| i64_cursor(*r));
        assert_eq!(rows, vec![1, 2]);
        let (next, v) = parse(2, &token, &[b"ACTIVE", b""]);
        assert!(v.is_empty());
        assert_eq!(next.after().and_then(cursor_i64), Some(2));
        assert!(!parse(2, &token, &[b"REJECTED", b""]).1.is_empty());
        assert!(!parse(2, &token, &[b"ACTIV", b"E"]).1.is_empty());
        let mut v = Violations::default();
        Paging::parse(&mut v, "others", &[b"ACTIVE", b""], 2, &token, LIMITS);
        assert!(!v.is_empty());
        assert!(!parse(2, "garbage!", &[]).1.is_empty());
        assert!(!parse(2, &"A".repeat(500), &[]).1.is_empty());
    }

    #[test]
    fn the_last_page_has_no_token() {
        let (p, _) = parse(3, "", &[]);
        let (rows, token) = p.finish(vec![1i64, 2, 3], |r| i64_cursor(*r));
        assert_eq!(rows.len(), 3);
        assert!(token.is_empty());
    }
}
