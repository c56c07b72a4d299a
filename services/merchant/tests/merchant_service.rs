#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

//! The merchant service over real gRPC, on real PostgreSQL and Redis, with a real ledger.

mod support;

use paymesh_merchant::ids::luhn_valid;
use paymesh_platform::auth::Principal;
use paymesh_proto::ledger::v1 as lpb;
use paymesh_proto::merchant::v1 as pb;
use prost::Message;
use support::*;
use tonic::Code;

fn field_mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|p| p.to_string()).collect(),
    })
}

async fn status_of(mesh: &Mesh, id: &str) -> i32 {
    mesh.operator()
        .get_merchant(pb::GetMerchantRequest {
            merchant_id: id.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status
}

async fn audit(mesh: &Mesh, id: &str) -> Vec<pb::AuditEvent> {
    let mut events = Vec::new();
    let mut token = String::new();
    loop {
        let page = mesh
            .operator()
            .list_merchant_audit_events(pb::ListMerchantAuditEventsRequest {
                merchant_id: id.into(),
                page_size: 2,
                page_token: token.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.events.len() <= 2);
        events.extend(page.events);
        if page.next_page_token.is_empty() {
            return events;
        }
        token = page.next_page_token;
    }
}

fn denied<T>(r: Result<tonic::Response<T>, tonic::Status>) {
    let e = r.map(|_| ()).unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
}

fn zbarimg(png: &[u8]) -> String {
    let path = std::env::temp_dir().join(format!("paymesh-qr-{}.png", uuid::Uuid::new_v4()));
    std::fs::write(&path, png).unwrap();
    let out = std::process::Command::new("zbarimg")
        .args(["--raw", "-q"])
        .arg(&path)
        .output();
    let _ = std::fs::remove_file(&path);
    let out = match out {
        Ok(out) => out,
        Err(e) => panic!(
            "zbarimg could not be run ({e}): install zbar-tools (`apt-get install zbar-tools`; \
             infra/test.sh does)"
        ),
    };
    assert!(
        out.status.success(),
        "zbarimg found no QR code: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .trim_end()
        .to_string()
}

#[tokio::test]
async fn onboard_approve_opens_ledger_accounts_and_issues_a_static_qr() {
    let mesh = start().await;
    let app = vendor();
    let m = mesh.onboard(pb::MerchantKind::Vendor, app.clone()).await;
    assert_eq!(m.status, pb::MerchantStatus::PendingReview as i32);
    assert_eq!(m.kind, pb::MerchantKind::Vendor as i32);
    assert_eq!(m.tax_code, app.tax_code);
    assert_eq!(m.trading_name, "Bún bò Cô Lan");
    assert_eq!(m.market_name, "Chợ Bến Thành");
    // Personal data is masked in responses, and appears nowhere in their bytes.
    assert_eq!(m.owner_citizen_id_masked, "079*******34");
    assert_eq!(m.phone_masked, "+8490****567");
    assert_eq!(m.settlement_account_number_masked, "****5678");
    let bytes = m.encode_to_vec();
    for secret in [
        &b"079187001234"[..],
        b"0901234567",
        b"84901234567",
        b"0011012345678",
    ] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret),
            "{} in the response",
            String::from_utf8_lossy(secret)
        );
    }
    assert!(m.virtual_account_number.is_empty());
    assert!(m.payable_account_id.is_empty());
    assert!(m.activate_time.is_none());
    // No QR before the first approval.
    let err = mesh
        .operator()
        .get_static_qr(pb::GetStaticQrRequest {
            merchant_id: m.id.clone(),
            png_module_px: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "STATIC_QR_NOT_ISSUED");

    let active = mesh.approve(&m.id).await;
    assert_eq!(active.status, pb::MerchantStatus::Active as i32);
    assert!(active.activate_time.is_some());
    let va = active.virtual_account_number.clone();
    assert!(va.starts_with("8868"), "{va}");
    assert!(
        va.len() <= 19 && va.bytes().all(|b| b.is_ascii_digit()),
        "{va}"
    );
    assert!(luhn_valid(&va), "{va}");
    assert_eq!(active.collection_bank_bin, "970436");

    // The ledger has both accounts, with the ids the merchant service derived.
    let ids = [
        active.payable_account_id.clone(),
        active.receivable_account_id.clone(),
    ];
    let balances = mesh
        .ledger()
        .get_balances(lpb::GetBalancesRequest {
            account_ids: ids.to_vec(),
        })
        .await
        .unwrap()
        .into_inner()
        .accounts;
    assert_eq!(balances.len(), 2, "{balances:?}");
    let payable = &balances[0];
    assert_eq!(payable.id, ids[0]);
    assert_eq!(payable.code, 2);
    assert_eq!(payable.currency_code, "VND");
    assert!(payable.flags.unwrap().debits_must_not_exceed_credits);
    assert_eq!(payable.credits_posted.as_ref().unwrap().amount, "0");
    assert!(payable.reference.contains(&m.id));
    let receivable = &balances[1];
    assert_eq!(receivable.code, 4);
    assert!(receivable.flags.unwrap().credits_must_not_exceed_debits);
    let uuid = uuid::Uuid::parse_str(&m.id).unwrap();
    let mid = paymesh_merchant::ids::MerchantId::from_uuid(uuid);
    assert_eq!(
        ids[0],
        paymesh_merchant::ids::LedgerAccount::Payable
            .id(mid)
            .unwrap()
            .to_bytes()
            .to_vec()
    );

    // The static QR: the collection bank and the virtual account, no amount.
    let qr = mesh
        .operator()
        .get_static_qr(pb::GetStaticQrRequest {
            merchant_id: m.id.clone(),
            png_module_px: 6,
        })
        .await
        .unwrap()
        .into_inner();
    let decoded = vietqr::decode(&qr.payload).unwrap();
    assert_eq!(decoded.bank_bin(), Some("970436"));
    assert_eq!(decoded.account(), Some(va.as_str()));
    assert_eq!(decoded.amount, None);
    assert_eq!(
        decoded.point_of_initiation,
        vietqr::PointOfInitiation::Static
    );
    assert_eq!(decoded.merchant_name.as_deref(), Some("BUN BO CO LAN"));
    assert_eq!(decoded.merchant_city.as_deref(), Some("HO CHI MINH"));
    assert_eq!(decoded.mcc.as_deref(), Some("5812"));
    assert_eq!(qr.virtual_account_number, va);
    assert_eq!(qr.collection_bank_bin, "970436");
    assert_eq!(zbarimg(&qr.png), qr.payload, "the PNG scans to the payload");
    assert!(
        qr.svg.contains("<svg"),
        "{}",
        &qr.svg[..80.min(qr.svg.len())]
    );

    // The merchant itself fetches it again, any time: the same code.
    let again = mesh
        .as_merchant(&m.id)
        .get_static_qr(pb::GetStaticQrRequest {
            merchant_id: m.id.clone(),
            png_module_px: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.payload, qr.payload);
    assert_eq!(zbarimg(&again.png), qr.payload);
    // Bad module sizes are refused by name.
    let err = mesh
        .operator()
        .get_static_qr(pb::GetStaticQrRequest {
            merchant_id: m.id.clone(),
            png_module_px: 33,
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&err), ["png_module_px"]);

    // A biller gets its own accounts, virtual account and QR; its name is the business name.
    let b = mesh.onboard(pb::MerchantKind::Biller, biller()).await;
    assert_eq!(b.owner_citizen_id_masked, "");
    assert_eq!(b.biller_category, pb::BillerCategory::Water as i32);
    let b = mesh.approve(&b.id).await;
    assert_ne!(b.virtual_account_number, va);
    assert_ne!(b.payable_account_id, active.payable_account_id);
    let bqr = mesh
        .operator()
        .get_static_qr(pb::GetStaticQrRequest {
            merchant_id: b.id.clone(),
            png_module_px: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let decoded = vietqr::decode(&bqr.payload).unwrap();
    assert_eq!(decoded.account(), Some(b.virtual_account_number.as_str()));
    assert_eq!(
        decoded.merchant_name.as_deref(),
        Some("CONG TY CO PHAN CAP NUOC")
    );
}

#[tokio::test]
async fn every_bad_field_is_named_and_nothing_is_written() {
    let mesh = start().await;
    let mut client = mesh.operator();
    // Everything wrong at once: every field is reported.
    let all_bad = pb::MerchantApplication {
        business_name: " ".into(),
        trading_name: "Tab\there".into(),
        tax_code: "0100109107".into(),
        owner_citizen_id: "99918700123".into(),
        phone: "0241234567".into(),
        address: "a".repeat(201),
        market_name: "Chợ\u{0007}".into(),
        stall_number: "A 12".into(),
        mcc: "0000".into(),
        biller_category: pb::BillerCategory::Water as i32,
        settlement_bank_bin: "970499".into(),
        settlement_account_number: "0011-0123".into(),
    };
    let err = client
        .onboard_merchant(keyed(pb::OnboardMerchantRequest {
            kind: pb::MerchantKind::Vendor as i32,
            application: Some(all_bad),
        }))
        .await
        .unwrap_err();
    assert_eq!(
        bad_fields(&err),
        [
            "application.business_name",
            "application.trading_name",
            "application.tax_code",
            "application.owner_citizen_id",
            "application.phone",
            "application.address",
            "application.market_name",
            "application.stall_number",
            "application.mcc",
            "application.settlement_bank_bin",
            "application.settlement_account_number",
            "application.biller_category",
        ]
    );
    // No personal data is echoed back in the error.
    assert!(!err.message().contains("99918700123"), "{}", err.message());
    assert!(!err.message().contains("0241234567"), "{}", err.message());

    // One bad field at a time: exactly that field is named.
    type Spoil = fn(&mut pb::MerchantApplication);
    let cases: Vec<(&str, Spoil)> = vec![
        ("business_name", |a| a.business_name = String::new()),
        ("trading_name", |a| a.trading_name = "x".repeat(101)),
        ("tax_code", |a| a.tax_code = "123".into()),
        ("owner_citizen_id", |a| a.owner_citizen_id = String::new()),
        ("phone", |a| a.phone = "+1 202 555 0100".into()),
        ("address", |a| a.address = "\u{200B}".into()),
        ("market_name", |a| a.market_name = String::new()),
        ("stall_number", |a| a.stall_number = "#12".into()),
        ("mcc", |a| a.mcc = "58121".into()),
        ("biller_category", |a| {
            a.biller_category = pb::BillerCategory::Tuition as i32
        }),
        ("settlement_bank_bin", |a| {
            a.settlement_bank_bin = "97043".into()
        }),
        ("settlement_account_number", |a| {
            a.settlement_account_number = "1".repeat(20)
        }),
    ];
    for (field, spoil) in cases {
        let mut app = vendor();
        spoil(&mut app);
        let err = client
            .onboard_merchant(keyed(pb::OnboardMerchantRequest {
                kind: pb::MerchantKind::Vendor as i32,
                application: Some(app),
            }))
            .await
            .unwrap_err();
        assert_eq!(
            bad_fields(&err),
            [format!("application.{field}")],
            "{field}"
        );
    }
    // A biller's rules: market and stall must be empty, the category is needed, an unknown
    // category number is refused rather than dropped.
    let mut app = biller();
    app.market_name = "Chợ Lớn".into();
    app.biller_category = 0;
    let err = client
        .onboard_merchant(keyed(pb::OnboardMerchantRequest {
            kind: pb::MerchantKind::Biller as i32,
            application: Some(app),
        }))
        .await
        .unwrap_err();
    assert_eq!(
        bad_fields(&err),
        ["application.market_name", "application.biller_category"]
    );
    let mut app = biller();
    app.biller_category = 42;
    let err = client
        .onboard_merchant(keyed(pb::OnboardMerchantRequest {
            kind: pb::MerchantKind::Biller as i32,
            application: Some(app),
        }))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&err), ["application.biller_category"]);
    // No kind, no application.
    let err = client
        .onboard_merchant(keyed(pb::OnboardMerchantRequest {
            kind: 0,
            application: None,
        }))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&err), ["kind", "application"]);
    // Without an idempotency key the call is refused before anything runs.
    let err = client
        .onboard_merchant(pb::OnboardMerchantRequest {
            kind: pb::MerchantKind::Vendor as i32,
            application: Some(vendor()),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&err), ["idempotency-key"]);

    for table in [
        "merchants",
        "audit_events",
        "credentials",
        "idempotency_keys",
    ] {
        assert_eq!(mesh.count(table).await, 0, "{table}");
    }
}

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

#[tokio::test]
async fn list_and_search_with_filters_and_paging() {
    let mesh = start().await;
    let mut ids = Vec::new();
    let mut stall = 0;
    for (market, name) in [
        ("Chợ Bến Thành", "Bún bò Cô Lan"),
        ("Chợ Bến Thành", "Phở Hòa"),
        ("Chợ Bến Thành", "Cơm tấm Ba Ghiền"),
        ("Chợ Đông Ba", "Bánh bèo Bà Đỏ"),
        ("Chợ Đông Ba", "Nem lụi 100"),
    ] {
        stall += 1;
        let app = pb::MerchantApplication {
            market_name: market.into(),
            trading_name: name.into(),
            stall_number: format!("A-{stall}"),
            ..vendor()
        };
        ids.push(mesh.onboard(pb::MerchantKind::Vendor, app).await.id);
    }
    let water = mesh.onboard(pb::MerchantKind::Biller, biller()).await.id;
    let school = mesh
        .onboard(
            pb::MerchantKind::Biller,
            pb::MerchantApplication {
                business_name: "Trường THCS Lê Lợi".into(),
                mcc: "8211".into(),
                biller_category: pb::BillerCategory::Tuition as i32,
                ..biller()
            },
        )
        .await
        .id;
    mesh.approve(&ids[0]).await;
    mesh.approve(&ids[3]).await;
    mesh.approve(&water).await;

    let list = |req: pb::ListMerchantsRequest| {
        let mut op = mesh.operator();
        async move {
            let mut all = Vec::new();
            let mut req = req;
            loop {
                let page = op.list_merchants(req.clone()).await.unwrap().into_inner();
                all.extend(page.merchants.into_iter().map(|m| m.id));
                if page.next_page_token.is_empty() {
                    return all;
                }
                req.page_token = page.next_page_token;
            }
        }
    };
    let all = list(pb::ListMerchantsRequest {
        page_size: 2,
        ..Default::default()
    })
    .await;
    let mut expected = ids.clone();
    expected.extend([water.clone(), school.clone()]);
    assert_eq!(all, expected, "every merchant once, in onboarding order");

    let active = list(pb::ListMerchantsRequest {
        status: pb::MerchantStatus::Active as i32,
        page_size: 1,
        ..Default::default()
    })
    .await;
    assert_eq!(active, [ids[0].clone(), ids[3].clone(), water.clone()]);

    // Market: case and diacritics do not matter; the whole name must match.
    for market in ["Chợ Bến Thành", "cho ben thanh", "  CHỢ   BẾN THÀNH "] {
        let got = list(pb::ListMerchantsRequest {
            market_name: market.into(),
            ..Default::default()
        })
        .await;
        assert_eq!(got, ids[..3].to_vec(), "{market}");
    }
    assert!(
        list(pb::ListMerchantsRequest {
            market_name: "Chợ Bến".into(),
            ..Default::default()
        })
        .await
        .is_empty()
    );

    // Name: a case- and diacritic-insensitive substring of the business or trading name.
    for (q, want) in [
        ("bún bò", vec![ids[0].clone()]),
        ("BUN BO", vec![ids[0].clone()]),
        ("PHỞ", vec![ids[1].clone()]),
        ("ba", vec![ids[2].clone(), ids[3].clone()]),
        ("100", vec![ids[4].clone()]),
        // LIKE's wildcards match only themselves.
        ("%", vec![]),
        ("_", vec![]),
        ("cấp nước", vec![water.clone()]),
        ("lê lợi", vec![school.clone()]),
    ] {
        let got = list(pb::ListMerchantsRequest {
            name_contains: q.into(),
            ..Default::default()
        })
        .await;
        assert_eq!(got, want, "{q}");
    }

    // Category, kind, MCC, combined.
    assert_eq!(
        list(pb::ListMerchantsRequest {
            biller_category: pb::BillerCategory::Tuition as i32,
            ..Default::default()
        })
        .await,
        vec![school.clone()]
    );
    assert_eq!(
        list(pb::ListMerchantsRequest {
            kind: pb::MerchantKind::Biller as i32,
            status: pb::MerchantStatus::PendingReview as i32,
            ..Default::default()
        })
        .await,
        vec![school.clone()]
    );
    assert_eq!(
        list(pb::ListMerchantsRequest {
            mcc: "4900".into(),
            ..Default::default()
        })
        .await,
        vec![water.clone()]
    );

    let mut op = mesh.operator();
    // Page sizes: above 100 is taken as 100; negative is refused.
    let page = op
        .list_merchants(pb::ListMerchantsRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.merchants.len(), 7);
    assert!(page.next_page_token.is_empty());
    // A token is bound to its filters.
    let first = op
        .list_merchants(pb::ListMerchantsRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let e = op
        .list_merchants(pb::ListMerchantsRequest {
            page_size: 1,
            status: pb::MerchantStatus::Active as i32,
            page_token: first.next_page_token.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&e), ["page_token"]);
    let e = op
        .list_merchants(pb::ListMerchantsRequest {
            page_size: -1,
            status: 99,
            mcc: "12".into(),
            name_contains: "x".repeat(101),
            page_token: "garbage".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        bad_fields(&e),
        ["status", "name_contains", "mcc", "page_size", "page_token"]
    );
}

#[tokio::test]
async fn onboarding_is_idempotent_even_when_redis_forgets() {
    let mesh = start_with(Options {
        redis_db: REDIS_DB + 1,
        ..Options::default()
    })
    .await;
    let mut op = mesh.operator();
    // Keys live in Redis across test runs: each run uses its own.
    let onboard_key = unique_key("onboard");
    let approve_key = unique_key("approve");
    let app = vendor();
    let request = || pb::OnboardMerchantRequest {
        kind: pb::MerchantKind::Vendor as i32,
        application: Some(app.clone()),
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
    let approve = || pb::ApproveMerchantRequest {
        merchant_id: first.id.clone(),
        reason: "ok".into(),
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

#[tokio::test]
async fn an_unreachable_ledger_is_unavailable_and_changes_nothing() {
    // A port nothing listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let mesh = start_with(Options {
        ledger_addr: Some(dead),
        ..Options::default()
    })
    .await;
    let m = mesh.onboard(pb::MerchantKind::Vendor, vendor()).await;
    let idem_before = mesh.count("idempotency_keys").await;
    // Keys live in Redis across test runs: each run uses its own.
    let key = &unique_key("approve-while-ledger-down");
    let e = mesh
        .operator()
        .approve_merchant(with_key(
            pb::ApproveMerchantRequest {
                merchant_id: m.id.clone(),
                reason: "ok".into(),
            },
            key,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    let after = mesh
        .operator()
        .get_merchant(pb::GetMerchantRequest {
            merchant_id: m.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.status, pb::MerchantStatus::PendingReview as i32);
    assert!(after.virtual_account_number.is_empty());
    assert_eq!(mesh.count("audit_events").await, 1, "only the onboarding");
    assert_eq!(mesh.count("idempotency_keys").await, idem_before);
    // The key was released: the same call runs again (and, the ledger still down, fails again)
    // rather than replaying the failure.
    let e = mesh
        .operator()
        .approve_merchant(with_key(
            pb::ApproveMerchantRequest {
                merchant_id: m.id.clone(),
                reason: "ok".into(),
            },
            key,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable);
}

#[tokio::test]
async fn concurrent_approvals_open_one_set_of_accounts_and_one_virtual_account() {
    let mesh = start().await;
    let m = mesh.onboard(pb::MerchantKind::Vendor, vendor()).await;
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let mut op = mesh.operator();
            let id = m.id.clone();
            tokio::spawn(async move {
                op.approve_merchant(keyed(pb::ApproveMerchantRequest {
                    merchant_id: id,
                    reason: "ok".into(),
                }))
                .await
            })
        })
        .collect();
    let mut ok = 0;
    for c in calls {
        match c.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => assert_eq!(reason(&e), "INVALID_STATUS_TRANSITION", "{e:?}"),
        }
    }
    assert_eq!(ok, 1);
    let vas: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT virtual_account_number) FROM merchant.merchants")
            .fetch_one(&mesh.pool)
            .await
            .unwrap();
    assert_eq!(vas, 1);
    let accounts: i64 = sqlx::query_scalar("SELECT count(*) FROM ledger.accounts")
        .fetch_one(&mesh.ledger_pool)
        .await
        .unwrap();
    assert_eq!(accounts, 2);
    assert_eq!(mesh.count("audit_events").await, 2);
}
