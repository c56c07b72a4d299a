//! Channels' payments made in groups (group commit, `billing.pay_groups`): a group decides each
//! payment as the ones before it left the bills, so every outcome is one a payment made alone
//! could have had; a refused payment keeps no key; copies of one request make one payment.
//!
//! The group is made deterministic: a bill is locked from another connection, so the first
//! group waits on it while every other payment queues up behind it and forms the next group.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use paymesh_proto::billing::v1 as pb;
use support::*;

const FULL: i64 = 120_000;
/// Groups wait for the bill the test holds (not 200 ms, then alone): all of them queue.
const WAIT_LONG: &[(&str, &str)] = &[("billing.pay_group_lock_wait_ms", "30000")];
const FEE: i64 = 1_100;

/// A PayBill request for `numbers` (each in full) quoting a fresh lookup of `channel`.
async fn request(
    mesh: &Mesh,
    channel: &str,
    b: &paymesh_proto::merchant::v1::Merchant,
    customer: &str,
    numbers: &[(&str, Option<i64>)],
    reference: &str,
) -> pb::PayBillRequest {
    let found = mesh.lookup(channel, b, customer).await;
    pb::PayBillRequest {
        lookup_reference: found.lookup_reference,
        bills: numbers
            .iter()
            .map(|(n, amount)| pb::BillAmount {
                bill_number: (*n).into(),
                amount: amount.map(vnd),
            })
            .collect(),
        channel_reference: reference.into(),
    }
}

/// Waits until a PayBill's group waits for the bill row locked by the test.
async fn until_a_group_waits(mesh: &Mesh) {
    for _ in 0..200 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
             AND query LIKE '%FROM billing.bills WHERE id IN%'",
        )
        .fetch_one(&mesh.kit.pool)
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no group of payments waits for the locked bill");
}

/// Locks bill `number` from another connection and sends `held` (its payment, as channel
/// `held`): returns once that payment's group waits for the lock, so every payment sent before
/// the lock is let go (`rollback`) queues for the next group.
async fn hold_and_pay(
    mesh: &Mesh,
    number: &str,
    held: pb::PayBillRequest,
) -> (
    sqlx::Transaction<'static, sqlx::Postgres>,
    tokio::task::JoinHandle<Result<tonic::Response<pb::PayBillResponse>, tonic::Status>>,
) {
    let mut hold = mesh.kit.pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM billing.bills WHERE bill_number = $1 FOR UPDATE")
        .bind(number)
        .execute(&mut *hold)
        .await
        .unwrap();
    let mut client = mesh.channel("held");
    let first = tokio::spawn(async move { client.pay_bill(keyed(held)).await });
    until_a_group_waits(mesh).await;
    (hold, first)
}

#[tokio::test]
async fn payments_made_together_have_the_outcomes_they_would_have_alone() {
    let mesh = start_with(WAIT_LONG).await;
    let b = mesh.biller(water()).await;
    // G-0 is held; R-i are raced by two channels; M-1..M-3 are one customer's, paid "all
    // outstanding" by one channel and M-2 by name by another; S-1 twice by one channel under one
    // reference; C-1 by two copies of one request; X-1 first with a wrong amount.
    let mut bills = vec![bill("50000000", "G-0", FULL, 5)];
    for i in 1..=10 {
        bills.push(bill(
            &format!("5100000{}", i % 10),
            &format!("R-{i}"),
            FULL,
            5,
        ));
    }
    for n in ["M-1", "M-2", "M-3"] {
        bills.push(bill("52000000", n, FULL, 5));
    }
    bills.push(bill("53000000", "S-1", FULL, 5));
    bills.push(bill("54000000", "C-1", FULL, 5));
    bills.push(bill("55000000", "X-1", FULL, 5));
    mesh.upsert(&b, bills, &unique_key("u")).await.unwrap();

    // Every request is made (lookups included) before the group forms.
    let held = request(&mesh, "held", &b, "50000000", &[("G-0", None)], "H-0").await;
    let mut raced = Vec::new();
    for i in 1..=10 {
        let customer = format!("5100000{}", i % 10);
        let number = format!("R-{i}");
        for channel in ["vcb-app", "momo"] {
            let r = request(
                &mesh,
                channel,
                &b,
                &customer,
                &[(&number, None)],
                &unique_key("r"),
            )
            .await;
            raced.push((number.clone(), channel, r));
        }
    }
    let all = request(&mesh, "vcb-app", &b, "52000000", &[], "ALL-1").await;
    let one = request(&mesh, "momo", &b, "52000000", &[("M-2", None)], "ONE-1").await;
    let same_ref_a = request(&mesh, "zalo", &b, "53000000", &[("S-1", None)], "Z-1").await;
    let same_ref_b = request(&mesh, "zalo", &b, "53000000", &[("S-1", None)], "Z-1").await;
    let copy = request(&mesh, "atm-1", &b, "54000000", &[("C-1", None)], "C-REF").await;
    let wrong = request(
        &mesh,
        "atm-2",
        &b,
        "55000000",
        &[("X-1", Some(FULL - 1))],
        "X-REF",
    )
    .await;
    let (copy_key, wrong_key) = (unique_key("copy"), unique_key("wrong"));

    // Hold G-0, start its payment: its group waits for the lock.
    let (hold, first) = hold_and_pay(&mesh, "G-0", held).await;

    // Everything else queues up behind it.
    let mut calls = Vec::new();
    let mut spawn = |channel: &str, request: tonic::Request<pb::PayBillRequest>| {
        let mut client = mesh.channel(channel);
        calls.push(tokio::spawn(async move {
            client
                .pay_bill(request)
                .await
                .map(tonic::Response::into_inner)
        }));
    };
    for (_, channel, r) in &raced {
        spawn(channel, keyed(r.clone()));
    }
    spawn("vcb-app", keyed(all));
    spawn("momo", keyed(one));
    spawn("zalo", keyed(same_ref_a));
    spawn("zalo", keyed(same_ref_b));
    spawn("atm-2", with_key(wrong.clone(), &wrong_key));
    spawn("atm-1", with_key(copy.clone(), &copy_key));
    // A copy of a request while the first is queued, which the idempotency layer lets through
    // (its Redis entry gone): both copies in one group.
    tokio::time::sleep(Duration::from_millis(500)).await;
    mesh.kit.flush_redis().await;
    spawn("atm-1", with_key(copy, &copy_key));
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    hold.rollback().await.unwrap();

    let held_paid = first.await.unwrap().unwrap().into_inner();
    assert_eq!(held_paid.payments[0].bill_number, "G-0");
    let mut results = Vec::new();
    for call in calls {
        results.push(call.await.unwrap());
    }
    let (raced_results, rest) = results.split_at(raced.len());

    // Each raced bill: one payment, one BILL_PAID.
    let mut per_bill: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for ((number, _, _), result) in raced.iter().zip(raced_results) {
        let e = per_bill.entry(number.as_str()).or_default();
        match result {
            Ok(paid) => {
                assert_eq!(paid.payments[0].bill_number, *number);
                e.0 += 1;
            }
            Err(s) => {
                assert_eq!(reason(s), "BILL_PAID", "{s:?}");
                e.1 += 1;
            }
        }
    }
    assert!(per_bill.values().all(|c| *c == (1, 1)), "{per_bill:?}");

    // "All outstanding" and M-2 by name: whichever came first, each bill paid once.
    let (all, one) = (&rest[0], &rest[1]);
    let mut m_paid: HashMap<String, usize> = HashMap::new();
    for r in [all, one].into_iter().flatten() {
        for p in &r.payments {
            *m_paid.entry(p.bill_number.clone()).or_default() += 1;
        }
    }
    assert_eq!(
        m_paid,
        HashMap::from([("M-1".into(), 1), ("M-2".into(), 1), ("M-3".into(), 1)]),
        "all: {all:?}, one: {one:?}"
    );
    if let Err(s) = one {
        assert_eq!(reason(s), "BILL_PAID", "{s:?}");
    }
    assert!(all.is_ok(), "{all:?}");

    // One channel, one reference, one bill: paid once, then CHANNEL_REFERENCE_USED.
    let same: Vec<_> = rest[2..4].iter().collect();
    assert_eq!(same.iter().filter(|r| r.is_ok()).count(), 1, "{same:?}");
    let refused = same.iter().find_map(|r| r.as_ref().err()).unwrap();
    assert_eq!(reason(refused), "CHANNEL_REFERENCE_USED", "{refused:?}");

    // Two copies of one request: one payment, the same answer twice.
    let (c1, c2) = (rest[5].as_ref().unwrap(), rest[6].as_ref().unwrap());
    assert_eq!(c1, c2);

    // A refused payment keeps no key: corrected, the same key pays.
    let e = rest[4].as_ref().unwrap_err();
    assert_eq!(reason(e), "AMOUNT_NOT_EXACT", "{e:?}");
    let corrected = pb::PayBillRequest {
        bills: vec![pb::BillAmount {
            bill_number: "X-1".into(),
            amount: None,
        }],
        ..wrong
    };
    let paid = mesh
        .channel("atm-2")
        .pay_bill(with_key(corrected, &wrong_key))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(paid.payments[0].bill_number, "X-1");

    // The database and the ledger agree with what the channels were told.
    let told: i64 = 1 // G-0
        + 10 // R-i
        + 3 // M-i
        + 1 // S-1
        + 1 // C-1
        + 1; // X-1
    assert_eq!(mesh.kit.count("billing.payments").await, told);
    let paid_sum = FULL * told;
    assert_eq!(mesh.payable(&b).await, paid_sum - FEE * told);
    assert_eq!(mesh.channel_owes("atm-1").await, FULL, "C-1 paid once");
    let owed: i64 = {
        let mut sum = 0;
        for channel in ["held", "vcb-app", "momo", "zalo", "atm-1", "atm-2"] {
            sum += mesh.channel_owes(channel).await;
        }
        sum
    };
    assert_eq!(owed, paid_sum);
    // They were made together: the payments queued behind G-0 share one group's time.
    let largest: i64 = sqlx::query_scalar(
        "SELECT max(n) FROM (SELECT count(*) AS n FROM billing.payments GROUP BY create_time) g",
    )
    .fetch_one(&mesh.kit.pool)
    .await
    .unwrap();
    assert!(largest >= 10, "the largest group made {largest} payments");
}

#[tokio::test]
async fn without_groups_each_payment_is_its_own_transaction() {
    let mesh = start_with(&[("billing.pay_groups", "0")]).await;
    let b = mesh.biller(water()).await;
    mesh.upsert(&b, vec![bill("56000000", "W-1", FULL, 5)], &unique_key("u"))
        .await
        .unwrap();
    let (a, c) = tokio::join!(
        mesh.pay("vcb-app", &b, "56000000", "W-1", None),
        mesh.pay("momo", &b, "56000000", "W-1", None),
    );
    let refused = match (a, c) {
        (Ok(_), Err(e)) | (Err(e), Ok(_)) => e,
        other => panic!("one success and one refusal, got {other:?}"),
    };
    assert_eq!(reason(&refused), "BILL_PAID", "{refused:?}");
    assert_eq!(mesh.payable(&b).await, FULL - FEE);
}

#[tokio::test]
async fn a_group_that_fails_makes_each_payment_alone() {
    let mesh = start_with(WAIT_LONG).await;
    let b = mesh.biller(water()).await;
    let mut bills = vec![bill("58000000", "F-0", FULL, 5)];
    for i in 1..=5 {
        bills.push(bill(&format!("5800000{i}"), &format!("F-{i}"), FULL, 5));
    }
    bills.push(bill("58000009", "F-9", FULL, 5));
    mesh.upsert(&b, bills, &unique_key("u")).await.unwrap();
    // The database refuses the payment quoting BOOM (as a bad row or a broken disk would).
    for statement in [
        "CREATE FUNCTION billing.boom() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'boom'; END $$",
        "CREATE TRIGGER boom BEFORE INSERT ON billing.payments FOR EACH ROW \
         WHEN (NEW.channel_reference = 'BOOM') EXECUTE FUNCTION billing.boom()",
    ] {
        sqlx::query(statement)
            .execute(&mesh.kit.pool)
            .await
            .unwrap();
    }
    let held = request(&mesh, "held", &b, "58000000", &[("F-0", None)], "H-0").await;
    let mut queued = Vec::new();
    for i in 1..=5 {
        let customer = format!("5800000{i}");
        let number = format!("F-{i}");
        queued.push(request(&mesh, "vcb-app", &b, &customer, &[(&number, None)], &number).await);
    }
    let boom = request(&mesh, "momo", &b, "58000009", &[("F-9", None)], "BOOM").await;
    let boom_key = unique_key("boom");

    let (hold, first) = hold_and_pay(&mesh, "F-0", held).await;
    let mut calls = Vec::new();
    for r in queued {
        let mut client = mesh.channel("vcb-app");
        calls.push(tokio::spawn(async move { client.pay_bill(keyed(r)).await }));
    }
    let boom_call = {
        let mut client = mesh.channel("momo");
        let r = with_key(boom.clone(), &boom_key);
        tokio::spawn(async move { client.pay_bill(r).await })
    };
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    hold.rollback().await.unwrap();

    first.await.unwrap().unwrap();
    // The group failed on BOOM's row: every other payment was made alone, BOOM failed alone.
    for call in calls {
        call.await.unwrap().unwrap();
    }
    let e = boom_call.await.unwrap().unwrap_err();
    assert_eq!(e.code(), tonic::Code::Internal, "{e:?}");
    assert_eq!(mesh.kit.count("billing.payments").await, 6);
    assert_eq!(
        mesh.get_bill(&b, "F-9").await.status,
        pb::BillStatus::Open as i32
    );

    // Mended, BOOM's retry pays; its ledger chain, posted by the failed attempts, is not
    // posted twice.
    sqlx::query("DROP TRIGGER boom ON billing.payments")
        .execute(&mesh.kit.pool)
        .await
        .unwrap();
    mesh.kit.flush_redis().await;
    mesh.channel("momo")
        .pay_bill(with_key(boom, &boom_key))
        .await
        .unwrap();
    assert_eq!(mesh.kit.count("billing.payments").await, 7);
    assert_eq!(mesh.payable(&b).await, 7 * (FULL - FEE));
    assert_eq!(mesh.channel_owes("momo").await, FULL);
    assert_eq!(mesh.channel_owes("vcb-app").await, 5 * FULL);
}

#[tokio::test]
async fn a_bill_held_elsewhere_does_not_hold_up_the_others() {
    let mesh = start().await; // groups wait 200 ms for a lock, then make their payments alone
    let b = mesh.biller(water()).await;
    let mut bills = vec![bill("59000000", "H-0", FULL, 5)];
    for i in 1..=5 {
        bills.push(bill(&format!("5900000{i}"), &format!("H-{i}"), FULL, 5));
    }
    mesh.upsert(&b, bills, &unique_key("u")).await.unwrap();
    let held = request(&mesh, "held", &b, "59000000", &[("H-0", None)], "H-0").await;
    let mut others = Vec::new();
    for i in 1..=5 {
        let customer = format!("5900000{i}");
        let number = format!("H-{i}");
        others.push(request(&mesh, "vcb-app", &b, &customer, &[(&number, None)], &number).await);
    }
    // H-0 is held (as by a biller's load amending it) for as long as the test likes.
    let mut hold = mesh.kit.pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM billing.bills WHERE bill_number = 'H-0' FOR UPDATE")
        .execute(&mut *hold)
        .await
        .unwrap();
    let first = {
        let mut client = mesh.channel("held");
        tokio::spawn(async move { client.pay_bill(keyed(held)).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The other payments are made while H-0 is still held.
    for r in others {
        let paid = tokio::time::timeout(
            Duration::from_secs(5),
            mesh.channel("vcb-app").pay_bill(keyed(r)),
        )
        .await
        .expect("a payment waited for a bill it does not pay")
        .unwrap()
        .into_inner();
        assert_eq!(paid.payments.len(), 1);
    }
    assert!(!first.is_finished(), "H-0's payment waits for its bill");
    hold.rollback().await.unwrap();
    let paid = first.await.unwrap().unwrap().into_inner();
    assert_eq!(paid.payments[0].bill_number, "H-0");
    assert_eq!(mesh.kit.count("billing.payments").await, 6);
    assert_eq!(mesh.payable(&b).await, 6 * (FULL - FEE));
}
