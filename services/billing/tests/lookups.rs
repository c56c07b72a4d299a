//! Lookups read together (`billing.lookup_groups`): the lookups waiting at once read their
//! customers' bills in one statement, and each is answered its own customer's outstanding bills,
//! exactly as a lookup alone would be; a group whose read fails reads each lookup alone.
//!
//! The group is made deterministic: the bills table is locked from another connection, so the
//! first read waits on it while every other lookup queues up behind it and forms the next group.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use paymesh_proto::billing::v1 as pb;
use support::*;

/// What a lookup shows of a customer's bills (not its reference, which is signed afresh).
fn shown(r: &pb::LookupBillsResponse) -> Vec<(String, String, String)> {
    r.bills
        .iter()
        .map(|b| {
            (
                b.bill_number.clone(),
                b.due_date.clone(),
                b.amount_due_now.clone().unwrap_or_default().amount,
            )
        })
        .collect()
}

/// Groups of lookups read so far in this process that had more than 8 customers.
fn large_groups() -> u64 {
    let text = paymesh_platform::metrics::metrics().encode();
    let bucket = |le: &str| -> u64 {
        text.lines()
            .find(|l| {
                l.starts_with("paymesh_billing_lookup_group_customers_bucket")
                    && l.contains(&format!("le=\"{le}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    bucket("+Inf") - bucket("8.0")
}

/// The reader's connection in this test's database, if it has one.
async fn reader_pid(mesh: &Mesh) -> Option<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity \
         WHERE application_name = 'paymesh-billing-lookups' AND datname = current_database()",
    )
    .fetch_optional(&mesh.kit.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn lookups_read_together_each_show_their_own_customers_bills() {
    let mesh = start_with(&[("billing.lookup_groups", "1")]).await;
    let b = mesh.biller(water()).await;
    // Customer i has i % 4 bills, due in an order other than their numbers'.
    let mut bills = Vec::new();
    for i in 0..16 {
        for k in 0..i % 4 {
            bills.push(bill(
                &format!("590000{i:02}"),
                &format!("L-{i}-{k}"),
                10_000 * (i + 1) + k,
                20 - 3 * i32::try_from(k).unwrap(),
            ));
        }
    }
    mesh.upsert(&b, bills, &unique_key("u")).await.unwrap();
    // Another biller's customer with the same code: not shown to the first biller's lookups.
    let other = mesh.biller(water()).await;
    mesh.upsert(
        &other,
        vec![bill("59000003", "OTHER-1", 5_000, 5)],
        &unique_key("u"),
    )
    .await
    .unwrap();

    let mut hold = mesh.kit.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE billing.bills IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *hold)
        .await
        .unwrap();
    let before = large_groups();
    // The first lookup's read waits for the lock; the others queue up behind it: customers 0..16
    // and 0..4 again (one customer twice in one group), and the other biller's.
    let mut calls = Vec::new();
    for i in (0..16).chain(0..4) {
        let mut client = mesh.channel("vcb-app");
        let request = pb::LookupBillsRequest {
            biller_id: b.id.clone(),
            customer_code: format!("590000{i:02}"),
        };
        calls.push((
            i,
            tokio::spawn(async move { client.lookup_bills(request).await }),
        ));
        if calls.len() == 1 {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    let other_call = {
        let mut client = mesh.channel("momo");
        let request = pb::LookupBillsRequest {
            biller_id: other.id.clone(),
            customer_code: "59000003".into(),
        };
        tokio::spawn(async move { client.lookup_bills(request).await })
    };
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    hold.rollback().await.unwrap();

    for (i, call) in calls {
        let grouped = call.await.unwrap().unwrap().into_inner();
        let numbers: Vec<String> = grouped
            .bills
            .iter()
            .map(|x| x.bill_number.clone())
            .collect();
        // By due date: the last-numbered bill is due first.
        let expected: Vec<String> = (0..i % 4).rev().map(|k| format!("L-{i}-{k}")).collect();
        assert_eq!(numbers, expected, "customer {i}");
        for x in &grouped.bills {
            assert!(x.bill_number.starts_with(&format!("L-{i}-")));
        }
        assert_eq!(grouped.customer_code, format!("590000{i:02}"));
        // The same as a lookup alone (a group of one) shows now.
        let alone = mesh.lookup("vcb-app", &b, &format!("590000{i:02}")).await;
        assert_eq!(shown(&grouped), shown(&alone), "customer {i}");
    }
    let other_found = other_call.await.unwrap().unwrap().into_inner();
    assert_eq!(
        other_found
            .bills
            .iter()
            .map(|x| x.bill_number.as_str())
            .collect::<Vec<_>>(),
        ["OTHER-1"]
    );
    assert!(
        large_groups() > before,
        "the lookups queued behind the lock were read in one group"
    );
}

#[tokio::test]
async fn a_group_whose_read_fails_reads_each_lookup_alone() {
    let mesh = start_with(&[("billing.lookup_groups", "1")]).await;
    let b = mesh.biller(water()).await;
    mesh.upsert(
        &b,
        vec![
            bill("57000001", "R-1", 30_000, 5),
            bill("57000002", "R-2", 40_000, 5),
        ],
        &unique_key("u"),
    )
    .await
    .unwrap();
    assert_eq!(
        shown(&mesh.lookup("vcb-app", &b, "57000001").await).len(),
        1
    );
    let first = reader_pid(&mesh)
        .await
        .expect("the reader reads on a connection of its own");
    // The reader's connection breaks (a restarted server, a network cut, an operator).
    let terminated: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(first)
        .fetch_one(&mesh.kit.pool)
        .await
        .unwrap();
    assert!(terminated);
    // Its next group fails; the lookup is read alone and answered all the same.
    let found = mesh.lookup("vcb-app", &b, "57000002").await;
    assert_eq!(
        shown(&found),
        [(
            "R-2".to_string(),
            today().plus_days(5).to_string(),
            "40000".to_string()
        )]
    );
    // The group after connects again.
    let again = mesh.lookup("vcb-app", &b, "57000001").await;
    assert_eq!(again.bills[0].bill_number, "R-1");
    let second = reader_pid(&mesh).await.expect("the reader connected again");
    assert_ne!(first, second);
}

#[tokio::test]
async fn without_readers_each_lookup_reads_alone() {
    let mesh = start_with(&[("billing.lookup_groups", "0")]).await;
    let b = mesh.biller(water()).await;
    mesh.upsert(
        &b,
        vec![
            bill("55000001", "N-2", 20_000, 9),
            bill("55000001", "N-1", 10_000, 3),
        ],
        &unique_key("u"),
    )
    .await
    .unwrap();
    let found = mesh.lookup("vcb-app", &b, "55000001").await;
    assert_eq!(
        found
            .bills
            .iter()
            .map(|x| x.bill_number.as_str())
            .collect::<Vec<_>>(),
        ["N-1", "N-2"]
    );
    assert_eq!(reader_pid(&mesh).await, None);
}
