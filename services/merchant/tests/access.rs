#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

//! Who may read and change a merchant: itself, operators, nobody else.

mod support;

use paymesh_platform::auth::Principal;
use paymesh_proto::merchant::v1 as pb;
use support::*;
use tonic::Code;

#[tokio::test]
async fn a_merchant_reads_and_changes_only_itself() {
    let mesh = start().await;
    let a = mesh.onboard(pb::MerchantKind::Vendor, vendor()).await;
    let b = mesh.onboard(pb::MerchantKind::Vendor, vendor()).await;
    mesh.approve(&a.id).await;
    mesh.approve(&b.id).await;
    let mut as_a = mesh.as_merchant(&a.id);

    let own = as_a
        .get_merchant(pb::GetMerchantRequest {
            merchant_id: a.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(own.id, a.id);
    assert_eq!(
        own.phone_masked, "+8490****567",
        "masked for the merchant too"
    );

    denied(
        as_a.get_merchant(pb::GetMerchantRequest {
            merchant_id: b.id.clone(),
        })
        .await,
    );
    denied(
        as_a.get_static_qr(pb::GetStaticQrRequest {
            merchant_id: b.id.clone(),
            png_module_px: 0,
        })
        .await,
    );
    denied(
        as_a.update_merchant(keyed(pb::UpdateMerchantRequest {
            merchant_id: b.id.clone(),
            application: Some(pb::MerchantApplication {
                phone: "0912345678".into(),
                ..Default::default()
            }),
            update_mask: field_mask(&["phone"]),
        }))
        .await,
    );
    // Not even whether a merchant exists: an unknown id is denied too, not NOT_FOUND.
    denied(
        as_a.get_merchant(pb::GetMerchantRequest {
            merchant_id: uuid::Uuid::new_v4().to_string(),
        })
        .await,
    );
    denied(
        as_a.list_merchants(pb::ListMerchantsRequest::default())
            .await,
    );
    denied(
        as_a.suspend_merchant(keyed(pb::SuspendMerchantRequest {
            merchant_id: a.id.clone(),
            reason: "self".into(),
        }))
        .await,
    );
    denied(
        as_a.list_merchant_audit_events(pb::ListMerchantAuditEventsRequest {
            merchant_id: a.id.clone(),
            ..Default::default()
        })
        .await,
    );
    denied(
        as_a.issue_credential(keyed(pb::IssueCredentialRequest {
            merchant_id: a.id.clone(),
            display_name: "mine".into(),
        }))
        .await,
    );
    denied(
        as_a.onboard_merchant(keyed(pb::OnboardMerchantRequest {
            kind: pb::MerchantKind::Vendor as i32,
            application: Some(vendor()),
            ..Default::default()
        }))
        .await,
    );
    // Other principals: a bank or a channel reads nothing; a paymesh service reads.
    for p in [
        Principal::Bank("970436".into()),
        Principal::Channel("kiosk-1".into()),
        Principal::Biller(b.id.clone() + "x"),
    ] {
        let e = mesh
            .client_as(p.clone())
            .get_merchant(pb::GetMerchantRequest {
                merchant_id: b.id.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{p}");
    }
    let seen = mesh
        .client_as(Principal::Service("payment".into()))
        .get_merchant(pb::GetMerchantRequest {
            merchant_id: b.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(seen.id, b.id);
    // No token at all.
    let mut anonymous =
        paymesh_proto::merchant::v1::merchant_service_client::MerchantServiceClient::new(
            paymesh_platform::client::channel(&mesh.merchant_addr.to_string()).unwrap(),
        );
    let e = anonymous
        .get_merchant(pb::GetMerchantRequest {
            merchant_id: a.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    // Nothing changed b.
    assert_eq!(
        mesh.operator()
            .get_merchant(pb::GetMerchantRequest {
                merchant_id: b.id.clone()
            })
            .await
            .unwrap()
            .into_inner()
            .phone_masked,
        "+8490****567"
    );
}
