//! Kill -9 the real ledger process while clients are posting linked transfers, restart it,
//! and check that every acknowledged transfer is there and nothing is half-applied.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paymesh_money::Id128;
use paymesh_platform::auth::{Minter, Principal, TokenRules, generate_keypair};
use paymesh_platform::client::{CallContext, channel};
use paymesh_proto::common::v1::Money;
use paymesh_proto::ledger::v1 as pb;
use paymesh_proto::ledger::v1::ledger_service_client::LedgerServiceClient;

struct Server {
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(db_url: &str, public_key: &std::path::Path, port: u16) -> Server {
    let child = Command::new(env!("CARGO_BIN_EXE_paymesh"))
        .args(["serve", "ledger"])
        .env("PAYMESH_DATABASE_URL", db_url)
        .env("PAYMESH_AUTH_PUBLIC_KEYS_DIR", public_key.parent().unwrap())
        .env("PAYMESH_LEDGER_LISTEN", format!("127.0.0.1:{port}"))
        .env("PAYMESH_TELEMETRY_METRICS_LISTEN", "127.0.0.1:0")
        .env("PAYMESH_TELEMETRY_LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting paymesh serve ledger");
    Server { child }
}

async fn wait_serving(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut health = tonic_health::pb::health_client::HealthClient::new(
            channel(&format!("127.0.0.1:{port}")).unwrap(),
        );
        let ok = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map(|r| {
                r.into_inner().status
                    == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
            })
            .unwrap_or(false);
        if ok {
            return;
        }
        assert!(Instant::now() < deadline, "ledger did not become healthy");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn vnd(a: &str) -> Option<Money> {
    Some(Money {
        amount: a.into(),
        currency_code: "VND".into(),
    })
}

fn transfer(
    id: Id128,
    d: Id128,
    c: Id128,
    amount: &str,
    reference: &str,
    linked: bool,
) -> pb::Transfer {
    pb::Transfer {
        id: id.to_bytes().to_vec(),
        debit_account_id: d.to_bytes().to_vec(),
        credit_account_id: c.to_bytes().to_vec(),
        amount: vnd(amount),
        code: pb::TransferCode::QrPayment as i32,
        reference: reference.into(),
        flags: Some(pb::TransferFlags {
            linked,
            ..Default::default()
        }),
        pending_id: vec![],
        timeout_seconds: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_batch_loses_no_acknowledged_transfer_and_half_applies_nothing() {
    let (db_url, pool) = paymesh_testkit::fresh_database("crash_test").await.unwrap();
    let dir = std::env::temp_dir().join(format!("paymesh-crash-{}", Id128::random()));
    std::fs::create_dir_all(&dir).unwrap();
    let (private, public) = generate_keypair().unwrap();
    std::fs::create_dir_all(dir.join("public")).unwrap();
    let public_path = dir.join("public/mesh.pem");
    std::fs::write(&public_path, public).unwrap();
    let minter = Minter::from_private_pem("mesh", private.as_bytes(), &TokenRules::test()).unwrap();
    let token = minter
        .mint(&Principal::Service("demo".into()), 600)
        .unwrap();
    let port = paymesh_testkit::free_port();
    let server = spawn(&db_url, &public_path, port);
    wait_serving(port).await;

    let client = LedgerServiceClient::with_interceptor(
        channel(&format!("127.0.0.1:{port}")).unwrap(),
        CallContext::with_token(&token).unwrap(),
    );
    let (clearing, vendor, fees) = (Id128::random(), Id128::random(), Id128::random());
    let acct = |id: Id128, limited: bool| pb::Account {
        id: id.to_bytes().to_vec(),
        currency_code: "VND".into(),
        code: 1,
        flags: Some(pb::AccountFlags {
            debits_must_not_exceed_credits: limited,
            credits_must_not_exceed_debits: false,
        }),
        reference: String::new(),
    };
    client
        .clone()
        .create_accounts(pb::CreateAccountsRequest {
            accounts: vec![acct(clearing, false), acct(vendor, true), acct(fees, false)],
        })
        .await
        .unwrap();

    // 16 clients, each sending requests of 10 linked (payment, fee) pairs until the server dies.
    let acked: Arc<Mutex<Vec<(Id128, Id128)>>> = Arc::default();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let mut c = client.clone();
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let mut pairs = Vec::new();
                let mut transfers = Vec::new();
                for _ in 0..10 {
                    let (pay, fee) = (Id128::random(), Id128::random());
                    let reference = format!("pair-{pay}");
                    transfers.push(transfer(
                        pay,
                        clearing,
                        vendor,
                        "10000",
                        &reference[..37],
                        true,
                    ));
                    transfers.push(transfer(fee, vendor, fees, "100", &reference[..37], false));
                    pairs.push((pay, fee));
                }
                match c
                    .create_transfers(pb::CreateTransfersRequest { transfers })
                    .await
                {
                    Ok(r) => {
                        let r = r.into_inner();
                        assert!(
                            r.results
                                .iter()
                                .all(|x| *x == pb::CreateTransferResult::Ok as i32),
                            "{r:?}"
                        );
                        acked.lock().unwrap().extend(pairs);
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    // Let load build up, then kill the process without warning.
    let started = Instant::now();
    while acked.lock().unwrap().len() < 2000 && started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut server = server;
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 100,
        "too few transfers acknowledged before the kill: {}",
        acked.len()
    );

    // Restart on the same database.
    let _server = spawn(&db_url, &public_path, port);
    wait_serving(port).await;

    let ids: Vec<uuid::Uuid> = acked
        .iter()
        .flat_map(|(p, f)| [p.to_uuid(), f.to_uuid()])
        .collect();
    let found: i64 = sqlx::query_scalar("SELECT count(*) FROM ledger.transfers WHERE id = ANY($1)")
        .bind(&ids)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        found as usize,
        ids.len(),
        "an acknowledged transfer is missing after the crash"
    );

    // Nothing half-applied: every pair is stored whole or not at all.
    let per_pair: Vec<(String, i64)> =
        sqlx::query_as("SELECT reference, count(*) FROM ledger.transfers GROUP BY reference")
            .fetch_all(&pool)
            .await
            .unwrap();
    let broken: HashMap<_, _> = per_pair.into_iter().filter(|(_, n)| *n != 2).collect();
    assert!(broken.is_empty(), "half-applied chains: {broken:?}");
    let problems = paymesh_ledger::store::audit(&pool).await.unwrap();
    assert!(problems.is_empty(), "{problems:#?}");

    // And the restarted ledger takes new work.
    let r = client
        .clone()
        .create_transfers(pb::CreateTransfersRequest {
            transfers: vec![transfer(
                Id128::random(),
                clearing,
                vendor,
                "1",
                "after-restart",
                false,
            )],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.results, vec![pb::CreateTransferResult::Ok as i32]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_calls_before_exiting() {
    let (db_url, pool) = paymesh_testkit::fresh_database("drain_test").await.unwrap();
    let dir = std::env::temp_dir().join(format!("paymesh-drain-{}", Id128::random()));
    std::fs::create_dir_all(&dir).unwrap();
    let (private, public) = generate_keypair().unwrap();
    std::fs::create_dir_all(dir.join("public")).unwrap();
    let public_path = dir.join("public/operator.pem");
    std::fs::write(&public_path, public).unwrap();
    let token = Minter::from_private_pem("operator", private.as_bytes(), &TokenRules::test())
        .unwrap()
        .mint(&Principal::Operator("test".into()), 600)
        .unwrap();
    let port = paymesh_testkit::free_port();
    let mut server = spawn(&db_url, &public_path, port);
    wait_serving(port).await;
    let client = LedgerServiceClient::with_interceptor(
        channel(&format!("127.0.0.1:{port}")).unwrap(),
        CallContext::with_token(&token).unwrap(),
    );
    let (a, b) = (Id128::random(), Id128::random());
    let acct = |id: Id128| pb::Account {
        id: id.to_bytes().to_vec(),
        currency_code: "VND".into(),
        code: 1,
        flags: None,
        reference: String::new(),
    };
    client
        .clone()
        .create_accounts(pb::CreateAccountsRequest {
            accounts: vec![acct(a), acct(b)],
        })
        .await
        .unwrap();
    // Many large calls at once; the signal goes out as soon as the first is answered, when
    // the others are queued in the ledger or being committed.
    const CALLS: usize = 24;
    const PER_CALL: usize = 2000;
    let (first_tx, mut first_rx) = tokio::sync::mpsc::channel::<()>(CALLS);
    let mut calls = Vec::new();
    for _ in 0..CALLS {
        let mut c = client.clone();
        let first_tx = first_tx.clone();
        calls.push(tokio::spawn(async move {
            let transfers = (0..PER_CALL)
                .map(|_| transfer(Id128::random(), a, b, "1", "drain", false))
                .collect();
            let r = c
                .create_transfers(pb::CreateTransfersRequest { transfers })
                .await;
            let _ = first_tx.send(()).await;
            r
        }));
    }
    first_rx.recv().await.unwrap();
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut answered = 0;
    for call in calls {
        // A call the server had not started when it stopped accepting is refused without
        // being processed (HTTP/2 GOAWAY, or the client's queued stream is cancelled when the
        // connection closes); the count below shows that no such call was processed.
        if let Ok(r) = call.await.unwrap() {
            assert!(
                r.into_inner()
                    .results
                    .iter()
                    .all(|x| *x == pb::CreateTransferResult::Ok as i32)
            );
            answered += 1;
        }
    }
    let status = server.child.wait().unwrap();
    assert!(status.success(), "ledger exited with {status}");
    eprintln!("drain: {answered} of {CALLS} calls answered, the rest refused unprocessed");
    assert!(answered > 1, "no call was in flight when the signal landed");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM ledger.transfers")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        stored as usize,
        answered * PER_CALL,
        "every answered call stored, nothing else"
    );
    let problems = paymesh_ledger::store::audit(&pool).await.unwrap();
    assert!(problems.is_empty(), "{problems:#?}");
    let _ = std::fs::remove_dir_all(&dir);
}
