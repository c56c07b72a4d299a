//! Page sizes and opaque page tokens (AIP-158).
//!
//! A token is base64url of: a one-byte tag naming the listing, the last row's key (an
//! increasing 64-bit number), and 8 bytes of SHA-256 over the listing's filters. A token is
//! refused when it was issued for another listing or other filters, so a client cannot page
//! through one query with the cursor of another.

use base64::Engine as _;
use sha2::{Digest, Sha256};

pub const PAGE_SIZE_DEFAULT: i64 = 50;
pub const PAGE_SIZE_MAX: i64 = 100;
const TOKEN_BYTES: usize = 1 + 8 + 8;
/// Longest token text looked at.
const TOKEN_CHARS_MAX: usize = 64;

/// Which listing a token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Listing {
    Merchants = 1,
    AuditEvents = 2,
    Credentials = 3,
}

/// The page size to use: 0 is the default, above the maximum is the maximum (AIP-158),
/// negative is an error.
pub fn page_size(requested: i32) -> Result<i64, String> {
    match i64::from(requested) {
        0 => Ok(PAGE_SIZE_DEFAULT),
        n if n < 0 => Err(format!("must not be negative, got {n}")),
        n => Ok(n.min(PAGE_SIZE_MAX)),
    }
}

fn digest(filters: &[&str]) -> [u8; 8] {
    let mut h = Sha256::new();
    for f in filters {
        h.update((f.len() as u64).to_be_bytes());
        h.update(f.as_bytes());
    }
    let d = h.finalize();
    let mut out = [0u8; 8];
    out.copy_from_slice(d.get(..8).unwrap_or(&[0; 8]));
    out
}

pub fn encode(listing: Listing, last_key: i64, filters: &[&str]) -> String {
    let mut bytes = Vec::with_capacity(TOKEN_BYTES);
    bytes.push(listing as u8);
    bytes.extend_from_slice(&last_key.to_be_bytes());
    bytes.extend_from_slice(&digest(filters));
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The key after which the next page starts; `None` for an empty token (the first page).
pub fn decode(listing: Listing, token: &str, filters: &[&str]) -> Result<Option<i64>, String> {
    if token.is_empty() {
        return Ok(None);
    }
    let foreign = || "not a page token of this listing".to_string();
    if token.len() > TOKEN_CHARS_MAX {
        return Err(foreign());
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| foreign())?;
    if bytes.len() != TOKEN_BYTES || bytes.first() != Some(&(listing as u8)) {
        return Err(foreign());
    }
    let key = bytes
        .get(1..9)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(i64::from_be_bytes)
        .ok_or_else(foreign)?;
    if bytes.get(9..) != Some(&digest(filters)[..]) {
        return Err("the filters differ from those of the request that returned this token".into());
    }
    Ok(Some(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(page_size(0), Ok(50));
        assert_eq!(page_size(7), Ok(7));
        assert_eq!(page_size(100), Ok(100));
        assert_eq!(page_size(1000), Ok(100));
        assert!(page_size(-1).is_err());
    }

    #[test]
    fn tokens_round_trip_and_are_bound_to_listing_and_filters() {
        let t = encode(Listing::Merchants, 42, &["ACTIVE", ""]);
        assert_eq!(
            decode(Listing::Merchants, &t, &["ACTIVE", ""]),
            Ok(Some(42))
        );
        assert!(decode(Listing::Merchants, &t, &["REJECTED", ""]).is_err());
        assert!(decode(Listing::AuditEvents, &t, &["ACTIVE", ""]).is_err());
        // Filters are length-prefixed: moving a character between two does not collide.
        assert!(decode(Listing::Merchants, &t, &["ACTIV", "E"]).is_err());
        assert_eq!(decode(Listing::Merchants, "", &[]), Ok(None));
        assert!(decode(Listing::Merchants, "garbage!", &[]).is_err());
        assert!(decode(Listing::Merchants, &"A".repeat(500), &[]).is_err());
    }
}
