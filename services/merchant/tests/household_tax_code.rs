#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

//! A household business onboards with its owner's 12-digit personal identification number as its
//! tax code (Circular 86/2024/TT-BTC): the database takes it (migration 3), responses mask it
//! like the citizen id it is, and a live household is one per code like any other merchant.

mod support;

use paymesh_proto::merchant::v1 as pb;
use prost::Message;
use support::*;
use tonic::Code;

/// The vendor of the other tests, as a household business whose tax code is its owner's CCCD.
fn household() -> pb::MerchantApplication {
    let app = vendor();
    pb::MerchantApplication {
        tax_code: app.owner_citizen_id.clone(),
        ..app
    }
}

#[tokio::test]
async fn a_household_business_onboards_with_its_owners_citizen_id_as_tax_code() {
    let mesh = start().await;
    let app = household();
    assert_eq!(app.tax_code, "079187001234");

    let m = mesh.onboard(pb::MerchantKind::Vendor, app.clone()).await;
    assert_eq!(m.status, pb::MerchantStatus::PendingReview as i32);
    // Masked like the citizen id, in every response; stored whole.
    assert_eq!(m.tax_code, "079*******34");
    assert_eq!(m.owner_citizen_id_masked, "079*******34");
    let fetched = fetch(&mesh, &m.id).await;
    assert_eq!(fetched.tax_code, "079*******34");
    for response in [&m, &fetched] {
        let bytes = response.encode_to_vec();
        assert!(
            !bytes.windows(12).any(|w| w == b"079187001234"),
            "the citizen id is in a response"
        );
    }
    let stored: String =
        sqlx::query_scalar("SELECT tax_code FROM merchant.merchants WHERE id = $1::uuid")
            .bind(&m.id)
            .fetch_one(&mesh.pool)
            .await
            .unwrap();
    assert_eq!(stored, "079187001234");

    // One live merchant per tax code, households included.
    let e = mesh
        .operator()
        .onboard_merchant(keyed(pb::OnboardMerchantRequest {
            kind: pb::MerchantKind::Vendor as i32,
            application: Some(household()),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists, "{e:?}");

    // An enterprise's code is still shown whole.
    let enterprise = mesh.onboard(pb::MerchantKind::Vendor, vendor()).await;
    assert_eq!(enterprise.tax_code.len(), 10);
    assert!(enterprise.tax_code.bytes().all(|b| b.is_ascii_digit()));
}

#[tokio::test]
async fn twelve_digits_that_are_no_citizen_id_are_refused_without_repeating_them() {
    let mesh = start().await;
    let e = mesh
        .operator()
        .onboard_merchant(keyed(pb::OnboardMerchantRequest {
            kind: pb::MerchantKind::Vendor as i32,
            application: Some(pb::MerchantApplication {
                tax_code: "999187001234".into(),
                ..vendor()
            }),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&e), ["application.tax_code"]);
    assert!(!format!("{e:?}").contains("187001234"), "{e:?}");
    assert_eq!(mesh.count("merchants").await, 0);
}
