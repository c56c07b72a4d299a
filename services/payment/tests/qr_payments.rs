//! QR payments end to end: a vendor's intent and its dynamic QR, the bank's notification
//! matched by the reference in a realistic description, the ledger chain, and every defined
//! outcome — against real PostgreSQL, Redis, ledger and merchant service.

#![allow(clippy::unwrap_used)]

mod support;

use paymesh_proto::payment::v1 as pb;
use paymesh_proto::payment::v1::{CreditOutcome as O, IntentStatus};
use support::*;
use tonic::Code;

#[tokio::test]
async fn a_vendor_is_paid_by_the_reference_in_the_bank_description() {
    let mesh = start().await;
    let vendor = mesh.vendor().await;
    let created = mesh
        .as_merchant(&vendor)
        .create_payment_intent(keyed(pb::CreatePaymentIntentRequest {
            merchant_id: vendor.id.clone(),
            amount: Some(vnd(150_000)),
            order_reference: "BUN-BO-2".into(),
            render_png: true,
            render_svg: true,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let intent = created.intent.unwrap();
    assert_eq!(intent.status(), IntentStatus::Active);
    assert_eq!(intent.reference.len(), 13);
    assert!(intent.reference.starts_with("PM"));
    // A decoder nobody here wrote reads the PNG to the payload, and the payload carries the
    // vendor's virtual account, the amount and the reference.
    assert_eq!(zbarimg(&created.png), intent.qr_payload);
    assert!(created.svg.starts_with("<svg") || created.svg.starts_with("<?xml"));
    let qr = vietqr::decode(&intent.qr_payload).unwrap();
    assert_eq!(qr.point_of_initiation, vietqr::PointOfInitiation::Dynamic);
    assert_eq!(qr.amount.as_deref(), Some("150000"));
    assert_eq!(qr.account(), Some(vendor.virtual_account_number.as_str()));
    assert_eq!(qr.bank_bin(), Some(BANK));
    assert_eq!(
        qr.additional.purpose.as_deref(),
        Some(intent.reference.as_str())
    );
    let expires = intent.expire_time.unwrap().seconds - intent.create_time.unwrap().seconds;
    assert_eq!(expires, 900, "15 minutes by default");

    // The buyer's bank upper-cases and wraps the reference in its own text.
    let description = bank_text(&intent.reference.to_ascii_lowercase());
    let answer = mesh
        .credit(
            "FT2433512345",
            &vendor.virtual_account_number,
            150_000,
            &description,
        )
        .await
        .unwrap();
    assert!(!answer.duplicate);
    assert_eq!(outcome(&answer), (O::Paid, "REFERENCE_MATCHED".into()));
    let credit = answer.credit.unwrap();
    assert_eq!(credit.merchant_id, vendor.id);
    assert_eq!(credit.intent_id, intent.id);
    assert_eq!(credit.payment_id, credit.id);
    assert_eq!(
        mesh.get_intent(&vendor, &intent.id).await.status(),
        IntentStatus::Paid
    );

    let payment = mesh
        .as_merchant(&vendor)
        .get_payment(pb::GetPaymentRequest {
            payment_id: credit.payment_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .payment
        .unwrap();
    assert_eq!(payment.amount.unwrap().amount, "150000");
    // 0.5 % of 150,000 = 750 (above the 500 minimum).
    let fee = payment.fee.unwrap();
    assert_eq!(fee.fee.unwrap().amount, "750");
    assert_eq!(fee.plan, "percent:0.5,min:500,cap:50000");
    assert_eq!(payment.net.unwrap().amount, "149250");
    assert_eq!(payment.order_reference, "BUN-BO-2");
    assert_eq!(payment.bank_transaction_id, "FT2433512345");

    // The ledger: clearing → payable 150,000; payable → fee revenue 750.
    assert_eq!(mesh.clearing().await, (150_000, 0));
    assert_eq!(mesh.payable(&vendor).await, (750, 150_000));
    assert_eq!(mesh.fees().await, (0, 750));
}

#[tokio::test]
async fn every_outcome_of_a_credit_is_defined() {
    let mesh = start().await;
    let vendor = mesh.vendor().await;
    let other = mesh.vendor().await;
    let va = vendor.virtual_account_number.clone();

    // Underpaid, then the rest: PAID once the received amounts reach the amount.
    let i = mesh.intent(&vendor, 100_000).await;
    let r = mesh
        .credit("U1", &va, 60_000, &bank_text(&i.reference))
        .await
        .unwrap();
    assert_eq!(outcome(&r), (O::Underpaid, "REFERENCE_MATCHED".into()));
    let now = mesh.get_intent(&vendor, &i.id).await;
    assert_eq!(now.status(), IntentStatus::Active);
    assert_eq!(now.amount_received.unwrap().amount, "60000");
    let r = mesh
        .credit("U2", &va, 40_000, &bank_text(&i.reference))
        .await
        .unwrap();
    assert_eq!(outcome(&r).0, O::Paid);
    assert_eq!(
        mesh.get_intent(&vendor, &i.id).await.status(),
        IntentStatus::Paid
    );

    // A second payment to a paid intent: credited, flagged.
    let r = mesh
        .credit("U3", &va, 100_000, &bank_text(&i.reference))
        .await
        .unwrap();
    assert_eq!(outcome(&r).0, O::AlreadyPaid);
    assert_eq!(r.credit.unwrap().merchant_id, vendor.id);

    // Overpaid: PAID, the whole amount is the merchant's.
    let i = mesh.intent(&vendor, 50_000).await;
    let r = mesh
        .credit("O1", &va, 70_000, &bank_text(&i.reference))
        .await
        .unwrap();
    assert_eq!(outcome(&r).0, O::Overpaid);
    assert_eq!(
        mesh.get_intent(&vendor, &i.id).await.status(),
        IntentStatus::Paid
    );

    // After cancellation, and after expiry: LATE, credited, the intent unchanged.
    let i = mesh.intent(&vendor, 30_000).await;
    let cancelled = mesh
        .as_merchant(&vendor)
        .cancel_payment_intent(keyed(pb::CancelPaymentIntentRequest {
            intent_id: i.id.clone(),
        }))
        .await
        .unwrap()
        .into_inner()
        .intent
        .unwrap();
    assert_eq!(cancelled.status(), IntentStatus::Cancelled);
    let r = mesh
        .credit("L1", &va, 30_000, &bank_text(&i.reference))
        .await
        .unwrap();
    assert_eq!(outcome(&r).0, O::Late);
    assert_eq!(
        mesh.get_intent(&vendor, &i.id).await.status(),
        IntentStatus::Cancelled
    );
    let i = mesh.intent(&vendor, 30_000).await;
    sqlx::query(
        "UPDATE payment.intents SET expire_time = now() - interval '1 second' WHERE id = $1::uuid",
    )
    .bind(&i.id)
    .execute(&mesh.kit.pool)
    .await
    .unwrap();
    assert_eq!(
        mesh.get_intent(&vendor, &i.id).await.status(),
        IntentStatus::Expired
    );
    let r = mesh
        .credit("L2", &va, 30_000, &bank_text(&i.reference))
        .await
        .unwrap();
    assert_eq!(outcome(&r).0, O::Late);
    assert_eq!(
        mesh.get_intent(&vendor, &i.id).await.status(),
        IntentStatus::Expired
    );

    // No reference: a static-QR payment to the stall.
    let r = mesh
        .credit("S1", &va, 25_000, "NGUYEN VAN AN chuyen tien")
        .await
        .unwrap();
    assert_eq!(outcome(&r), (O::Static, "NO_REFERENCE".into()));
    // A reference with a wrong check character matches no intent (never another's).
    let i = mesh.intent(&vendor, 45_000).await;
    let mut typo = i.reference.clone().into_bytes();
    typo[12] = if typo[12] == b'0' { b'1' } else { b'0' };
    let typo = String::from_utf8(typo).unwrap();
    let r = mesh
        .credit("S2", &va, 45_000, &bank_text(&typo))
        .await
        .unwrap();
    assert_eq!(outcome(&r), (O::Static, "REFERENCE_CHECK_FAILED".into()));
    assert_eq!(r.credit.unwrap().intent_id, "");
    assert_eq!(
        mesh.get_intent(&vendor, &i.id).await.status(),
        IntentStatus::Active
    );

    // Unknown account; a reference paid into another merchant's account: suspense.
    let r = mesh.credit("X1", "999999999", 10_000, "CK").await.unwrap();
    assert_eq!(outcome(&r), (O::Suspense, "ACCOUNT_UNKNOWN".into()));
    let c = r.credit.unwrap();
    assert_eq!((c.merchant_id.as_str(), c.payment_id.as_str()), ("", ""));
    let r = mesh
        .credit(
            "X2",
            &other.virtual_account_number,
            45_000,
            &bank_text(&i.reference),
        )
        .await
        .unwrap();
    assert_eq!(
        outcome(&r),
        (O::Suspense, "REFERENCE_OTHER_MERCHANT".into())
    );
    assert_eq!(mesh.suspense().await, (0, 55_000));

    // Every đồng that came in is somewhere: the merchant's payable or suspense.
    let received = 60_000 + 40_000 + 100_000 + 70_000 + 30_000 + 30_000 + 25_000 + 45_000;
    assert_eq!(mesh.clearing().await, (received + 55_000, 0));
    let (fee_debits, payable_credits) = mesh.payable(&vendor).await;
    assert_eq!(payable_credits, received);
    assert_eq!(mesh.fees().await, (0, fee_debits));
    assert_eq!(mesh.count("payments").await, 8);
}

#[tokio::test]
async fn a_suspended_merchant_takes_no_intents_and_its_credits_wait_in_suspense() {
    let mesh = start().await;
    let vendor = mesh.vendor().await;
    let i = mesh.intent(&vendor, 20_000).await;
    let mut merchants =
        paymesh_proto::merchant::v1::merchant_service_client::MerchantServiceClient::new(
            mesh.kit.channel_as(
                "merchant",
                paymesh_platform::auth::Principal::Operator("test".into()),
            ),
        );
    merchants
        .suspend_merchant(keyed(paymesh_proto::merchant::v1::SuspendMerchantRequest {
            merchant_id: vendor.id.clone(),
            reason: "documents expired".into(),
        }))
        .await
        .unwrap();
    let r = mesh
        .credit(
            "SUS1",
            &vendor.virtual_account_number,
            20_000,
            &bank_text(&i.reference),
        )
        .await
        .unwrap();
    assert_eq!(outcome(&r), (O::Suspense, "MERCHANT_NOT_ACTIVE".into()));
    let e = mesh
        .as_merchant(&vendor)
        .create_payment_intent(keyed(pb::CreatePaymentIntentRequest {
            merchant_id: vendor.id.clone(),
            amount: Some(vnd(1_000)),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), reason(&e)),
        (Code::FailedPrecondition, "MERCHANT_NOT_ACTIVE".into())
    );
}

#[tokio::test]
async fn the_same_bank_transaction_is_applied_once() {
    let mesh = start().await;
    let vendor = mesh.vendor().await;
    let va = vendor.virtual_account_number.clone();
    let i = mesh.intent(&vendor, 80_000).await;
    let text = bank_text(&i.reference);
    let first = mesh.credit("D1", &va, 80_000, &text).await.unwrap();
    let again = mesh.credit("D1", &va, 80_000, &text).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(
        again.credit, first.credit,
        "the first outcome, not ALREADY_PAID"
    );

    // Twenty copies at once (the bank's gRPC call and its webhook retries racing).
    let i = mesh.intent(&vendor, 90_000).await;
    let text = bank_text(&i.reference);
    let calls = (0..20).map(|_| {
        let client = mesh.bank();
        let req = notice("D2", &va, 90_000, &text);
        async move {
            client
                .clone()
                .notify_credit(req)
                .await
                .map(|r| r.into_inner())
        }
    });
    let answers = futures::future::join_all(calls).await;
    let answers: Vec<_> = answers.into_iter().map(Result::unwrap).collect();
    assert_eq!(answers.iter().filter(|a| !a.duplicate).count(), 1);
    assert!(answers.iter().all(|a| outcome(a).0 == O::Paid));
    assert_eq!(mesh.count("payments").await, 2);
    assert_eq!(mesh.clearing().await, (170_000, 0));

    // The same transaction id with another amount is a conflict, not a second credit.
    let e = mesh.credit("D2", &va, 90_001, &text).await.unwrap_err();
    assert_eq!(
        (e.code(), reason(&e)),
        (Code::FailedPrecondition, "BANK_TRANSACTION_CONFLICT".into())
    );
    assert_eq!(mesh.clearing().await, (170_000, 0));
}

#[tokio::test]
async fn who_may_call_what() {
    let mesh = start().await;
    let vendor = mesh.vendor().await;
    let other = mesh.vendor().await;
    let i = mesh.intent(&vendor, 10_000).await;
    let paid = mesh
        .credit(
            "W1",
            &vendor.virtual_account_number,
            10_000,
            &bank_text(&i.reference),
        )
        .await
        .unwrap()
        .credit
        .unwrap();

    // Another bank may not notify for this BIN; a merchant may not notify at all.
    let e = mesh
        .client_as(paymesh_platform::auth::Principal::Bank("970418".into()))
        .notify_credit(notice("W2", &vendor.virtual_account_number, 1_000, ""))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let e = mesh
        .as_merchant(&vendor)
        .notify_credit(notice("W3", &vendor.virtual_account_number, 1_000, ""))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);

    // Another merchant sees none of it and makes no intent for it.
    let e = mesh
        .as_merchant(&other)
        .get_payment(pb::GetPaymentRequest {
            payment_id: paid.payment_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = mesh
        .as_merchant(&other)
        .get_payment_intent(pb::GetPaymentIntentRequest {
            intent_id: i.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = mesh
        .as_merchant(&other)
        .list_payments(pb::ListPaymentsRequest {
            merchant_id: vendor.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let e = mesh
        .as_merchant(&other)
        .create_payment_intent(keyed(pb::CreatePaymentIntentRequest {
            merchant_id: vendor.id.clone(),
            amount: Some(vnd(1_000)),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let e = mesh
        .as_merchant(&other)
        .watch_payments(pb::WatchPaymentsRequest {
            merchant_id: vendor.id.clone(),
            after_cursor: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn bad_input_names_every_field_and_writes_nothing() {
    let mesh = start().await;
    let vendor = mesh.vendor().await;
    let e = mesh
        .as_merchant(&vendor)
        .create_payment_intent(keyed(pb::CreatePaymentIntentRequest {
            merchant_id: vendor.id.clone(),
            amount: Some(pb_money("150000.5")),
            order_reference: "x".repeat(65),
            expires_in_seconds: 10,
            png_module_px: 99,
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let mut fields = bad_fields(&e);
    fields.sort();
    assert_eq!(
        fields,
        [
            "amount.amount",
            "expires_in_seconds",
            "order_reference",
            "png_module_px"
        ]
    );
    let mut bad = notice("bad txn id!", "12-34", 0, "");
    bad.bank_bin = "97043".into();
    bad.value_time = None;
    let e = mesh.operator().notify_credit(bad).await.unwrap_err();
    let mut fields = bad_fields(&e);
    fields.sort();
    assert_eq!(
        fields,
        [
            "account_number",
            "amount.amount",
            "bank_bin",
            "bank_transaction_id",
            "value_time"
        ]
    );
    assert_eq!(mesh.count("credits").await, 0);
    assert_eq!(mesh.count("intents").await, 0);
}

fn pb_money(amount: &str) -> paymesh_proto::common::v1::Money {
    paymesh_proto::common::v1::Money {
        amount: amount.into(),
        currency_code: "VND".into(),
    }
}

#[tokio::test]
async fn payments_list_newest_first_in_pages() {
    let mesh = start().await;
    let vendor = mesh.vendor().await;
    for n in 1..=5 {
        mesh.credit(
            &format!("P{n}"),
            &vendor.virtual_account_number,
            n * 1_000,
            "CK",
        )
        .await
        .unwrap();
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = mesh
            .as_merchant(&vendor)
            .list_payments(pb::ListPaymentsRequest {
                page_size: 2,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.payments.len() <= 2);
        seen.extend(page.payments.into_iter().map(|p| p.bank_transaction_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, ["P5", "P4", "P3", "P2", "P1"]);
    // A token is bound to its filters.
    let e = mesh
        .as_merchant(&vendor)
        .list_payments(pb::ListPaymentsRequest {
            page_size: 2,
            page_token: {
                let first = mesh
                    .as_merchant(&vendor)
                    .list_payments(pb::ListPaymentsRequest {
                        page_size: 2,
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .into_inner();
                first.next_page_token
            },
            outcome: O::Static as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn a_merchant_is_charged_its_own_fee_plan_and_the_payment_records_it() {
    use paymesh_proto::merchant::v1::merchant_service_client::MerchantServiceClient;
    let mesh = start().await;
    let own = mesh.vendor().await;
    let default = mesh.vendor().await;
    MerchantServiceClient::new(mesh.kit.channel_as(
        "merchant",
        paymesh_platform::auth::Principal::Operator("test".into()),
    ))
    .set_merchant_fee_plan(keyed(
        paymesh_proto::merchant::v1::SetMerchantFeePlanRequest {
            merchant_id: own.id.clone(),
            fee_plan: "flat:2000".into(),
            reason: "market association rate".into(),
        },
    ))
    .await
    .unwrap();
    let a = mesh.paid(&own, 150_000, "FT-FEE-1").await;
    let fee = a.fee.unwrap();
    assert_eq!(
        (fee.fee.unwrap().amount.as_str(), fee.plan.as_str()),
        ("2000", "flat:2000")
    );
    let b = mesh.paid(&default, 150_000, "FT-FEE-2").await;
    let fee = b.fee.unwrap();
    assert_eq!(
        (fee.fee.unwrap().amount.as_str(), fee.plan.as_str()),
        ("750", "percent:0.5,min:500,cap:50000")
    );
    assert_eq!(mesh.payable(&own).await, (2_000, 150_000));
}
