#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

//! Onboarding and approval over real gRPC, on real PostgreSQL and Redis, with a real ledger: what approval opens and issues, every bad field named, an unreachable ledger, concurrent approvals.

mod support;

use paymesh_merchant::ids::luhn_valid;
use paymesh_proto::ledger::v1 as lpb;
use paymesh_proto::merchant::v1 as pb;
use prost::Message;
use support::*;
use tonic::Code;

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
            ..Default::default()
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
                ..Default::default()
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
            ..Default::default()
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
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&err), ["application.biller_category"]);
    // No kind, no application.
    let err = client
        .onboard_merchant(keyed(pb::OnboardMerchantRequest {
            kind: 0,
            application: None,
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&err), ["kind", "application"]);
    // Without an idempotency key the call is refused before anything runs.
    let err = client
        .onboard_merchant(pb::OnboardMerchantRequest {
            kind: pb::MerchantKind::Vendor as i32,
            application: Some(vendor()),
            ..Default::default()
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
async fn an_unreachable_ledger_is_unavailable_and_changes_nothing() {
    // A port nothing listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let mesh = start_with(Options {
        ledger_addr: Some(dead),
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
                etag: m.etag.clone(),
            },
            key,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    let after = fetch(&mesh, &m.id).await;
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
                etag: m.etag.clone(),
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
            let etag = m.etag.clone();
            tokio::spawn(async move {
                op.approve_merchant(keyed(pb::ApproveMerchantRequest {
                    merchant_id: id,
                    reason: "ok".into(),
                    etag,
                }))
                .await
            })
        })
        .collect();
    let mut ok = 0;
    for c in calls {
        match c.await.unwrap() {
            Ok(_) => ok += 1,
            // All reviewed the same version: the first approval changed it.
            Err(e) => assert_eq!(reason(&e), "ETAG_MISMATCH", "{e:?}"),
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
        .fetch_one(&mesh.pool)
        .await
        .unwrap();
    assert_eq!(accounts, 2);
    assert_eq!(mesh.count("audit_events").await, 2);
}
