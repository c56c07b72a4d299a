//! Sign-in secrets and the session cookie: random tokens (256 bits, URL-safe), kept in
//! PostgreSQL only as their SHA-256; the CSRF token a page must send back is derived from its
//! session's token, so it needs no storage and another site cannot know it.

use sha2::{Digest, Sha256};

/// The session cookie's name.
pub const COOKIE: &str = "pm_stall";

/// A fresh random token: 43 characters of base64url (32 bytes).
pub fn new_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| anyhow::anyhow!("no randomness from the OS: {e}"))?;
    Ok(base64url(&bytes))
}

/// What is stored for a token.
pub fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// The CSRF token of the session whose cookie holds `token`.
pub fn csrf_of(token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"paymesh-stall-csrf:");
    h.update(token.as_bytes());
    base64url(&h.finalize())
}

/// Whether `token` looks like one of ours (so junk never reaches the database).
pub fn plausible(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Constant-time equality of two short strings (a CSRF token compared).
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn base64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The session token in a `Cookie` header, if any.
pub fn from_cookie_header(header: &str) -> Option<&str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| plausible(v))
}

/// The `Set-Cookie` of a session lasting `max_age_seconds`: HttpOnly (the page's script cannot
/// read it), SameSite=Strict (another site's page never sends it), whole site, Secure when the
/// page is served over HTTPS.
pub fn set_cookie(token: &str, max_age_seconds: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{COOKIE}={token}; Path=/; Max-Age={max_age_seconds}; HttpOnly; SameSite=Strict{secure}"
    )
}

/// The `Set-Cookie` that removes the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    set_cookie("", 0, secure).replacen(&format!("{COOKIE}=;"), &format!("{COOKIE}=deleted;"), 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_url_safe_and_stored_hashed() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert_ne!(a, b);
        assert!(plausible(&a), "{a}");
        assert_eq!(digest(&a).len(), 32);
        assert_ne!(digest(&a), a.as_bytes());
        assert_ne!(csrf_of(&a), csrf_of(&b));
        assert!(plausible(&csrf_of(&a)));
    }

    #[test]
    fn the_cookie_is_found_among_others_and_junk_is_not_a_session() {
        let t = new_token().unwrap();
        assert_eq!(
            from_cookie_header(&format!("a=1; {COOKIE}={t}; b=2")),
            Some(t.as_str())
        );
        assert_eq!(from_cookie_header(&format!("{COOKIE}=short")), None);
        assert_eq!(from_cookie_header("other=1"), None);
        let set = set_cookie(&t, 60, false);
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"));
        assert!(!set.contains("Secure"));
        assert!(set_cookie(&t, 60, true).ends_with("; Secure"));
        assert!(clear_cookie(false).contains("Max-Age=0"));
    }

    #[test]
    fn comparison_is_exact() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
    }
}
