#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

//! The merchant's own fee plan: set by an operator (SetMerchantFeePlan, or at onboarding),
//! stored in canonical form, shown on the merchant (to the payment service through its
//! client too), audited; a bad plan is refused naming the field, and nobody else may set one.

mod support;

use paymesh_merchant::client::{MerchantClient, fee_plan};
use paymesh_platform::auth::Principal;
use paymesh_proto::merchant::v1 as pb;
use support::*;
use tonic::Code;

fn set(id: &str, plan: &str, reason: &str) -> pb::SetMerchantFeePlanRequest {
    pb::SetMerchantFeePlanRequest {
        merchant_id: id.into(),
        fee_plan: plan.into(),
        reason: reason.into(),
    }
}

/// The merchant's SET_FEE_PLAN audit events: (actor, from, to, reason).
async fn fee_plan_events(mesh: &Mesh, id: &str) -> Vec<(String, i32, i32, String)> {
    audit(mesh, id)
        .await
        .into_iter()
        .filter(|e| e.action == pb::AuditAction::SetFeePlan as i32)
        .map(|e| (e.actor, e.from_status, e.to_status, e.reason))
        .collect()
}

#[tokio::test]
async fn an_operator_sets_changes_and_clears_a_fee_plan() {
    let mesh = start().await;
    let m = mesh.onboard(pb::MerchantKind::Vendor, vendor()).await;
    assert_eq!(m.fee_plan, "", "no plan of its own: the default applies");
    let active = mesh.approve(&m.id).await;
    let mut op = mesh.operator();

    // Stored and answered in canonical form.
    let set_once = op
        .set_merchant_fee_plan(keyed(set(
            &m.id,
            " percent:0.60,min:1000,cap:50000 ",
            "negotiated rate",
        )))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(set_once.fee_plan, "percent:0.6,min:1000,cap:50000");
    assert_ne!(set_once.etag, active.etag, "a new plan is a new version");
    assert_eq!(set_once.status, pb::MerchantStatus::Active as i32);

    // GetMerchant shows it: to operators, to the merchant itself, to the payment service.
    assert_eq!(fetch(&mesh, &m.id).await, set_once);
    let own = mesh
        .as_merchant(&m.id)
        .get_merchant(pb::GetMerchantRequest {
            merchant_id: m.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(own.fee_plan, "percent:0.6,min:1000,cap:50000");
    let payment = MerchantClient::new(
        &mesh.merchant_addr.to_string(),
        mesh.minter.clone(),
        "payment",
    )
    .unwrap();
    let seen = payment.get(&m.id).await.unwrap().unwrap();
    assert_eq!(seen.fee_plan, "percent:0.6,min:1000,cap:50000");
    let plan = fee_plan(&seen).unwrap().unwrap();
    assert_eq!(
        plan.fee(150_000),
        1_000,
        "0.6 % of 150,000 is 900: the minimum"
    );
    let by_va = payment
        .by_virtual_accounts(std::slice::from_ref(&active.virtual_account_number))
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    assert_eq!(by_va.fee_plan, "percent:0.6,min:1000,cap:50000");

    // The plan it already has: nothing written, nothing audited, the etag kept.
    let again = op
        .set_merchant_fee_plan(keyed(set(
            &m.id,
            "percent:0.6,cap:50000,min:1000",
            "same again",
        )))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, set_once);

    // `none` (no fee) is a plan of its own; empty clears it.
    let none = op
        .set_merchant_fee_plan(keyed(set(&m.id, "none", "promotion: no fees in May")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(none.fee_plan, "none");
    let cleared = op
        .set_merchant_fee_plan(keyed(set(&m.id, "", "promotion over")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cleared.fee_plan, "");
    assert_eq!(fee_plan(&cleared), Ok(None));

    let active = pb::MerchantStatus::Active as i32;
    let actor = "operator:test".to_string();
    assert_eq!(
        fee_plan_events(&mesh, &m.id).await,
        vec![
            (
                actor.clone(),
                active,
                active,
                "fee plan default -> percent:0.6,min:1000,cap:50000: negotiated rate".into()
            ),
            (
                actor.clone(),
                active,
                active,
                "fee plan percent:0.6,min:1000,cap:50000 -> none: promotion: no fees in May".into()
            ),
            (
                actor,
                active,
                active,
                "fee plan none -> default: promotion over".into()
            ),
        ]
    );
}

#[tokio::test]
async fn a_retry_with_the_same_key_sets_the_plan_once() {
    let mesh = start().await;
    let m = mesh.onboard(pb::MerchantKind::Biller, biller()).await;
    let key = unique_key("fee-plan");
    let mut op = mesh.operator();
    let first = op
        .set_merchant_fee_plan(with_key(set(&m.id, "flat:2000", "tuition desk"), &key))
        .await
        .unwrap()
        .into_inner();
    let second = op
        .set_merchant_fee_plan(with_key(set(&m.id, "flat:2000", "tuition desk"), &key))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, second);
    assert_eq!(first.fee_plan, "flat:2000");
    assert_eq!(
        first.status,
        pb::MerchantStatus::PendingReview as i32,
        "a plan may be set before approval"
    );
    assert_eq!(fee_plan_events(&mesh, &m.id).await.len(), 1);
}

#[tokio::test]
async fn a_bad_plan_is_refused_naming_the_field_and_nothing_changes() {
    let mesh = start().await;
    let m = mesh.onboard(pb::MerchantKind::Vendor, vendor()).await;
    let mut op = mesh.operator();
    for bad in [
        "percent:101",
        "percent:0.12345",
        "percent:1,min:100,cap:50",
        "flat:1.5",
        "flat:-1",
        "tiered:1",
        "percent:0.5,fee:3",
    ] {
        let e = op
            .set_merchant_fee_plan(keyed(set(&m.id, bad, "try")))
            .await
            .unwrap_err();
        assert_eq!(bad_fields(&e), vec!["fee_plan"], "{bad}");
        assert!(e.message().contains("fee_plan"), "{bad}: {}", e.message());
    }
    // A long text is refused without being quoted back.
    let long = format!("flat:{}", "9".repeat(200));
    let e = op
        .set_merchant_fee_plan(keyed(set(&m.id, &long, "try")))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&e), vec!["fee_plan"]);
    assert!(!e.message().contains(&"9".repeat(50)), "{}", e.message());
    // Every bad field at once: the id, the plan, the missing reason.
    let e = op
        .set_merchant_fee_plan(keyed(set("not-an-id", "flat:", "")))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&e), vec!["merchant_id", "fee_plan", "reason"]);
    // At onboarding too, next to the application's fields; nothing is written.
    let before = mesh.count("merchants").await;
    let e = op
        .onboard_merchant(keyed(pb::OnboardMerchantRequest {
            kind: pb::MerchantKind::Vendor as i32,
            application: Some(pb::MerchantApplication {
                phone: "12".into(),
                ..vendor()
            }),
            fee_plan: "percent:abc".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&e), vec!["application.phone", "fee_plan"]);
    assert_eq!(mesh.count("merchants").await, before);

    let now = fetch(&mesh, &m.id).await;
    assert_eq!(now.fee_plan, "");
    assert_eq!(now.etag, m.etag);
    assert!(fee_plan_events(&mesh, &m.id).await.is_empty());
}

#[tokio::test]
async fn a_merchant_cannot_set_its_own_plan() {
    let mesh = start().await;
    let m = mesh.onboard(pb::MerchantKind::Vendor, vendor()).await;
    let b = mesh.onboard(pb::MerchantKind::Biller, biller()).await;
    mesh.approve(&m.id).await;
    for principal in [
        Principal::Merchant(m.id.clone()),
        Principal::Biller(b.id.clone()),
        Principal::Service("payment".into()),
    ] {
        let id = if matches!(principal, Principal::Biller(_)) {
            &b.id
        } else {
            &m.id
        };
        let e = mesh
            .client_as(principal.clone())
            .set_merchant_fee_plan(keyed(set(id, "none", "no fees for me")))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{principal}: {e:?}");
    }
    // Nor through onboarding, which is the operator's alone.
    denied(
        mesh.as_merchant(&m.id)
            .onboard_merchant(keyed(pb::OnboardMerchantRequest {
                kind: pb::MerchantKind::Vendor as i32,
                application: Some(vendor()),
                fee_plan: "none".into(),
            }))
            .await,
    );
    assert_eq!(fetch(&mesh, &m.id).await.fee_plan, "");
    assert_eq!(fetch(&mesh, &b.id).await.fee_plan, "");
    assert!(fee_plan_events(&mesh, &m.id).await.is_empty());
}

#[tokio::test]
async fn onboarding_may_set_the_plan_and_a_closed_merchant_keeps_its_own() {
    let mesh = start().await;
    let mut op = mesh.operator();
    let m = op
        .onboard_merchant(keyed(pb::OnboardMerchantRequest {
            kind: pb::MerchantKind::Vendor as i32,
            application: Some(vendor()),
            fee_plan: "percent:1.5,cap:20000".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(m.fee_plan, "percent:1.5,cap:20000");
    let onboard = audit(&mesh, &m.id).await.remove(0);
    assert_eq!(onboard.action, pb::AuditAction::Onboard as i32);
    assert_eq!(onboard.reason, "onboarded, fee plan percent:1.5,cap:20000");

    op.close_merchant(keyed(pb::CloseMerchantRequest {
        merchant_id: m.id.clone(),
        reason: "moved away".into(),
    }))
    .await
    .unwrap();
    let e = op
        .set_merchant_fee_plan(keyed(set(&m.id, "none", "too late")))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert_eq!(reason(&e), "MERCHANT_CLOSED");
    let e = op
        .set_merchant_fee_plan(keyed(set(
            &uuid::Uuid::new_v4().to_string(),
            "none",
            "nobody",
        )))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert_eq!(fetch(&mesh, &m.id).await.fee_plan, "percent:1.5,cap:20000");
}
