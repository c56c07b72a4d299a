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
            etag: mesh.etag(&m.id).await,
        }))
        .await
        .unwrap_err();
    refused(e);
    refused(
        op.reject_merchant(keyed(pb::RejectMerchantRequest {
            merchant_id: id(),
            reason: "too late".into(),
            etag: mesh.etag(&m.id).await,
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
            etag: String::new(),
        }))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&e), ["merchant_id", "reason", "etag"]);
    let e = op
        .approve_merchant(keyed(pb::ApproveMerchantRequest {
            merchant_id: uuid::Uuid::new_v4().to_string(),
            reason: "who?".into(),
            etag: "1".into(),
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
        (
            A::Onboard,
            None,
            S::PendingReview,
            "operator:test",
            "onboarded",
        ),
        (
            A::Approve,
            Some(S::PendingReview),
            S::Active,
            "operator:test",
            "KYC documents checked",
        ),
        (
            A::Suspend,
            Some(S::Active),
            S::Suspended,
            "operator:test",
            "unpaid fees",
        ),
        (
            A::Reinstate,
            Some(S::Suspended),
            S::Active,
            "operator:test",
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
            "operator:test",
            "KYC documents checked",
        ),
        (
            A::IssueCredential,
            Some(S::Active),
            S::Active,
            "operator:test",
            "",
        ),
        (
            A::RevokeCredential,
            Some(S::Active),
            S::Active,
            "operator:test",
            "",
        ),
        (
            A::Close,
            Some(S::Active),
            S::Closed,
            "operator:test",
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

/// Operators are people: the audit log names the one who acted.
#[tokio::test]
async fn the_audit_log_names_each_operator() {
    use paymesh_platform::auth::Principal;
    let mesh = start().await;
    let m = mesh.onboard(pb::MerchantKind::Vendor, vendor()).await;
    let alice = Principal::parse("operator:alice").unwrap();
    let bob = Principal::parse("operator:bob").unwrap();
    mesh.client_as(alice)
        .approve_merchant(keyed(pb::ApproveMerchantRequest {
            merchant_id: m.id.clone(),
            reason: "documents checked".into(),
            etag: m.etag.clone(),
        }))
        .await
        .unwrap();
    mesh.client_as(bob)
        .suspend_merchant(keyed(pb::SuspendMerchantRequest {
            merchant_id: m.id.clone(),
            reason: "complaints".into(),
        }))
        .await
        .unwrap();
    let actors: Vec<String> = audit(&mesh, &m.id)
        .await
        .into_iter()
        .skip(1)
        .map(|e| e.actor)
        .collect();
    assert_eq!(actors, vec!["operator:alice", "operator:bob"]);
}

fn new_phone(id: &str, phone: &str) -> pb::UpdateMerchantRequest {
    pb::UpdateMerchantRequest {
        merchant_id: id.into(),
        application: Some(pb::MerchantApplication {
            phone: phone.into(),
            ..Default::default()
        }),
        update_mask: field_mask(&["phone"]),
    }
}

/// Approval and rejection are bound to what the operator reviewed: the merchant's etag. A
/// merchant changed since (its phone, its settlement account, its status) is refused with
/// ABORTED / ETAG_MISMATCH and nothing changes; reviewed again, it is approved.
#[tokio::test]
async fn approval_and_rejection_need_the_etag_of_what_was_reviewed() {
    let mesh = start().await;
    let m = mesh.onboard(pb::MerchantKind::Vendor, vendor()).await;
    assert!(!m.etag.is_empty());
    assert_eq!(
        fetch(&mesh, &m.id).await.etag,
        m.etag,
        "a read changes nothing"
    );
    let reviewed = m.etag.clone();

    // The merchant changes its phone while the operator reviews.
    let updated = mesh
        .as_merchant(&m.id)
        .update_merchant(keyed(new_phone(&m.id, "0912345678")))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(updated.etag, reviewed);
    // Writing the same values again is no change: the etag stays.
    let same = mesh
        .as_merchant(&m.id)
        .update_merchant(keyed(new_phone(&m.id, "0912345678")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(same.etag, updated.etag);

    let mut op = mesh.operator();
    let stale = |e: tonic::Status| {
        assert_eq!(e.code(), Code::Aborted, "{e:?}");
        assert_eq!(reason(&e), "ETAG_MISMATCH");
    };
    stale(
        op.approve_merchant(keyed(pb::ApproveMerchantRequest {
            merchant_id: m.id.clone(),
            reason: "documents checked".into(),
            etag: reviewed.clone(),
        }))
        .await
        .unwrap_err(),
    );
    stale(
        op.reject_merchant(keyed(pb::RejectMerchantRequest {
            merchant_id: m.id.clone(),
            reason: "documents forged".into(),
            etag: reviewed.clone(),
        }))
        .await
        .unwrap_err(),
    );
    let now = fetch(&mesh, &m.id).await;
    assert_eq!(now.status, pb::MerchantStatus::PendingReview as i32);
    assert!(now.virtual_account_number.is_empty());
    assert_eq!(now.etag, updated.etag);
    assert_eq!(
        mesh.count("audit_events").await,
        2,
        "onboard and update only"
    );
    let accounts: i64 = sqlx::query_scalar("SELECT count(*) FROM ledger.accounts")
        .fetch_one(&mesh.pool)
        .await
        .unwrap();
    assert_eq!(accounts, 0, "no ledger accounts for a refused approval");

    // Reviewed again: approved, and the status change is a new version too.
    let approved = op
        .approve_merchant(keyed(pb::ApproveMerchantRequest {
            merchant_id: m.id.clone(),
            reason: "documents checked".into(),
            etag: now.etag.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(approved.status, pb::MerchantStatus::Active as i32);
    assert_ne!(approved.etag, now.etag);
    assert_eq!(fetch(&mesh, &m.id).await.etag, approved.etag);
    let suspended = op
        .suspend_merchant(keyed(pb::SuspendMerchantRequest {
            merchant_id: m.id.clone(),
            reason: "complaints".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(suspended.etag, approved.etag);
}

/// Approval opens the ledger accounts before it locks the merchant: with a ledger that never
/// answers, the merchant can still be read and updated while the approval waits for it.
#[tokio::test]
async fn a_slow_ledger_does_not_hold_the_merchant_during_approval() {
    // Accepts connections (the kernel's backlog) and never answers: the slowest ledger.
    let black_hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mesh = start_with(Options {
        ledger_addr: Some(black_hole.local_addr().unwrap().to_string()),
    })
    .await;
    let m = mesh.onboard(pb::MerchantKind::Vendor, vendor()).await;
    let mut op = mesh.operator();
    let (id, etag) = (m.id.clone(), m.etag.clone());
    let approval = tokio::spawn(async move {
        let started = std::time::Instant::now();
        let r = op
            .approve_merchant(keyed(pb::ApproveMerchantRequest {
                merchant_id: id,
                reason: "documents checked".into(),
                etag,
            }))
            .await;
        (r, started.elapsed())
    });
    // Let the approval reach the ledger (it waits there for the ledger's timeout, 5 s).
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert!(!approval.is_finished(), "the approval should be waiting");

    let started = std::time::Instant::now();
    let updated = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        mesh.as_merchant(&m.id)
            .update_merchant(keyed(new_phone(&m.id, "0912345678"))),
    )
    .await
    .unwrap()
    .unwrap()
    .into_inner();
    let update_took = started.elapsed();
    assert!(
        update_took < std::time::Duration::from_millis(2500),
        "the update waited {update_took:?} for the approval's ledger call"
    );
    assert!(
        !approval.is_finished(),
        "the update should finish while the approval still waits for the ledger"
    );
    assert_eq!(updated.status, pb::MerchantStatus::PendingReview as i32);

    // The approval fails (the ledger never answered) and changes nothing.
    let (result, took) = approval.await.unwrap();
    let e = result.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?} after {took:?}");
    let after = fetch(&mesh, &m.id).await;
    assert_eq!(after.status, pb::MerchantStatus::PendingReview as i32);
    assert_eq!(after.etag, updated.etag);
    drop(black_hole);
}
