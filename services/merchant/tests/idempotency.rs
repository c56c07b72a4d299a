#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

//! Mutating merchant RPCs are idempotent, even when Redis forgets every key.

mod support;

use paymesh_platform::auth::Principal;
use paymesh_proto::merchant::v1 as pb;
use prost::Message;
use support::*;
use tonic::Code;

#[tokio::test]
async fn onboarding_is_idempotent_even_when_redis_forgets() {
    let mesh = start().await;
    let mut op = mesh.operator();
    // Keys live in Redis across test runs: each run uses its own.
    let onboard_key = unique_key("onboard");
    let approve_key = unique_key("approve");
    let app = vendor();
    let request = || pb::OnboardMerchantRequest {
        kind: pb::MerchantKind::Vendor as i32,
        application: Some(app.clone()),
        ..Default::default()
    };
    let first = op
        .onboard_merchant(with_key(request(), &onboard_key))
        .await
        .unwrap()
        .into_inner();
    // The same key and request: the same merchant, byte for byte.
    let replay = op
        .onboard_merchant(with_key(request(), &onboard_key))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replay.encode_to_vec(), first.encode_to_vec());
    // The same key, another request: refused.
    let mut other = request();
    other.application.as_mut().unwrap().trading_name = "Another name".into();
    let e = op
        .onboard_merchant(with_key(other.clone(), &onboard_key))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert_eq!(reason(&e), "IDEMPOTENCY_KEY_REUSED");

    // Redis loses everything: PostgreSQL still knows the key.
    mesh.flush_redis().await;
    let after_flush = op
        .onboard_merchant(with_key(request(), &onboard_key))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after_flush.encode_to_vec(), first.encode_to_vec());
    mesh.flush_redis().await;
    let e = op
        .onboard_merchant(with_key(other, &onboard_key))
        .await
        .unwrap_err();
    assert_eq!(reason(&e), "IDEMPOTENCY_KEY_REUSED");
    assert_eq!(mesh.count("merchants").await, 1);
    assert_eq!(mesh.count("audit_events").await, 1);

    // Keys are scoped to the caller: another caller's identical key is its own (and here
    // refused, since only operators onboard).
    let e = mesh
        .client_as(Principal::Service("payment".into()))
        .onboard_merchant(with_key(request(), &onboard_key))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);

    // A new key with the same tax code: a duplicate merchant is refused.
    let e = op.onboard_merchant(keyed(request())).await.unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
    assert_eq!(mesh.count("merchants").await, 1);

    // Approval is idempotent too: one audit event, one virtual account, after a flush.
    let etag = mesh.etag(&first.id).await;
    let approve = || pb::ApproveMerchantRequest {
        merchant_id: first.id.clone(),
        reason: "ok".into(),
        etag: etag.clone(),
    };
    let approved = op
        .approve_merchant(with_key(approve(), &approve_key))
        .await
        .unwrap()
        .into_inner();
    mesh.flush_redis().await;
    let again = op
        .approve_merchant(with_key(approve(), &approve_key))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.encode_to_vec(), approved.encode_to_vec());
    assert_eq!(mesh.count("audit_events").await, 2);

    // Once rejected or closed, the tax code may apply again.
    op.close_merchant(keyed(pb::CloseMerchantRequest {
        merchant_id: first.id.clone(),
        reason: "gone".into(),
    }))
    .await
    .unwrap();
    let reborn = op
        .onboard_merchant(keyed(request()))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(reborn.id, first.id);
}
