//! Signing tokens and making key pairs (PKCS#8 / SPKI PEM, as OpenSSL writes them).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use jsonwebtoken::{EncodingKey, Header};

use super::*;
use crate::config::AuthConfig;

/// Signs tokens (dev, demo, service-to-service) with one key, named in each token's `kid`.
#[derive(Clone)]
pub struct Minter {
    pub(super) key: Arc<EncodingKey>,
    kid: String,
    issuer: String,
    audience: String,
    lifetime_max: u64,
}

impl Minter {
    pub fn from_private_pem(kid: &str, pem: &[u8], rules: &TokenRules) -> anyhow::Result<Minter> {
        anyhow::ensure!(
            is_plain_id(kid, KEY_ID_CHARS_MAX),
            "key id {kid:?} must be 1-64 characters of [A-Za-z0-9._-]"
        );
        let key = EncodingKey::from_ed_pem(pem)
            .context("auth private key is not an Ed25519 PKCS#8 PEM")?;
        Ok(Minter {
            key: Arc::new(key),
            kid: kid.to_string(),
            issuer: rules.issuer.clone(),
            audience: rules.audience.clone(),
            lifetime_max: rules.lifetime_max_seconds,
        })
    }

    /// The key the services sign with: `auth.private_key_file`, never an operator key.
    pub fn from_config(cfg: &AuthConfig) -> anyhow::Result<Minter> {
        let minter = Minter::from_file(&cfg.private_key_file, cfg)
            .context("auth.private_key_file (the services' signing key)")?;
        anyhow::ensure!(
            !is_operator_key(&minter.kid),
            "auth.private_key_file {} is an operator key (its id is {}): services sign with a key that cannot mint operator tokens",
            cfg.private_key_file.display(),
            minter.kid
        );
        Ok(minter)
    }

    /// The operators' key (`auth.operator_private_key_file`): the CLI's tokens.
    pub fn operator_from_config(cfg: &AuthConfig) -> anyhow::Result<Minter> {
        Minter::from_file(&cfg.operator_private_key_file, cfg)
            .context("auth.operator_private_key_file (the operators' signing key)")
    }

    fn from_file(path: &Path, cfg: &AuthConfig) -> anyhow::Result<Minter> {
        let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Minter::from_private_pem(&key_id_of(path)?, &pem, &TokenRules::from_config(cfg))
    }

    /// The id of the key this minter signs with.
    pub fn key_id(&self) -> &str {
        &self.kid
    }

    /// Longest lifetime this minter signs.
    pub fn lifetime_max(&self) -> u64 {
        self.lifetime_max
    }

    pub fn mint(&self, principal: &Principal, ttl_seconds: u64) -> anyhow::Result<String> {
        self.mint_claims(principal, ttl_seconds, None)
    }

    /// A token for what an API credential was exchanged for; revoking the credential revokes it.
    pub fn mint_for_credential(
        &self,
        principal: &Principal,
        ttl_seconds: u64,
        credential_id: &str,
    ) -> anyhow::Result<String> {
        self.mint_claims(principal, ttl_seconds, Some(credential_id.to_string()))
    }

    fn mint_claims(
        &self,
        principal: &Principal,
        ttl_seconds: u64,
        cid: Option<String>,
    ) -> anyhow::Result<String> {
        anyhow::ensure!(
            ttl_seconds <= self.lifetime_max,
            "ttl {ttl_seconds} s is over auth.token_lifetime_max_seconds ({} s)",
            self.lifetime_max
        );
        anyhow::ensure!(
            key_may_sign(&self.kid, principal),
            "key {} may not sign {} tokens (only operator keys do)",
            self.kid,
            principal.kind()
        );
        let now = now_secs();
        let claims = Claims {
            sub: principal.to_string(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: Some(now),
            exp: now + ttl_seconds,
            cid,
        };
        let mut header = Header::new(ALGORITHM);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.key).context("signing token")
    }
}

/// PEM texts of a fresh Ed25519 key pair, as `openssl genpkey -algorithm ed25519` writes them:
/// (PKCS#8 v1 `PRIVATE KEY`, SPKI `PUBLIC KEY`).
pub fn generate_keypair() -> anyhow::Result<(String, String)> {
    use ed25519_dalek::pkcs8::{EncodePrivateKey, KeypairBytes};
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    // Only the seed (PKCS#8 v1): OpenSSL 3 and Python's `cryptography` refuse the v2 form
    // with the public key appended.
    let private = KeypairBytes {
        secret_key: seed,
        public_key: None,
    }
    .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
    .map_err(|e| anyhow::anyhow!("encoding private key: {e}"))?;
    let public = public_pem_of_seed(&seed)?;
    Ok((private.to_string(), public))
}

fn public_pem_of_seed(seed: &[u8; 32]) -> anyhow::Result<String> {
    use ed25519_dalek::pkcs8::{EncodePublicKey, spki::der::pem::LineEnding};
    ed25519_dalek::SigningKey::from_bytes(seed)
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| anyhow::anyhow!("encoding public key: {e}"))
}

/// The public PEM of a private PKCS#8 PEM.
fn public_pem_of(private_pem: &str) -> anyhow::Result<String> {
    use ed25519_dalek::pkcs8::DecodePrivateKey;
    let signing = ed25519_dalek::SigningKey::from_pkcs8_pem(private_pem)
        .map_err(|e| anyhow::anyhow!("not an Ed25519 PKCS#8 key: {e}"))?;
    public_pem_of_seed(&signing.to_bytes())
}

/// Creates what is missing of the services' and the operators' key pairs: each private key at
/// its configured file, its public key as `<kid>.pem` in `auth.public_keys_dir`. Returns the
/// files written.
pub fn ensure_keys(cfg: &AuthConfig) -> anyhow::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for private_file in [&cfg.private_key_file, &cfg.operator_private_key_file] {
        let kid = key_id_of(private_file)?;
        let public_file = cfg.public_keys_dir.join(format!("{kid}.pem"));
        let public = if private_file.exists() {
            if public_file.exists() {
                continue;
            }
            let text = std::fs::read_to_string(private_file)
                .with_context(|| format!("reading {}", private_file.display()))?;
            public_pem_of(&text).with_context(|| format!("{}", private_file.display()))?
        } else {
            let (private, public) = generate_keypair()?;
            write_file(private_file, &private, 0o600)?;
            written.push(private_file.clone());
            public
        };
        write_file(&public_file, &public, 0o644)?;
        written.push(public_file);
    }
    Ok(written)
}

fn write_file(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
