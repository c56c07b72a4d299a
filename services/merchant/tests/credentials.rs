#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

//! API credentials: issued by an operator (the secret shown once, only its hash kept),
//! exchanged for a short-lived merchant token, refused from the moment they are revoked.
//!
//! Everything goes over gRPC through the real tower stack: the exchange is the one merchant RPC
//! the JWT layer lets through, because it authenticates the `pmk_` credential itself.

mod support;

use std::time::{Duration, Instant};

use base64::Engine as _;
use paymesh_platform::auth::Principal;
use paymesh_proto::merchant::v1 as pb;
use sha2::{Digest, Sha256};
use support::*;
use tonic::Code;

async fn exchange(
    mesh: &Mesh,
    authorization: &str,
) -> Result<pb::ExchangeCredentialResponse, tonic::Status> {
    let mut request = tonic::Request::new(pb::ExchangeCredentialRequest {});
    request
        .metadata_mut()
        .insert("authorization", authorization.parse().unwrap());
    let channel = paymesh_platform::client::channel(&mesh.merchant_addr.to_string()).unwrap();
    pb::merchant_service_client::MerchantServiceClient::new(channel)
        .exchange_credential(request)
        .await
        .map(tonic::Response::into_inner)
}

async fn issue(mesh: &Mesh, id: &str, name: &str) -> pb::IssueCredentialResponse {
    mesh.operator()
        .issue_credential(keyed(pb::IssueCredentialRequest {
            merchant_id: id.into(),
            display_name: name.into(),
        }))
        .await
        .unwrap()
        .into_inner()
}

fn unauthenticated(r: Result<pb::ExchangeCredentialResponse, tonic::Status>) {
    let e = r.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    assert_eq!(e.message(), "invalid API credential");
}

#[tokio::test]
async fn issue_exchange_and_revoke() {
    let mesh = start().await;
    let m = mesh.onboard(pb::MerchantKind::Vendor, vendor()).await;
    mesh.approve(&m.id).await;

    // Keys live in Redis across test runs: each run uses its own.
    let key = &unique_key("issue-pos");
    let request = || pb::IssueCredentialRequest {
        merchant_id: m.id.clone(),
        display_name: "POS server, sạp A-45".into(),
    };
    let issued = mesh
        .operator()
        .issue_credential(with_key(request(), key))
        .await
        .unwrap()
        .into_inner();
    let credential = issued.credential.clone().unwrap();
    let secret = issued.secret.clone();
    assert!(
        secret.starts_with(&format!("pmk_{}_", credential.id)),
        "{secret}"
    );
    assert_eq!(secret.len(), paymesh_merchant::credential::TOKEN_CHARS);
    assert_eq!(credential.merchant_id, m.id);
    assert_eq!(credential.display_name, "POS server, sạp A-45");
    assert!(credential.revoke_time.is_none());

    // Only the SHA-256 of the secret is kept; the secret is nowhere in the database, not even
    // in the stored idempotent response.
    let secret_part = &secret[secret.len() - 64..];
    let stored: Vec<u8> = sqlx::query_scalar("SELECT secret_sha256 FROM merchant.credentials")
        .fetch_one(&mesh.pool)
        .await
        .unwrap();
    assert_eq!(stored, Sha256::digest(secret_part.as_bytes()).to_vec());
    let responses: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT response FROM merchant.idempotency_keys WHERE response IS NOT NULL",
    )
    .fetch_all(&mesh.pool)
    .await
    .unwrap();
    assert!(!responses.is_empty());
    for r in &responses {
        assert!(!r.windows(64).any(|w| w == secret_part.as_bytes()));
    }

    // A retry with the same key: the same credential without its secret (the secret is shown
    // once and kept nowhere), while Redis holds the key…
    let replay = mesh
        .operator()
        .issue_credential(with_key(request(), key))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replay.credential, issued.credential);
    assert_eq!(replay.secret, "");
    // …and once Redis forgot it; never a second one.
    mesh.flush_redis().await;
    let replay = mesh
        .operator()
        .issue_credential(with_key(request(), key))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replay.credential, issued.credential);
    assert_eq!(replay.secret, "");
    assert_eq!(mesh.count("credentials").await, 1);

    // The exchange: a token of the merchant's principal, which the mesh accepts.
    let exchanged = exchange(&mesh, &format!("Bearer {secret}")).await.unwrap();
    assert_eq!(exchanged.merchant_id, m.id);
    assert!(exchanged.expire_time.is_some());
    assert_eq!(
        mesh.verifier.verify(&exchanged.access_token),
        Ok(Principal::Merchant(m.id.clone()))
    );
    let as_credential = || {
        paymesh_proto::merchant::v1::merchant_service_client::MerchantServiceClient::with_interceptor(
            paymesh_platform::client::channel(&mesh.merchant_addr.to_string()).unwrap(),
            paymesh_platform::client::CallContext::with_token(&exchanged.access_token).unwrap(),
        )
    };
    let read_own = || async {
        as_credential()
            .get_merchant(pb::GetMerchantRequest {
                merchant_id: m.id.clone(),
            })
            .await
    };
    assert_eq!(read_own().await.unwrap().into_inner().id, m.id);

    // Anything else is refused, with one message for every case.
    let mut wrong = secret.clone();
    let last = wrong.pop().unwrap();
    wrong.push(if last == '0' { '1' } else { '0' });
    unauthenticated(exchange(&mesh, &format!("Bearer {wrong}")).await);
    let unknown = paymesh_merchant::credential::generate().unwrap();
    unauthenticated(exchange(&mesh, &format!("Bearer {}", unknown.token)).await);
    unauthenticated(exchange(&mesh, "Bearer pmk_garbage").await);
    unauthenticated(exchange(&mesh, &format!("Basic {secret}")).await);
    unauthenticated(exchange(&mesh, &format!("Bearer {}", exchanged.access_token)).await);

    // Listing shows it, without any secret.
    let listed = mesh
        .operator()
        .list_credentials(pb::ListCredentialsRequest {
            merchant_id: m.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.credentials, vec![credential.clone()]);

    // Revoked: refused from that moment on.
    let revoked = mesh
        .operator()
        .revoke_credential(keyed(pb::RevokeCredentialRequest {
            merchant_id: m.id.clone(),
            credential_id: credential.id.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(revoked.revoke_time.is_some());
    unauthenticated(exchange(&mesh, &format!("Bearer {secret}")).await);
    // … and so is the token it was exchanged for, though that token has not expired.
    assert_eq!(read_own().await.unwrap_err().code(), Code::Unauthenticated);
    // A Redis flush loses the revocation list; the service rewrites it from the database every
    // 5 s, so after that the token is refused again. (In the seconds between, a revoked
    // credential's token would pass: the residual risk of a flush, bounded by that interval.)
    mesh.flush_redis().await;
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    assert_eq!(read_own().await.unwrap_err().code(), Code::Unauthenticated);
    // Revoking again changes nothing (and logs nothing).
    let events = mesh.count("audit_events").await;
    let again = mesh
        .operator()
        .revoke_credential(keyed(pb::RevokeCredentialRequest {
            merchant_id: m.id.clone(),
            credential_id: credential.id.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, revoked);
    assert_eq!(mesh.count("audit_events").await, events);
}

#[tokio::test]
async fn limits_and_refusals() {
    let mesh = start().await;
    let m = mesh.onboard(pb::MerchantKind::Vendor, vendor()).await;
    let other = mesh.onboard(pb::MerchantKind::Vendor, vendor()).await;
    let mut op = mesh.operator();

    // Bad input: every field named.
    let e = op
        .issue_credential(keyed(pb::IssueCredentialRequest {
            merchant_id: "x".into(),
            display_name: "\n".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&e), ["merchant_id", "display_name"]);
    let e = op
        .revoke_credential(keyed(pb::RevokeCredentialRequest {
            merchant_id: m.id.clone(),
            credential_id: "not-hex".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&e), ["credential_id"]);

    // At most ten valid credentials at once.
    let mut issued = Vec::new();
    for i in 0..paymesh_merchant::service::credentials::CREDENTIALS_PER_MERCHANT_MAX {
        issued.push(issue(&mesh, &m.id, &format!("server {i}")).await);
    }
    let e = op
        .issue_credential(keyed(pb::IssueCredentialRequest {
            merchant_id: m.id.clone(),
            display_name: "one too many".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(reason(&e), "TOO_MANY_CREDENTIALS");

    // A credential is revoked only through its own merchant.
    let first = issued[0].credential.clone().unwrap();
    let e = op
        .revoke_credential(keyed(pb::RevokeCredentialRequest {
            merchant_id: other.id.clone(),
            credential_id: first.id.clone(),
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    // Paging through them.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = op
            .list_credentials(pb::ListCredentialsRequest {
                merchant_id: m.id.clone(),
                page_size: 3,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.credentials.into_iter().map(|c| c.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let want: Vec<String> = issued
        .iter()
        .map(|i| i.credential.as_ref().unwrap().id.clone())
        .collect();
    assert_eq!(seen, want);

    // A pending merchant's credential is not exchanged (only an ACTIVE merchant's is);
    // closing the merchant revokes them all.
    unauthenticated(exchange(&mesh, &format!("Bearer {}", issued[1].secret)).await);
    op.close_merchant(keyed(pb::CloseMerchantRequest {
        merchant_id: m.id.clone(),
        reason: "closed".into(),
    }))
    .await
    .unwrap();
    for i in &issued {
        unauthenticated(exchange(&mesh, &format!("Bearer {}", i.secret)).await);
    }
    let open: i64 =
        sqlx::query_scalar("SELECT count(*) FROM merchant.credentials WHERE revoked_at IS NULL")
            .fetch_one(&mesh.pool)
            .await
            .unwrap();
    assert_eq!(open, 0);
    let e = op
        .issue_credential(keyed(pb::IssueCredentialRequest {
            merchant_id: m.id.clone(),
            display_name: "after close".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(reason(&e), "MERCHANT_CLOSED");

    // A rejected merchant gets none.
    op.reject_merchant(keyed(pb::RejectMerchantRequest {
        merchant_id: other.id.clone(),
        reason: "documents forged".into(),
        etag: mesh.etag(&other.id).await,
    }))
    .await
    .unwrap();
    let e = op
        .issue_credential(keyed(pb::IssueCredentialRequest {
            merchant_id: other.id.clone(),
            display_name: "x".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(reason(&e), "MERCHANT_REJECTED");
}

/// Revocation never fails open: a merchant service with no revocation list to publish to (no
/// Redis at start-up) neither hands out credential tokens nor claims to revoke a credential.
#[tokio::test]
async fn without_a_revocation_list_credentials_are_neither_exchanged_nor_revoked() {
    let mesh = start_without_redis().await;
    let m = mesh.onboard(pb::MerchantKind::Vendor, vendor()).await;
    mesh.approve(&m.id).await;
    let issued = issue(&mesh, &m.id, "POS").await;
    let credential = issued.credential.unwrap();

    let e = exchange(&mesh, &format!("Bearer {}", issued.secret))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");

    let e = mesh
        .operator()
        .revoke_credential(keyed(pb::RevokeCredentialRequest {
            merchant_id: m.id.clone(),
            credential_id: credential.id.clone(),
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    // Nothing was revoked: the operator sees the failure and retries once Redis is back.
    let open: i64 =
        sqlx::query_scalar("SELECT count(*) FROM merchant.credentials WHERE revoked_at IS NULL")
            .fetch_one(&mesh.pool)
            .await
            .unwrap();
    assert_eq!(open, 1);
}

/// Whether `text` holds `secret`: as is, hex-encoded (bytea as JSON), or inside a base64
/// string (a stored response).
fn holds(text: &[u8], secret: &str) -> bool {
    let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
    let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    if contains(text, secret.as_bytes()) || contains(text, hex.as_bytes()) {
        return true;
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    text.split(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')))
        .filter(|run| run.len() >= 8)
        .filter_map(|run| b64.decode(run).ok())
        .any(|decoded| contains(&decoded, secret.as_bytes()))
}

/// Every value under the mesh's Redis prefix, as bytes.
async fn redis_values(mesh: &Mesh) -> Vec<(String, Vec<u8>)> {
    let mut conn = mesh.kit.redis();
    let mut cursor = 0u64;
    let mut out = Vec::new();
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{}*", mesh.kit.redis_prefix))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .unwrap();
        for key in keys {
            let kind: String = redis::cmd("TYPE")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            let values: Vec<Vec<u8>> = match kind.as_str() {
                "string" => vec![
                    redis::cmd("GET")
                        .arg(&key)
                        .query_async(&mut conn)
                        .await
                        .unwrap(),
                ],
                "hash" => redis::cmd("HGETALL")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .unwrap(),
                "list" => redis::cmd("LRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut conn)
                    .await
                    .unwrap(),
                "set" => redis::cmd("SMEMBERS")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .unwrap(),
                "zset" => redis::cmd("ZRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut conn)
                    .await
                    .unwrap(),
                "none" => vec![], // expired meanwhile
                other => panic!("{key}: unexpected Redis type {other}"),
            };
            out.extend(values.into_iter().map(|v| (key.clone(), v)));
        }
        if next == 0 {
            return out;
        }
        cursor = next;
    }
}

#[tokio::test]
async fn the_secret_is_stored_nowhere_and_a_retry_answers_without_it() {
    let mesh = start().await;
    let m = mesh.onboard(pb::MerchantKind::Vendor, vendor()).await;
    mesh.approve(&m.id).await;
    let key = &unique_key("issue-at-rest");
    let request = || pb::IssueCredentialRequest {
        merchant_id: m.id.clone(),
        display_name: "Quầy thu ngân".into(),
    };
    let issued = mesh
        .operator()
        .issue_credential(with_key(request(), key))
        .await
        .unwrap()
        .into_inner();
    let secret = issued.secret.clone();
    let secret_part = &secret[secret.len() - 64..];
    assert!(secret.starts_with("pmk_"), "{secret}");

    // Redis: every key of this mesh, every value.
    let values = redis_values(&mesh).await;
    assert!(
        values.iter().any(|(k, _)| k.contains("idem:")),
        "the layer still claims the key in Redis: {:?}",
        values.iter().map(|(k, _)| k).collect::<Vec<_>>()
    );
    for (k, v) in &values {
        assert!(
            !holds(v, &secret) && !holds(v, secret_part),
            "Redis key {k} holds the secret"
        );
    }

    // PostgreSQL: the stored idempotent responses, and every row of every merchant table.
    let responses: Vec<Vec<u8>> =
        sqlx::query_scalar::<_, Option<Vec<u8>>>("SELECT response FROM merchant.idempotency_keys")
            .fetch_all(&mesh.pool)
            .await
            .unwrap()
            .into_iter()
            .flatten()
            .collect::<Vec<Vec<u8>>>();
    assert!(!responses.is_empty());
    for r in &responses {
        assert!(!holds(r, &secret) && !holds(r, secret_part));
    }
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = 'merchant' AND table_type = 'BASE TABLE'",
    )
    .fetch_all(&mesh.pool)
    .await
    .unwrap();
    assert!(tables.iter().any(|t| t == "credentials"), "{tables:?}");
    for table in &tables {
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT row_to_json(t)::text FROM merchant.\"{table}\" t"
        )))
        .fetch_all(&mesh.pool)
        .await
        .unwrap();
        for row in &rows {
            assert!(
                !holds(row.as_bytes(), &secret) && !holds(row.as_bytes(), secret_part),
                "merchant.{table} holds the secret: {row}"
            );
        }
    }

    // A retry with the same key, while Redis holds the key and after a flush: the same
    // credential, without its secret; never a second one.
    for flushed in [false, true] {
        if flushed {
            mesh.flush_redis().await;
        }
        let replay = mesh
            .operator()
            .issue_credential(with_key(request(), key))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(replay.credential, issued.credential, "flushed: {flushed}");
        assert_eq!(replay.secret, "", "flushed: {flushed}");
    }
    assert_eq!(mesh.count("credentials").await, 1);
    for (k, v) in redis_values(&mesh).await {
        assert!(!holds(&v, &secret), "Redis key {k} holds the secret");
    }
    // The same key for another request is still refused.
    let other = mesh
        .operator()
        .issue_credential(with_key(
            pb::IssueCredentialRequest {
                merchant_id: m.id.clone(),
                display_name: "another".into(),
            },
            key,
        ))
        .await
        .unwrap_err();
    assert_eq!(other.code(), Code::FailedPrecondition, "{other:?}");
}

#[tokio::test]
async fn expired_idempotency_keys_are_swept_and_fresh_ones_stay() {
    let kit = paymesh_testkit::TestMesh::start_with(
        &[&paymesh_ledger::SERVICE, &paymesh_merchant::SERVICE],
        &[
            ("ledger.writers", "1"),
            ("idempotency.sweep_interval_ms", "200"),
        ],
    )
    .await;
    // More expired rows than one sweep batch deletes, and a few fresh ones.
    sqlx::query(
        "INSERT INTO merchant.idempotency_keys (scope_key, fingerprint, response, expires_at) \
         SELECT 'old-' || i, '\\x00', '\\x00', now() - interval '1 second' \
         FROM generate_series(1, 2500) i",
    )
    .execute(&kit.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO merchant.idempotency_keys (scope_key, fingerprint, response, expires_at) \
         SELECT 'new-' || i, '\\x00', '\\x00', now() + interval '1 hour' \
         FROM generate_series(1, 3) i",
    )
    .execute(&kit.pool)
    .await
    .unwrap();
    let count = |prefix: &'static str| {
        let pool = kit.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM merchant.idempotency_keys WHERE scope_key LIKE $1",
            )
            .bind(format!("{prefix}%"))
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    // Within a few intervals.
    let deadline = Instant::now() + Duration::from_secs(5);
    while count("old-").await > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(count("old-").await, 0, "expired keys are swept");
    assert_eq!(count("new-").await, 3, "fresh keys stay");
}

/// GetMerchant of its own id with a token an API credential was exchanged for.
async fn read_own_with(mesh: &Mesh, token: &str, id: &str) -> Result<pb::Merchant, tonic::Status> {
    pb::merchant_service_client::MerchantServiceClient::with_interceptor(
        paymesh_platform::client::channel(&mesh.merchant_addr.to_string()).unwrap(),
        paymesh_platform::client::CallContext::with_token(token).unwrap(),
    )
    .get_merchant(pb::GetMerchantRequest {
        merchant_id: id.into(),
    })
    .await
    .map(tonic::Response::into_inner)
}

/// Credentials are exchanged only while the merchant is ACTIVE. Suspending stops the tokens
/// already exchanged at once (as revoking does); after reinstatement the same credential is
/// exchanged again for tokens that work, while the old tokens stay dead — also after a Redis
/// flush, once the revocation list is rewritten from the database.
#[tokio::test]
async fn suspension_stops_live_tokens_and_reinstatement_allows_new_ones() {
    let mesh = start().await;
    let op = || mesh.operator();

    // Pending review: no exchange.
    let m = mesh.onboard(pb::MerchantKind::Vendor, vendor()).await;
    let issued = issue(&mesh, &m.id, "POS").await;
    let bearer = format!("Bearer {}", issued.secret);
    unauthenticated(exchange(&mesh, &bearer).await);

    mesh.approve(&m.id).await;
    let before = exchange(&mesh, &bearer).await.unwrap().access_token;
    read_own_with(&mesh, &before, &m.id).await.unwrap();

    op().suspend_merchant(keyed(pb::SuspendMerchantRequest {
        merchant_id: m.id.clone(),
        reason: "complaints".into(),
    }))
    .await
    .unwrap();
    let e = read_own_with(&mesh, &before, &m.id).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    unauthenticated(exchange(&mesh, &bearer).await);

    op().reinstate_merchant(keyed(pb::ReinstateMerchantRequest {
        merchant_id: m.id.clone(),
        reason: "resolved".into(),
    }))
    .await
    .unwrap();
    let e = read_own_with(&mesh, &before, &m.id).await.unwrap_err();
    assert_eq!(
        e.code(),
        Code::Unauthenticated,
        "the old token came back: {e:?}"
    );
    let after = exchange(&mesh, &bearer).await.unwrap().access_token;
    assert_eq!(read_own_with(&mesh, &after, &m.id).await.unwrap().id, m.id);

    // Redis forgets the list; the rewrite from the database (every 5 s) lists the old epoch
    // again and not the new one.
    mesh.flush_redis().await;
    tokio::time::sleep(std::time::Duration::from_secs(7)).await;
    let e = read_own_with(&mesh, &before, &m.id).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "after a flush: {e:?}");
    read_own_with(&mesh, &after, &m.id).await.unwrap();

    // Closing stops the new tokens too, and the credential is revoked for good.
    op().close_merchant(keyed(pb::CloseMerchantRequest {
        merchant_id: m.id.clone(),
        reason: "gone".into(),
    }))
    .await
    .unwrap();
    let e = read_own_with(&mesh, &after, &m.id).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    unauthenticated(exchange(&mesh, &bearer).await);
}
