//! Refunds and the suspense desk against a real ledger, merchant service, PostgreSQL and Redis.

#![allow(clippy::unwrap_used)]

mod support;

use paymesh_platform::auth::Principal;
use paymesh_proto::payment::v1 as pb;
use paymesh_proto::payment::v1::{CreditOutcome, CreditResolution, RefundKind, RefundStatus};
use support::*;
use tonic::Code;

fn refund_req(payment: &pb::Payment, amount: Option<i64>) -> pb::RefundPaymentRequest {
    pb::RefundPaymentRequest {
        payment_id: payment.id.clone(),
        amount: amount.map(vnd),
        reason: "customer returned the fish".into(),
    }
}

fn settle(id: &str, status: RefundStatus, why: &str) -> pb::SettleRefundRequest {
    pb::SettleRefundRequest {
        refund_id: id.into(),
        status: status as i32,
        failure_reason: why.into(),
    }
}

fn refunded(p: &Option<pb::Payment>) -> i64 {
    p.as_ref()
        .unwrap()
        .amount_refunded
        .as_ref()
        .unwrap()
        .amount
        .parse()
        .unwrap()
}

#[tokio::test]
async fn partial_refunds_never_exceed_the_payment_and_the_bank_settles_them() {
    let mesh = start().await;
    let m = mesh.vendor().await;
    let payment = mesh.paid(&m, 150_000, "FT-R1").await;
    let payable = mesh.payable_id(&m).await;
    // Fee 750 (0.5 %): the merchant holds 149,250.
    assert_eq!(mesh.balances(payable).await, ((750, 150_000), (0, 0)));

    // A partial refund is reserved, not paid: pending on the payable, queued for the bank;
    // its share of the fee (a third: 250) goes back to the merchant at once.
    let first = mesh
        .as_merchant(&m)
        .refund_payment(keyed(refund_req(&payment, Some(50_000))))
        .await
        .unwrap()
        .into_inner();
    let r1 = first.refund.clone().unwrap();
    assert_eq!(r1.status(), RefundStatus::Pending);
    assert_eq!(r1.kind(), RefundKind::Refund);
    assert_eq!(r1.bank_bin, BANK);
    assert_eq!(r1.bank_transaction_id, "FT-R1");
    assert_eq!(r1.requested_by, format!("merchant:{}", m.id));
    assert_eq!(refunded(&first.payment), 50_000);
    assert_eq!(r1.fee_returned.as_ref().unwrap().amount, "250");
    assert_eq!(mesh.balances(payable).await, ((750, 150_250), (50_000, 0)));

    // The same request again (same key) is the same refund, not a second one.
    let key = unique_key("refund");
    let second = mesh
        .as_merchant(&m)
        .refund_payment(with_key(refund_req(&payment, Some(60_000)), &key))
        .await
        .unwrap()
        .into_inner();
    let again = mesh
        .as_merchant(&m)
        .refund_payment(with_key(refund_req(&payment, Some(60_000)), &key))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.refund, again.refund);
    assert_eq!(refunded(&second.payment), 110_000);
    assert_eq!(
        second
            .refund
            .as_ref()
            .unwrap()
            .fee_returned
            .as_ref()
            .unwrap()
            .amount,
        "300"
    );
    assert_eq!(mesh.count("refunds").await, 2);

    // More than what is left is refused, naming the reason; what is left is allowed.
    let over = mesh
        .as_merchant(&m)
        .refund_payment(keyed(refund_req(&payment, Some(40_001))))
        .await
        .unwrap_err();
    assert_eq!(over.code(), Code::FailedPrecondition);
    assert_eq!(reason(&over), "REFUND_EXCEEDS_PAYMENT");

    // The bank reads its queue (its own BIN without naming it), oldest first, and settles.
    let queue = mesh
        .bank()
        .list_refunds(pb::ListRefundsRequest {
            status: RefundStatus::Pending as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .refunds;
    let ids: Vec<_> = queue.iter().map(|r| r.id.clone()).collect();
    let r2 = second.refund.clone().unwrap();
    assert_eq!(ids, vec![r1.id.clone(), r2.id.clone()]);

    let done = mesh
        .bank()
        .settle_refund(settle(&r1.id, RefundStatus::Completed, ""))
        .await
        .unwrap()
        .into_inner()
        .refund
        .unwrap();
    assert_eq!(done.status(), RefundStatus::Completed);
    // Posted: the payable paid 50,000 out to the bank's payout account.
    assert_eq!(
        mesh.balances(payable).await,
        ((50_750, 150_550), (60_000, 0))
    );
    assert_eq!(mesh.payout().await, ((0, 50_000), (0, 60_000)));
    // Settling again the same way answers the refund; the other way is refused.
    let same = mesh
        .bank()
        .settle_refund(settle(&r1.id, RefundStatus::Completed, ""))
        .await
        .unwrap()
        .into_inner()
        .refund
        .unwrap();
    assert_eq!(same, done);
    let other = mesh
        .bank()
        .settle_refund(settle(&r1.id, RefundStatus::Failed, "account closed"))
        .await
        .unwrap_err();
    assert_eq!(reason(&other), "REFUND_ALREADY_SETTLED");

    // A failed payout voids the reservation: the 60,000 is the merchant's again, and the fee
    // share it gave back is charged again.
    let failed = mesh
        .bank()
        .settle_refund(settle(&r2.id, RefundStatus::Failed, "payer account closed"))
        .await
        .unwrap()
        .into_inner()
        .refund
        .unwrap();
    assert_eq!(failed.status(), RefundStatus::Failed);
    assert_eq!(failed.failure_reason, "payer account closed");
    assert_eq!(mesh.balances(payable).await, ((51_050, 150_550), (0, 0)));
    let p = mesh
        .as_merchant(&m)
        .get_payment(pb::GetPaymentRequest {
            payment_id: payment.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .payment;
    assert_eq!(refunded(&p), 50_000);

    // What is left of the payment is refundable whole: the rest of the fee comes back with it.
    let rest = mesh
        .as_merchant(&m)
        .refund_payment(keyed(refund_req(&payment, None)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(refunded(&rest.payment), 150_000);
    assert_eq!(
        rest.refund
            .as_ref()
            .unwrap()
            .fee_returned
            .as_ref()
            .unwrap()
            .amount,
        "500"
    );
    assert_eq!(
        mesh.balances(payable).await,
        ((51_050, 151_050), (100_000, 0))
    );
    // Nothing is left to refund.
    let none = mesh
        .as_merchant(&m)
        .refund_payment(keyed(refund_req(&payment, None)))
        .await
        .unwrap_err();
    assert_eq!(reason(&none), "REFUND_EXCEEDS_PAYMENT");

    // The merchant's stream told it each step.
    let kinds = mesh.event_kinds(&m).await;
    assert_eq!(
        kinds,
        vec![
            "PAYMENT_RECEIVED",
            "REFUND_CREATED",
            "REFUND_CREATED",
            "REFUND_COMPLETED",
            "REFUND_FAILED",
            "REFUND_CREATED"
        ]
    );
}

#[tokio::test]
async fn a_refund_the_merchant_can_no_longer_cover_is_refused() {
    let mesh = start().await;
    let m = mesh.vendor().await;
    let payment = mesh.paid(&m, 100_000, "FT-R4").await;
    // The merchant was paid out (as settlement will): 99,000 of its 99,500 left its payable.
    mesh.pay_out(&m, 99_000).await;
    let short = mesh
        .as_merchant(&m)
        .refund_payment(keyed(refund_req(&payment, Some(10_000))))
        .await
        .unwrap_err();
    assert_eq!(short.code(), Code::FailedPrecondition);
    assert_eq!(reason(&short), "INSUFFICIENT_BALANCE");
    // Nothing was reserved, given back or recorded.
    assert_eq!(mesh.count("refunds").await, 0);
    let payable = mesh.payable_id(&m).await;
    assert_eq!(mesh.balances(payable).await, ((99_500, 100_000), (0, 0)));
    // What it still holds (500, and the fee share of 2 given back) covers a smaller refund.
    mesh.as_merchant(&m)
        .refund_payment(keyed(refund_req(&payment, Some(500))))
        .await
        .unwrap();
}

#[tokio::test]
async fn concurrent_refunds_of_one_payment_add_up_to_at_most_its_amount() {
    let mesh = start().await;
    let m = mesh.vendor().await;
    let payment = mesh.paid(&m, 150_000, "FT-R2").await;
    let tries = (0..10).map(|_| {
        let mut client = mesh.as_merchant(&m);
        let req = refund_req(&payment, Some(20_000));
        async move { client.refund_payment(keyed(req)).await }
    });
    let results = futures::future::join_all(tries).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 7, "{results:?}");
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(reason(r), "REFUND_EXCEEDS_PAYMENT");
    }
    let payable = mesh.payable_id(&m).await;
    assert_eq!(mesh.balances(payable).await.1, (140_000, 0));
}

#[tokio::test]
async fn who_may_refund_and_settle() {
    let mesh = start().await;
    let m = mesh.vendor().await;
    let other = mesh.vendor().await;
    let payment = mesh.paid(&m, 80_000, "FT-R3").await;
    // Another merchant does not see the payment.
    let e = mesh
        .as_merchant(&other)
        .refund_payment(keyed(refund_req(&payment, None)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    // A bank does not refund.
    let e = mesh
        .bank()
        .refund_payment(keyed(refund_req(&payment, None)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    // A refund needs an idempotency key.
    let e = mesh
        .as_merchant(&m)
        .refund_payment(refund_req(&payment, None))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let refund = mesh
        .operator()
        .refund_payment(keyed(refund_req(&payment, None)))
        .await
        .unwrap()
        .into_inner()
        .refund
        .unwrap();
    assert_eq!(refund.requested_by, "operator:test");
    // Another bank neither sees nor settles it; the merchant cannot settle it.
    let stranger = mesh.client_as(Principal::Bank("970422".into()));
    let e = stranger
        .clone()
        .settle_refund(settle(&refund.id, RefundStatus::Completed, ""))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = stranger
        .clone()
        .get_refund(pb::GetRefundRequest {
            refund_id: refund.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = stranger
        .clone()
        .list_refunds(pb::ListRefundsRequest {
            bank_bin: BANK.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let e = mesh
        .as_merchant(&m)
        .settle_refund(settle(&refund.id, RefundStatus::Completed, ""))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    // Bad input names its fields.
    let e = mesh
        .bank()
        .settle_refund(settle(&refund.id, RefundStatus::Failed, ""))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&e), vec!["failure_reason"]);
    let e = mesh
        .bank()
        .settle_refund(settle(&refund.id, RefundStatus::Pending, ""))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&e), vec!["status"]);
    let e = mesh
        .as_merchant(&m)
        .refund_payment(keyed(pb::RefundPaymentRequest {
            payment_id: payment.id.clone(),
            amount: Some(vnd(0)),
            reason: "x\u{7}".into(),
        }))
        .await
        .unwrap_err();
    let fields = bad_fields(&e);
    assert!(fields.iter().any(|f| f.starts_with("amount")), "{fields:?}");
    assert!(fields.contains(&"reason".to_string()), "{fields:?}");
    // The merchant sees its refunds; the payment's listing is its own only.
    let mine = mesh
        .as_merchant(&m)
        .list_refunds(pb::ListRefundsRequest {
            payment_id: payment.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .refunds;
    assert_eq!(mine.len(), 1);
    let e = mesh
        .as_merchant(&other)
        .list_refunds(pb::ListRefundsRequest {
            payment_id: payment.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
}

#[tokio::test]
async fn an_operator_assigns_or_returns_a_credit_held_in_suspense_and_it_is_audited() {
    let mesh = start().await;
    let m = mesh.vendor().await;
    let lost = mesh
        .credit("FT-S1", "000111222333", 70_000, "chuyen tien")
        .await
        .unwrap();
    let lost = lost.credit.unwrap();
    assert_eq!(lost.outcome(), CreditOutcome::Suspense);
    let stray = mesh
        .credit("FT-S2", "000111222444", 30_000, "tra tien hang")
        .await
        .unwrap()
        .credit
        .unwrap();

    // Only operators see and resolve suspense.
    let e = mesh
        .as_merchant(&m)
        .list_suspense_credits(pb::ListSuspenseCreditsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let listed = mesh
        .operator()
        .list_suspense_credits(pb::ListSuspenseCreditsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .credits;
    let ids: Vec<_> = listed.iter().map(|c| c.id.clone()).collect();
    assert_eq!(ids, vec![lost.id.clone(), stray.id.clone()]);

    // A reason is required: it is audited.
    let e = mesh
        .operator()
        .assign_credit(keyed(pb::AssignCreditRequest {
            credit_id: lost.id.clone(),
            merchant_id: m.id.clone(),
            reason: String::new(),
        }))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&e), vec!["reason"]);

    let suspense_before = mesh.suspense().await;
    let assigned = mesh
        .operator()
        .assign_credit(keyed(pb::AssignCreditRequest {
            credit_id: lost.id.clone(),
            merchant_id: m.id.clone(),
            reason: "payer called: meant for stall 15".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    let credit = assigned.credit.unwrap();
    assert_eq!(credit.resolution(), CreditResolution::Assigned);
    assert_eq!(credit.resolved_by, "operator:test");
    assert_eq!(credit.resolution_reason, "payer called: meant for stall 15");
    assert!(credit.resolve_time.is_some());
    assert_eq!(credit.merchant_id, m.id);
    let payment = assigned.payment.unwrap();
    assert_eq!(payment.outcome(), CreditOutcome::Assigned);
    assert_eq!(payment.fee.unwrap().fee.unwrap().amount, "500"); // 0.5 % = 350, min 500
    assert_eq!(payment.net.unwrap().amount, "69500");
    let suspense_after = mesh.suspense().await;
    assert_eq!(suspense_after.0 - suspense_before.0, 70_000);
    assert_eq!(mesh.payable(&m).await, (500, 70_000));
    // The merchant sees the payment on its stream, like any other.
    assert_eq!(mesh.event_kinds(&m).await, vec!["PAYMENT_RECEIVED"]);

    // Resolved once: assigning again, or returning it, is refused.
    let e = mesh
        .operator()
        .return_credit(keyed(pb::ReturnCreditRequest {
            credit_id: lost.id.clone(),
            reason: "again".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(reason(&e), "CREDIT_ALREADY_RESOLVED");
    // A credit paid to a merchant is not suspense's to resolve.
    let paid = mesh.paid(&m, 10_000, "FT-S3").await;
    let e = mesh
        .operator()
        .return_credit(keyed(pb::ReturnCreditRequest {
            credit_id: paid.id.clone(),
            reason: "no".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(reason(&e), "CREDIT_NOT_IN_SUSPENSE");

    // A return is a payout instruction to the bank; a failed payout puts the credit back.
    let returned = mesh
        .operator()
        .return_credit(keyed(pb::ReturnCreditRequest {
            credit_id: stray.id.clone(),
            reason: "no such stall; sender asked for it back".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    let refund = returned.refund.unwrap();
    assert_eq!(refund.kind(), RefundKind::Return);
    assert_eq!(refund.bank_transaction_id, "FT-S2");
    assert_eq!(refund.merchant_id, "");
    assert_eq!(
        returned.credit.unwrap().resolution(),
        CreditResolution::Returned
    );
    mesh.bank()
        .settle_refund(settle(
            &refund.id,
            RefundStatus::Failed,
            "sender account closed",
        ))
        .await
        .unwrap();
    let back = mesh
        .operator()
        .list_suspense_credits(pb::ListSuspenseCreditsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .credits;
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].id, stray.id);
    assert_eq!(back[0].resolution(), CreditResolution::None);
    let again = mesh
        .operator()
        .return_credit(keyed(pb::ReturnCreditRequest {
            credit_id: stray.id.clone(),
            reason: "second try, new account given".into(),
        }))
        .await
        .unwrap()
        .into_inner()
        .refund
        .unwrap();
    mesh.bank()
        .settle_refund(settle(&again.id, RefundStatus::Completed, ""))
        .await
        .unwrap();
    assert_eq!(mesh.payout().await, ((0, 30_000), (0, 0)));
    assert_eq!(mesh.suspense().await.0 - suspense_after.0, 30_000);

    // Every action is in the audit, in order, with who and why.
    let audit = mesh.audit(&stray.id).await;
    assert_eq!(
        audit,
        vec![
            (
                "RETURN".to_string(),
                "operator:test".to_string(),
                "no such stall; sender asked for it back".to_string()
            ),
            (
                "RETURN_FAILED".to_string(),
                format!("bank:{BANK}"),
                "sender account closed".to_string()
            ),
            (
                "RETURN".to_string(),
                "operator:test".to_string(),
                "second try, new account given".to_string()
            ),
        ]
    );
}
