#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

//! API credentials: issued by an operator (the secret shown once, only its hash kept),
//! exchanged for a short-lived merchant token, refused from the moment they are revoked.
//!
//! Everything goes over gRPC through the real tower stack: the exchange is the one merchant RPC
//! the JWT layer lets through, because it authenticates the `pmk_` credential itself.

mod support;

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

    // A retry with the same key: the answer again (from Redis)…
    let replay = mesh
        .operator()
        .issue_credential(with_key(request(), key))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replay, issued);
    // …and once Redis forgot it, the same credential without its secret; never a second one.
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

    // A pending merchant's credential works; closing the merchant revokes them all.
    exchange(&mesh, &format!("Bearer {}", issued[1].secret))
        .await
        .unwrap();
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
