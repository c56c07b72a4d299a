use base64::Engine;
use jsonwebtoken::{EncodingKey, Header};

use super::layer::bearer;
use super::*;
use crate::config::AuthConfig;

/// An operator key pair (it signs every principal) and its verifier.
fn pair() -> (Minter, Verifier, String) {
    let (private, public) = generate_keypair().unwrap();
    let rules = TokenRules::test();
    let m = Minter::from_private_pem("operator", private.as_bytes(), &rules).unwrap();
    let v = Verifier::new(&[("operator", public.as_bytes())], &rules).unwrap();
    (m, v, public)
}

fn header(kid: &str) -> Header {
    let mut h = Header::new(ALGORITHM);
    h.kid = Some(kid.to_string());
    h
}

fn alice() -> Principal {
    Principal::Operator("alice".into())
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn claims(aud: &str, exp: u64) -> Claims {
    Claims {
        sub: "operator:alice".into(),
        iss: "paymesh".into(),
        aud: aud.into(),
        exp,
        iat: Some(now_secs()),
        cid: None,
    }
}

#[test]
fn good_token_names_its_principal() {
    let (m, v, _) = pair();
    for p in [
        alice(),
        Principal::Merchant("m-42".into()),
        Principal::Bank("970403".into()),
        Principal::Service("payment".into()),
    ] {
        let t = m.mint(&p, 60).unwrap();
        assert_eq!(v.verify(&t), Ok(p));
    }
}

#[test]
fn a_cached_token_still_expires() {
    let (m, v, _) = pair();
    let t = jsonwebtoken::encode(
        &header("operator"),
        &claims("paymesh", now_secs() + 1),
        &m.key,
    )
    .unwrap();
    assert_eq!(v.verify(&t), Ok(alice()));
    assert_eq!(v.verify(&t), Ok(alice()));
    std::thread::sleep(std::time::Duration::from_millis(2100));
    assert_eq!(v.verify(&t), Err("token expired".to_string()));
}

#[test]
fn expired_token_is_refused() {
    let (m, v, _) = pair();
    let t = jsonwebtoken::encode(
        &header("operator"),
        &claims("paymesh", now_secs() - 120),
        &m.key,
    )
    .unwrap();
    assert_eq!(v.verify(&t), Err("token expired".to_string()));
}

#[test]
fn wrong_audience_is_refused() {
    let (m, v, _) = pair();
    let t = jsonwebtoken::encode(
        &header("operator"),
        &claims("someone-else", now_secs() + 60),
        &m.key,
    )
    .unwrap();
    assert_eq!(
        v.verify(&t),
        Err("token audience is not accepted".to_string())
    );
}

#[test]
fn wrong_signature_is_refused() {
    let (_, v, _) = pair();
    let (other, _, _) = pair();
    let t = other.mint(&alice(), 60).unwrap();
    assert_eq!(v.verify(&t), Err("token signature is invalid".to_string()));
}

#[test]
fn alg_none_is_refused() {
    let (_, v, _) = pair();
    let header = b64(br#"{"alg":"none","typ":"JWT"}"#);
    let body = b64(serde_json::to_string(&claims("paymesh", now_secs() + 60))
        .unwrap()
        .as_bytes());
    for t in [format!("{header}.{body}."), format!("{header}.{body}")] {
        assert!(v.verify(&t).is_err(), "alg none accepted: {t}");
    }
}

#[test]
fn hs256_signed_with_the_public_key_is_refused() {
    let (_, v, public) = pair();
    let t = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims("paymesh", now_secs() + 60),
        &EncodingKey::from_secret(public.as_bytes()),
    )
    .unwrap();
    assert_eq!(
        v.verify(&t),
        Err("token algorithm must be EdDSA".to_string())
    );
}

#[test]
fn garbage_and_bad_principals_are_refused() {
    let (m, v, _) = pair();
    assert!(v.verify("").is_err());
    assert!(v.verify("a.b.c").is_err());
    assert!(v.verify(&"x".repeat(10_000)).is_err());
    let bad = Claims {
        cid: None,
        sub: "root".into(),
        ..claims("paymesh", now_secs() + 60)
    };
    let t = jsonwebtoken::encode(&header("operator"), &bad, &m.key).unwrap();
    assert!(v.verify(&t).is_err());
    assert!(Principal::parse("bank:12").is_err());
    assert!(Principal::parse("operator").is_err());
    assert_eq!(Principal::parse("operator:alice"), Ok(alice()));
    assert_eq!(alice().to_string(), "operator:alice");
    assert!(Principal::parse("merchant:").is_err());
    assert!(Principal::parse("merchant:a b").is_err());
}

#[test]
fn dev_keys_are_read_by_openssl() {
    let (private, public) = generate_keypair().unwrap();
    let dir = std::env::temp_dir().join(format!("paymesh-keys-{}", now_secs_nanos()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text, args) in [
        ("private.pem", &private, &["pkey", "-noout", "-in"][..]),
        (
            "public.pem",
            &public,
            &["pkey", "-pubin", "-noout", "-in"][..],
        ),
    ] {
        assert!(text.contains(if name == "private.pem" {
            "-----BEGIN PRIVATE KEY-----"
        } else {
            "-----BEGIN PUBLIC KEY-----"
        }));
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let out = std::process::Command::new("openssl")
            .args(args)
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl refused {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn now_secs_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

#[test]
fn a_token_without_a_key_id_is_refused() {
    let (m, v, _) = pair();
    let t = jsonwebtoken::encode(
        &Header::new(ALGORITHM),
        &claims("paymesh", now_secs() + 60),
        &m.key,
    )
    .unwrap();
    assert!(v.verify(&t).is_err(), "a token without kid was accepted");
}

#[test]
fn a_token_living_longer_than_the_maximum_is_refused() {
    let (m, v, _) = pair();
    let long = Claims {
        exp: now_secs() + 2 * 86_400,
        ..claims("paymesh", 0)
    };
    let t = jsonwebtoken::encode(&header("operator"), &long, &m.key).unwrap();
    assert!(v.verify(&t).is_err(), "a two-day token was accepted");
    let future = Claims {
        iat: Some(now_secs() + 600),
        ..claims("paymesh", now_secs() + 900)
    };
    let t = jsonwebtoken::encode(&header("operator"), &future, &m.key).unwrap();
    assert!(
        v.verify(&t).is_err(),
        "a token issued in the future was accepted"
    );
}

#[test]
fn keys_rotate_with_overlap_and_unknown_keys_are_refused() {
    let rules = TokenRules::test();
    let (old_private, old_public) = generate_keypair().unwrap();
    let (new_private, new_public) = generate_keypair().unwrap();
    let old = Minter::from_private_pem("mesh-1", old_private.as_bytes(), &rules).unwrap();
    let new = Minter::from_private_pem("mesh-2", new_private.as_bytes(), &rules).unwrap();
    let both = Verifier::new(
        &[
            ("mesh-1", old_public.as_bytes()),
            ("mesh-2", new_public.as_bytes()),
        ],
        &rules,
    )
    .unwrap();
    let p = Principal::Service("merchant".into());
    assert_eq!(both.verify(&old.mint(&p, 60).unwrap()), Ok(p.clone()));
    assert_eq!(both.verify(&new.mint(&p, 60).unwrap()), Ok(p.clone()));
    // The old key retired: its tokens are refused, the new key's still pass.
    let only_new = Verifier::new(&[("mesh-2", new_public.as_bytes())], &rules).unwrap();
    assert_eq!(
        only_new.verify(&old.mint(&p, 60).unwrap()),
        Err("token signing key (kid) is not known".to_string())
    );
    assert_eq!(only_new.verify(&new.mint(&p, 60).unwrap()), Ok(p));
    // A known kid on a token signed by another key: the signature check catches it.
    let (forger, _, _) = pair();
    let t = jsonwebtoken::encode(
        &header("mesh-2"),
        &claims("paymesh", now_secs() + 60),
        &forger.key,
    )
    .unwrap();
    assert!(only_new.verify(&t).is_err());
}

#[test]
fn only_operator_keys_sign_operator_tokens() {
    let rules = TokenRules::test();
    let (private, public) = generate_keypair().unwrap();
    let mesh = Minter::from_private_pem("mesh", private.as_bytes(), &rules).unwrap();
    let v = Verifier::new(&[("mesh", public.as_bytes())], &rules).unwrap();
    // The minter refuses …
    let e = mesh.mint(&alice(), 60).unwrap_err().to_string();
    assert!(e.contains("may not sign operator tokens"), "{e}");
    assert!(mesh.mint_for_credential(&alice(), 60, "c1").is_err());
    // … and the verifier refuses one forged with the key anyway.
    let t = jsonwebtoken::encode(
        &header("mesh"),
        &claims("paymesh", now_secs() + 60),
        &mesh.key,
    )
    .unwrap();
    assert_eq!(
        v.verify(&t),
        Err("key mesh may not sign operator tokens".to_string())
    );
    // Everything else it signs.
    for p in [
        Principal::Service("merchant".into()),
        Principal::Merchant("m1".into()),
    ] {
        assert_eq!(v.verify(&mesh.mint(&p, 60).unwrap()), Ok(p));
    }
    assert!(key_may_sign("operator-2026", &alice()));
    assert!(!key_may_sign("operators", &alice()));
}

#[test]
fn minting_is_bounded_by_the_maximum_lifetime() {
    let (m, v, _) = pair();
    let e = m.mint(&alice(), 3601).unwrap_err().to_string();
    assert_eq!(
        e,
        "ttl 3601 s is over auth.token_lifetime_max_seconds (3600 s)"
    );
    assert!(v.verify(&m.mint(&alice(), 3600).unwrap()).is_ok());
    let no_iat = Claims {
        iat: None,
        ..claims("paymesh", now_secs() + 60)
    };
    let t = jsonwebtoken::encode(&header("operator"), &no_iat, &m.key).unwrap();
    assert_eq!(v.verify(&t), Err("token lacks claim iat".to_string()));
}

#[test]
fn ensure_keys_writes_both_pairs_once() {
    let dir = std::env::temp_dir().join(format!("paymesh-ensure-{}", now_secs_nanos()));
    let cfg = AuthConfig {
        issuer: "paymesh".into(),
        audience: "paymesh".into(),
        public_keys_dir: dir.join("public"),
        private_key_file: dir.join("private/mesh.pem"),
        operator_private_key_file: dir.join("private/operator.pem"),
        leeway_seconds: 0,
        token_lifetime_max_seconds: 3600,
    };
    assert_eq!(ensure_keys(&cfg).unwrap().len(), 4);
    assert!(ensure_keys(&cfg).unwrap().is_empty());
    // A lost public key is derived again from its private key.
    std::fs::remove_file(dir.join("public/mesh.pem")).unwrap();
    assert_eq!(
        ensure_keys(&cfg).unwrap(),
        vec![dir.join("public/mesh.pem")]
    );
    let v = Verifier::from_config(&cfg).unwrap();
    assert_eq!(v.key_ids(), vec!["mesh", "operator"]);
    let services = Minter::from_config(&cfg).unwrap();
    let operators = Minter::operator_from_config(&cfg).unwrap();
    let p = Principal::Service("demo".into());
    assert_eq!(v.verify(&services.mint(&p, 60).unwrap()), Ok(p));
    assert_eq!(
        v.verify(&operators.mint(&alice(), 60).unwrap()),
        Ok(alice())
    );
    // The services may not be given the operator key.
    let swapped = AuthConfig {
        private_key_file: dir.join("private/operator.pem"),
        ..cfg.clone()
    };
    assert!(Minter::from_config(&swapped).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bearer_parsing() {
    let mut h = http::HeaderMap::new();
    assert!(bearer(&h).is_err());
    h.insert(
        http::header::AUTHORIZATION,
        http::HeaderValue::from_static("Basic abc"),
    );
    assert!(bearer(&h).is_err());
    h.insert(
        http::header::AUTHORIZATION,
        http::HeaderValue::from_static("Bearer abc"),
    );
    assert_eq!(bearer(&h), Ok("abc"));
}
