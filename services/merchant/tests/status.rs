#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

//! The status workflow and its audit log: illegal transitions change nothing, every change is logged and the log cannot be altered, a new settlement account means a new review.

mod support;

use paymesh_proto::merchant::v1 as pb;
use support::*;
use tonic::Code;

#[tokio::test]
async fn illegal_transitions_are_refused_and_change_nothing() {
    let mesh = start().await;
    let m = mesh.onboard(pb::MerchantKind::Vendor, vendor()).await;
    let mut op = mesh.operator();
    let refused = |e: tonic::Status| {
        assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
        assert_eq!(reason(&e), "INVALID_STATUS_TRANSITION");
    };
    let id = || m.id.clone();
    refused(
        op.suspend_merchant(keyed(pb::SuspendMerchantRequest {
            merchant_id: id(),
            reason: "x".into(),
        }))
        .await
        .unwrap_err(),
    );
    refused(
        op.reinstate_merchant(keyed(pb::ReinstateMerchantRequest {
            merchant_id: id(),
            reason: "x".into(),
        }))
        .await
        .unwrap_err(),
    );
    assert_eq!(
        status_of(&mesh, &m.id).await,
        pb::MerchantStatus::PendingReview as i32
    );
    mesh.approve(&m.id).await;
    let e = op
        .approve_merchant(keyed(pb::ApproveMerchantRequest {
            merchant_id: id(),
            reason: "again".into(),
        }))
        .await
        .unwrap_err();
    refused(e);
    refused(
        op.reject_merchant(keyed(pb::RejectMerchantRequest {
            merchant_id: id(),
            reason: "too late".into(),
        }))
        .await
        .unwrap_err(),
    );
    op.close_merchant(keyed(pb::CloseMerchantRequest {
        merchant_id: id(),
        reason: "stall given up".into(),
    }))
    .await
    .unwrap();
    // CLOSED is final.
    refused(
        op.reinstate_merchant(keyed(pb::ReinstateMerchantRequest {
            merchant_id: id(),
            reason: "x".into(),
        }))
        .await
        .unwrap_err(),
    );
    refused(
        op.close_merchant(keyed(pb::CloseMerchantRequest {
            merchant_id: id(),
            reason: "x".into(),
        }))
        .await
        .unwrap_err(),
    );
    let e = op
        .update_merchant(keyed(pb::UpdateMerchantRequest {
            merchant_id: id(),
            application: Some(pb::MerchantApplication {
                phone: "0912345678".into(),
                ..Default::default()
            }),
            update_mask: field_mask(&["phone"]),
        }))
        .await
        .unwrap_err();
    assert_eq!(reason(&e), "MERCHANT_CLOSED");
    let e = op
        .get_static_qr(pb::GetStaticQrRequest {
            merchant_id: id(),
            png_module_px: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&e), "MERCHANT_CLOSED");
    assert_eq!(
        status_of(&mesh, &m.id).await,
        pb::MerchantStatus::Closed as i32
    );
    // Refusals leave no audit events: onboard, approve, close.
    let actions: Vec<i32> = audit(&mesh, &m.id).await.iter().map(|e| e.action).collect();
    assert_eq!(
        actions,
        [
            pb::AuditAction::Onboard as i32,
            pb::AuditAction::Approve as i32,
            pb::AuditAction::Close as i32
        ]
    );
    // Bad input on a status RPC: every field named.
    let e = op
        .approve_merchant(keyed(pb::ApproveMerchantRequest {
            merchant_id: "nope".into(),
            reason: String::new(),
        }))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&e), ["merchant_id", "reason"]);
    let e = op
        .approve_merchant(keyed(pb::ApproveMerchantRequest {
            merchant_id: uuid::Uuid::new_v4().to_string(),
            reason: "who?".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
}

#[tokio::test]
async fn the_audit_log_has_every_change_and_refuses_update_and_delete() {
    let mesh = start().await;
    let m = mesh.onboard(pb::MerchantKind::Vendor, vendor()).await;
    let mut op = mesh.operator();
    mesh.approve(&m.id).await;
    op.suspend_merchant(keyed(pb::SuspendMerchantRequest {
        merchant_id: m.id.clone(),
        reason: "unpaid fees".into(),
    }))
    .await
    .unwrap();
    op.reinstate_merchant(keyed(pb::ReinstateMerchantRequest {
        merchant_id: m.id.clone(),
        reason: "fees paid".into(),
    }))
    .await
    .unwrap();
    mesh.as_merchant(&m.id)
        .update_merchant(keyed(pb::UpdateMerchantRequest {
            merchant_id: m.id.clone(),
            application: Some(pb::MerchantApplication {
                phone: "0912345678".into(),
                ..Default::default()
            }),
            update_mask: field_mask(&["phone"]),
        }))
        .await
        .unwrap();
    mesh.as_merchant(&m.id)
        .update_merchant(keyed(pb::UpdateMerchantRequest {
            merchant_id: m.id.clone(),
            application: Some(pb::MerchantApplication {
                settlement_bank_bin: "970418".into(),
                settlement_account_number: "12010000999999".into(),
                ..Default::default()
            }),
            update_mask: field_mask(&["settlement_bank_bin", "settlement_account_number"]),
        }))
        .await
        .unwrap();
    mesh.approve(&m.id).await;
    let cred = op
        .issue_credential(keyed(pb::IssueCredentialRequest {
            merchant_id: m.id.clone(),
            display_name: "POS server".into(),
        }))
        .await
        .unwrap()
        .into_inner()
        .credential
        .unwrap();
    op.revoke_credential(keyed(pb::RevokeCredentialRequest {
        merchant_id: m.id.clone(),
        credential_id: cred.id.clone(),
    }))
    .await
    .unwrap();
    op.close_merchant(keyed(pb::CloseMerchantRequest {
        merchant_id: m.id.clone(),
        reason: "moved away".into(),
    }))
    .await
    .unwrap();

    use pb::AuditAction as A;
    use pb::MerchantStatus as S;
    let me = format!("merchant:{}", m.id);
    let expected: Vec<(A, Option<S>, S, &str, &str)> = vec![
        (A::Onboard, None, S::PendingReview, "operator", "onboarded"),
        (
            A::Approve,
            Some(S::PendingReview),
            S::Active,
            "operator",
            "KYC documents checked",
        ),
        (
            A::Suspend,
            Some(S::Active),
            S::Suspended,
            "operator",
            "unpaid fees",
        ),
        (
            A::Reinstate,
            Some(S::Suspended),
            S::Active,
            "operator",
            "fees paid",
        ),
        (A::Update, Some(S::Active), S::Active, &me, "changed: phone"),
        (
            A::ResubmitForReview,
            Some(S::Active),
            S::PendingReview,
            &me,
            "changed: settlement_bank_bin, settlement_account_number",
        ),
        (
            A::Approve,
            Some(S::PendingReview),
            S::Active,
            "operator",
            "KYC documents checked",
        ),
        (
            A::IssueCredential,
            Some(S::Active),
            S::Active,
            "operator",
            "",
        ),
        (
            A::RevokeCredential,
            Some(S::Active),
            S::Active,
            "operator",
            "",
        ),
        (
            A::Close,
            Some(S::Active),
            S::Closed,
            "operator",
            "moved away",
        ),
    ];
    let events = audit(&mesh, &m.id).await;
    assert_eq!(events.len(), expected.len(), "{events:#?}");
    for (e, (action, from, to, actor, reason)) in events.iter().zip(&expected) {
        assert_eq!(e.action, *action as i32, "{e:?}");
        assert_eq!(e.from_status, from.map(|s| s as i32).unwrap_or(0), "{e:?}");
        assert_eq!(e.to_status, *to as i32, "{e:?}");
        assert_eq!(e.actor, *actor, "{e:?}");
        assert_eq!(e.merchant_id, m.id);
        assert!(e.create_time.is_some());
        if reason.is_empty() {
            assert!(e.reason.contains(&cred.id), "{e:?}");
        } else {
            assert_eq!(e.reason, *reason, "{e:?}");
        }
    }
    assert!(events.windows(2).all(|w| w[0].id < w[1].id));
    // No personal data in the log: field names only.
    for e in &events {
        assert!(!e.reason.contains("0912345678") && !e.reason.contains("12010000999999"));
    }

    // Append-only in the database itself, whatever the application does.
    for sql in [
        "UPDATE merchant.audit_events SET reason = 'rewritten'",
        "DELETE FROM merchant.audit_events",
        "TRUNCATE merchant.audit_events",
    ] {
        let err = sqlx::query(sql).execute(&mesh.pool).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(mesh.count("audit_events").await, expected.len() as i64);
    let again = audit(&mesh, &m.id).await;
    assert_eq!(again, events);

    // Paging tokens belong to their merchant.
    let other = mesh.onboard(pb::MerchantKind::Vendor, vendor()).await;
    let page = op
        .list_merchant_audit_events(pb::ListMerchantAuditEventsRequest {
            merchant_id: m.id.clone(),
            page_size: 1,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let e = op
        .list_merchant_audit_events(pb::ListMerchantAuditEventsRequest {
            merchant_id: other.id.clone(),
            page_size: 1,
            page_token: page.next_page_token,
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&e), ["page_token"]);
}

#[tokio::test]
async fn changing_the_settlement_account_sends_the_merchant_back_to_review() {
    let mesh = start().await;
    let m = mesh.onboard(pb::MerchantKind::Vendor, vendor()).await;
    let active = mesh.approve(&m.id).await;
    let mut me = mesh.as_merchant(&m.id);
    let update = |paths: &[&str], app: pb::MerchantApplication| pb::UpdateMerchantRequest {
        merchant_id: m.id.clone(),
        application: Some(app),
        update_mask: field_mask(paths),
    };

    // Other fields: the merchant stays ACTIVE.
    let after = me
        .update_merchant(keyed(update(
            &["trading_name", "stall_number"],
            pb::MerchantApplication {
                trading_name: "Bún bò Huế Cô Lan".into(),
                stall_number: "B-12".into(),
                // Not in the mask: ignored.
                business_name: "Someone else".into(),
                ..Default::default()
            },
        )))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.status, pb::MerchantStatus::Active as i32);
    assert_eq!(after.trading_name, "Bún bò Huế Cô Lan");
    assert_eq!(after.stall_number, "B-12");
    assert_eq!(after.business_name, m.business_name);

    // Bad new values are named, and change nothing.
    let e = me
        .update_merchant(keyed(update(
            &["phone", "settlement_bank_bin"],
            pb::MerchantApplication {
                phone: "12345".into(),
                settlement_bank_bin: "000000".into(),
                ..Default::default()
            },
        )))
        .await
        .unwrap_err();
    assert_eq!(
        bad_fields(&e),
        ["application.phone", "application.settlement_bank_bin"]
    );
    // Identity fields and unknown paths are refused; a mask is required.
    let e = me
        .update_merchant(keyed(update(
            &["tax_code", "nonsense"],
            pb::MerchantApplication::default(),
        )))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&e), ["update_mask", "update_mask"]);
    let e = me
        .update_merchant(keyed(update(&[], vendor())))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&e), ["update_mask"]);
    assert_eq!(
        status_of(&mesh, &m.id).await,
        pb::MerchantStatus::Active as i32
    );

    // The same account again is no change.
    let same = me
        .update_merchant(keyed(update(
            &["settlement_account_number"],
            pb::MerchantApplication {
                settlement_account_number: " 0011012345678 ".into(),
                ..Default::default()
            },
        )))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(same.status, pb::MerchantStatus::Active as i32);

    // A new account: back to review, by the merchant's own hand.
    let review = me
        .update_merchant(keyed(update(
            &["settlement_account_number"],
            pb::MerchantApplication {
                settlement_account_number: "0011019999999".into(),
                ..Default::default()
            },
        )))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(review.status, pb::MerchantStatus::PendingReview as i32);
    assert_eq!(review.settlement_account_number_masked, "****9999");
    let last = audit(&mesh, &m.id).await.pop().unwrap();
    assert_eq!(last.action, pb::AuditAction::ResubmitForReview as i32);
    assert_eq!(last.actor, format!("merchant:{}", m.id));
    // Meanwhile it cannot be suspended (it is not ACTIVE), and the QR is still there.
    assert!(
        mesh.operator()
            .get_static_qr(pb::GetStaticQrRequest {
                merchant_id: m.id.clone(),
                png_module_px: 0,
            })
            .await
            .is_ok()
    );

    // Approved again: the same virtual account, the same accounts, the same QR.
    let again = mesh.approve(&m.id).await;
    assert_eq!(again.status, pb::MerchantStatus::Active as i32);
    assert_eq!(again.virtual_account_number, active.virtual_account_number);
    assert_eq!(again.payable_account_id, active.payable_account_id);
    assert_eq!(again.activate_time, active.activate_time);

    // A suspended merchant that changes its bank goes back to review too.
    mesh.operator()
        .suspend_merchant(keyed(pb::SuspendMerchantRequest {
            merchant_id: m.id.clone(),
            reason: "complaints".into(),
        }))
        .await
        .unwrap();
    let review = me
        .update_merchant(keyed(update(
            &["settlement_bank_bin"],
            pb::MerchantApplication {
                settlement_bank_bin: "970418".into(),
                ..Default::default()
            },
        )))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(review.status, pb::MerchantStatus::PendingReview as i32);
    assert_eq!(review.settlement_bank_bin, "970418");
}
