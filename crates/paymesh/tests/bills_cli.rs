//! `paymesh bills …` as its users run it, against a mesh of the ledger, merchant and billing
//! services on the test stack's PostgreSQL and Redis (a fresh database, a Redis key prefix of
//! its own), started in this process the way `paymesh dev` starts them, with its JWT keys on
//! disk so the CLI mints its own tokens: `operator:alice`, and `channel:{id}` for lookups and
//! payments. An operator approves a water company, sets its policy, uploads its CSV export
//! twice; a kiosk looks a customer up and pays; the bill is not paid twice; the paper bill's
//! VietQR scans; the day's report sums to what was paid.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::path::Path;

use paymesh_platform::config::{Config, Kind};
use paymesh_platform::kit::{Env, Mesh, ServiceDef};
use paymesh_platform::time::Date;
use serde_json::Value;

const SERVICES: [&dyn ServiceDef; 3] = [
    &paymesh_ledger::SERVICE,
    &paymesh_merchant::SERVICE,
    &paymesh_billing::SERVICE,
];

/// The services, stopped when the test ends (or fails).
struct Running(Mesh);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// The environment of the mesh and of every CLI call: the same database, Redis, keys and
/// addresses, as an operator's shell would have them.
struct Setup {
    env: BTreeMap<String, String>,
    dir: std::path::PathBuf,
}

impl Setup {
    async fn new() -> Setup {
        let (db_url, _pool) = paymesh_testkit::fresh_database("bills_cli_test")
            .await
            .unwrap();
        let dir = std::env::temp_dir().join(format!(
            "paymesh-bcli-{}",
            paymesh_testkit::unique_key("run")
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        // Every address a service listens on: a port of its own, so tests run side by side;
        // the CLI finds the merchant and billing services at their `listen` keys.
        for def in SERVICES {
            for key in def.config().keys {
                if matches!(key.kind, Kind::Addr) {
                    env.insert(
                        format!("PAYMESH_{}_{}", def.name(), key.name).to_ascii_uppercase(),
                        "127.0.0.1:0".into(),
                    );
                }
            }
        }
        for name in ["merchant", "billing"] {
            env.insert(
                format!("PAYMESH_{}_LISTEN", name.to_ascii_uppercase()),
                format!("127.0.0.1:{}", paymesh_testkit::free_port()),
            );
        }
        let key_file = |f: &str| dir.join(f).display().to_string();
        for (k, v) in [
            ("PAYMESH_DATABASE_URL", db_url),
            ("PAYMESH_REDIS_URL", paymesh_testkit::redis_url()),
            (
                "PAYMESH_REDIS_KEY_PREFIX",
                format!("{}:", paymesh_testkit::unique_key("test:bills-cli")),
            ),
            (
                "PAYMESH_AUTH_PRIVATE_KEY_FILE",
                key_file("private/mesh.pem"),
            ),
            (
                "PAYMESH_AUTH_OPERATOR_PRIVATE_KEY_FILE",
                key_file("private/operator.pem"),
            ),
            ("PAYMESH_AUTH_PUBLIC_KEYS_DIR", key_file("public")),
            ("PAYMESH_OPERATOR", "alice".into()),
            ("PAYMESH_BILLING_FEE_PLAN", "flat:1100".into()),
            ("PAYMESH_TELEMETRY_LOG_FORMAT", "text".into()),
            ("PAYMESH_TELEMETRY_METRICS_LISTEN", "127.0.0.1:0".into()),
        ] {
            env.insert(k.into(), v);
        }
        Setup { env, dir }
    }

    /// The mesh, on the keys `paymesh dev` would write.
    async fn start(&self) -> Running {
        let sections: Vec<_> = SERVICES.iter().map(|d| d.config()).collect();
        let config = Config::load_from(None, &self.env, &sections).unwrap();
        paymesh_platform::auth::ensure_keys(&config.auth).unwrap();
        let mut mesh = Mesh::new(Env::from_config(config).await.unwrap());
        for def in SERVICES {
            mesh.spawn(def).await.unwrap();
        }
        Running(mesh)
    }

    /// Runs `paymesh ARGS` with the shell's environment.
    async fn run(&self, args: &[&str]) -> std::process::Output {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_paymesh"))
            .args(args)
            .envs(self.env.iter())
            .env_remove("PAYMESH_TOKEN")
            .output()
            .await
            .unwrap()
    }

    /// `paymesh ARGS`, which must succeed and print one JSON object.
    async fn ok(&self, args: &[&str]) -> Value {
        let out = self.run(args).await;
        assert!(
            out.status.success(),
            "paymesh {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let value: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("paymesh {args:?} printed no JSON ({e}): {out:?}"));
        assert!(value.is_object(), "paymesh {args:?}: {value}");
        value
    }

    /// `paymesh ARGS`, which must be refused: exit 1, nothing on stdout, one line on stderr.
    async fn refused(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "paymesh {args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "paymesh {args:?} printed on stdout");
        assert_eq!(stderr.lines().count(), 1, "paymesh {args:?}: {stderr}");
        stderr
    }
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a string in {v}"))
}

/// A water company onboarded and approved by an operator with `paymesh merchant`, as
/// `paymesh_testkit::fixtures::active_biller` does through the RPCs.
async fn active_biller(s: &Setup) -> String {
    let a = paymesh_testkit::fixtures::biller();
    let onboarded = s
        .ok(&[
            "merchant",
            "onboard",
            "--kind",
            "biller",
            "--category",
            "water",
            "--business-name",
            &a.business_name,
            "--tax-code",
            &a.tax_code,
            "--phone",
            &a.phone,
            "--address",
            &a.address,
            "--mcc",
            &a.mcc,
            "--bank-bin",
            &a.settlement_bank_bin,
            "--account",
            &a.settlement_account_number,
        ])
        .await;
    let id = text(&onboarded, "id").to_string();
    let approved = s
        .ok(&[
            "merchant",
            "approve",
            &id,
            "--reason",
            "KYC documents checked",
            "--etag",
            text(&onboarded, "etag"),
        ])
        .await;
    assert_eq!(approved["status"], "ACTIVE");
    assert_eq!(approved["kind"], "biller");
    id
}

/// The water company's export: two bills, and between them a row whose customer code breaks
/// the biller's pattern (line 3).
fn export(path: &Path, today: Date) {
    let period = &today.to_string()[..7];
    let issued = today.plus_days(-5);
    let due = today.plus_days(10);
    let csv = format!(
        "customer_code,bill_number,period,amount_due,issue_date,due_date,customer_name,description\n\
         10000001,HD-0001,{period},250000,{issued},{due},Nguyễn Văn An,\"Tiền nước, kỳ {period}\"\n\
         KH-ABC,HD-0002,{period},90000,{issued},{due},Trần Thị Bình,Tiền nước\n\
         10000002,HD-0003,{period},180000,{issued},{due},Lê Văn Cường,Tiền nước\n"
    );
    std::fs::write(path, csv).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_loads_bills_a_kiosk_pays_them_and_the_report_adds_up() {
    let s = Setup::new().await;
    let _mesh = s.start().await;
    let today = Date::today_in_vietnam();
    let biller = active_biller(&s).await;
    let b = ["--biller", biller.as_str()];

    let policy = s
        .ok(&[
            &["bills", "policy"],
            &b[..],
            &["--pattern", "[0-9]{8}", "--rule", "EXACT"],
        ]
        .concat())
        .await;
    assert_eq!(policy["biller_id"], biller.as_str());
    assert_eq!(policy["customer_code_pattern"], "[0-9]{8}");
    assert_eq!(policy["amount_rule"], "EXACT");
    assert_eq!(policy["category"], "WATER");
    assert_eq!(policy["late_fee"], Value::Null);

    // The export, loaded: two bills and the bad row named by its line.
    let csv = s.dir.join("bills.csv");
    export(&csv, today);
    let csv = csv.to_str().unwrap();
    let upload = [&["bills", "upload", csv][..], &b[..]].concat();
    let loaded = s.ok(&upload).await;
    assert_eq!(loaded["loaded"], 2, "{loaded}");
    assert_eq!(loaded["unchanged"], 0);
    assert_eq!(loaded["adjusted"], 0);
    assert_eq!(loaded["rejected_count"], 1);
    let rejected = loaded["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["line"], 3);
    assert_eq!(rejected[0]["bill_number"], "HD-0002");
    assert!(
        text(&rejected[0], "reason").contains("customer_code"),
        "{loaded}"
    );
    // The same file again (a new key: another load) changes nothing.
    let again = s.ok(&upload).await;
    assert_eq!(again["loaded"], 0, "{again}");
    assert_eq!(again["unchanged"], 2);
    assert_eq!(again["rejected_count"], 1);
    assert_eq!(again["rejected"][0]["line"], 3);
    let open = s
        .ok(&[&["bills", "list"], &b[..], &["--status", "open"]].concat())
        .await;
    let numbers: Vec<&str> = open["bills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| text(b, "bill_number"))
        .collect();
    assert_eq!(numbers, ["HD-0001", "HD-0003"]);
    assert_eq!(open["bills"][0]["customer_name"], "Nguyễn Văn An");
    assert_eq!(open["bills"][0]["amount_due"], "250000");

    // A kiosk looks the customer up: the amount due today, the name masked, a reference.
    let customer = ["--customer", "10000001"];
    let found = s
        .ok(&[
            &["bills", "lookup"],
            &b[..],
            &customer[..],
            &["--channel", "kiosk-7"],
        ]
        .concat())
        .await;
    assert_eq!(found["customer_code"], "10000001");
    assert_eq!(found["category"], "WATER");
    let bills = found["bills"].as_array().unwrap();
    assert_eq!(bills.len(), 1, "{found}");
    assert_eq!(bills[0]["bill_number"], "HD-0001");
    assert_eq!(bills[0]["status"], "OPEN");
    assert_eq!(bills[0]["amount_due_now"], "250000");
    assert_eq!(bills[0]["amount_rule"], "EXACT");
    assert!(!text(&bills[0], "customer_name_masked").contains("Văn"));
    assert!(!text(&found, "lookup_reference").is_empty());
    let expiry: prost_types::Timestamp = text(&found, "lookup_expire_time").parse().unwrap();
    assert!(expiry.seconds > 0);
    // An operator may look up too.
    let by_operator = s
        .ok(&[&["bills", "lookup"], &b[..], &customer[..]].concat())
        .await;
    assert_eq!(by_operator["bills"][0]["bill_number"], "HD-0001");

    // The kiosk pays the bill; the same bill again is refused with its reason.
    let paid = s
        .ok(&[
            &["bills", "pay"],
            &b[..],
            &customer[..],
            &["--bill", "HD-0001", "--channel", "kiosk-7"],
        ]
        .concat())
        .await;
    assert_eq!(paid["total"], "250000", "{paid}");
    let payments = paid["payments"].as_array().unwrap();
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0]["bill_number"], "HD-0001");
    assert_eq!(payments[0]["amount"], "250000");
    assert_eq!(payments[0]["fee"], "1100");
    assert_eq!(payments[0]["payer"], "channel:kiosk-7");
    assert_eq!(payments[0]["bill_status"], "PAID");
    assert!(!text(&payments[0], "channel_reference").is_empty());
    let twice = s
        .refused(
            &[
                &["bills", "pay"],
                &b[..],
                &customer[..],
                &["--bill", "HD-0001", "--channel", "kiosk-7"],
                &[
                    "--reference",
                    "KIOSK7-2",
                    "--idempotency-key",
                    "pay-twice-1",
                ],
            ]
            .concat(),
        )
        .await;
    assert!(
        twice.contains("BILL_PAID") || twice.contains("NO_OUTSTANDING_BILLS"),
        "{twice}"
    );
    // A paid bill is not cancelled.
    let cancel = s
        .refused(
            &[
                &["bills", "cancel"],
                &b[..],
                &["--bill", "HD-0001", "--reason", "posted twice"],
                &["--idempotency-key", "cancel-paid-1"],
            ]
            .concat(),
        )
        .await;
    assert!(cancel.contains("BILL_HAS_PAYMENTS"), "{cancel}");

    // The other bill's paper VietQR: the amount (EXACT), its number, the customer, and its
    // reference as the purpose; the PNG scans to the printed payload.
    let png = s.dir.join("HD-0003.png");
    let qr = s
        .ok(&[
            &["bills", "qr"],
            &b[..],
            &["--bill", "HD-0003", "--png", png.to_str().unwrap()],
        ]
        .concat())
        .await;
    let payload = text(&qr, "qr_payload");
    assert_eq!(qr["png"], png.to_str().unwrap());
    assert_eq!(
        paymesh_testkit::fixtures::zbarimg(&std::fs::read(&png).unwrap()),
        payload
    );
    let decoded = vietqr::decode(payload).unwrap();
    assert_eq!(decoded.amount.as_deref(), Some("180000"));
    assert_eq!(decoded.additional.bill_number.as_deref(), Some("HD-0003"));
    assert_eq!(
        decoded.additional.customer_label.as_deref(),
        Some("10000002")
    );
    let bill = s
        .ok(&[&["bills", "show"], &b[..], &["--bill", "HD-0003"]].concat())
        .await;
    assert_eq!(
        decoded.additional.purpose.as_deref(),
        Some(text(&bill, "reference"))
    );

    // A counter pays everything the other customer owes; then there is nothing left.
    let other = ["--customer", "10000002", "--channel", "counter-1"];
    let paid = s
        .ok(&[&["bills", "pay"], &b[..], &other[..]].concat())
        .await;
    assert_eq!(paid["total"], "180000", "{paid}");
    assert_eq!(paid["payments"][0]["bill_number"], "HD-0003");
    let nothing = s
        .refused(
            &[
                &["bills", "pay"],
                &b[..],
                &other[..],
                &["--idempotency-key", "pay-nothing-1"],
            ]
            .concat(),
        )
        .await;
    assert!(nothing.contains("NO_OUTSTANDING_BILLS"), "{nothing}");
    // Only channels pay: an operator's token (minted with `paymesh token mint`) looks up but
    // is refused the payment.
    let minted = s.run(&["token", "mint", "operator:alice"]).await;
    assert!(minted.status.success());
    let operator_token = String::from_utf8(minted.stdout).unwrap();
    let denied = s
        .refused(
            &[
                &["bills", "pay"],
                &b[..],
                &["--customer", "10000001", "--channel", "kiosk-7"],
                &[
                    "--token",
                    operator_token.trim(),
                    "--idempotency-key",
                    "by-operator-1",
                ],
            ]
            .concat(),
        )
        .await;
    assert!(denied.contains("PermissionDenied"), "{denied}");

    // The day's report: what the two channels paid, less the fees.
    let date = today.to_string();
    let report = s
        .ok(&[&["bills", "report"], &b[..], &["--date", &date]].concat())
        .await;
    assert_eq!(report["date"], date.as_str());
    assert_eq!(report["count"], 2, "{report}");
    assert_eq!(report["amount"], "430000");
    assert_eq!(report["fees"], "2200");
    assert_eq!(report["net"], "427800");
    let rows = report["rows"].as_array().unwrap();
    let mut payers: Vec<&str> = rows.iter().map(|r| text(r, "payer")).collect();
    payers.sort_unstable();
    assert_eq!(payers, ["channel:counter-1", "channel:kiosk-7"]);
    let sum: u64 = rows
        .iter()
        .map(|r| text(r, "amount").parse::<u64>().unwrap())
        .sum();
    assert_eq!(sum, 430_000);
    let out = s
        .run(&[&["bills", "report"], &b[..], &["--date", &date, "--csv"]].concat())
        .await;
    assert!(out.status.success());
    let csv = String::from_utf8(out.stdout).unwrap();
    assert!(
        csv.starts_with("category,payer,count,amount,fees,net\n"),
        "{csv}"
    );
    assert_eq!(csv.lines().last(), Some("TOTAL,,2,430000,2200,427800"));
    let paid_list = s
        .ok(&[&["bills", "list"], &b[..], &["--status", "paid"]].concat())
        .await;
    assert_eq!(paid_list["bills"].as_array().unwrap().len(), 2);

    let _ = std::fs::remove_dir_all(&s.dir);
}
