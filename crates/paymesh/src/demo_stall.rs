//! The stall page in the demo: a one-time sign-in link for the demo vendor (what `paymesh
//! merchant link` prints), and, while `paymesh dev --demo` keeps serving, a demo buyer who
//! pays her stall's static QR now and then, so the page opened from the link shows and speaks
//! payments as they land.

use std::time::Duration;

use anyhow::Context;
use paymesh_money::Id128;
use paymesh_proto::merchant::v1 as mpb;
use paymesh_proto::payment::v1 as pb;
use paymesh_proto::stall::v1 as spb;
use paymesh_proto::stall::v1::stall_service_client::StallServiceClient;

use crate::demo::{BANK_BIN, Mesh, now, vnd};

/// What the demo buyer pays, in turn: amounts whose Vietnamese words show the tricky readings
/// (linh, mốt, lăm, tư, mười, tỷ…).
const AMOUNTS: [i64; 8] = [
    35_000, 105_000, 21_000, 15_000_000, 124_000, 1_500, 250_000, 51_000,
];
/// How often, and how many times, the demo buyer pays.
const EVERY: Duration = Duration::from_secs(15);
const TIMES: usize = 20;

/// Prints the demo vendor's sign-in link; answers it.
pub async fn link(mesh: &Mesh<'_>, vendor: &mpb::Merchant) -> anyhow::Result<String> {
    let mut stall =
        StallServiceClient::new(mesh.channel(&mesh.stall, &mesh.people, "operator:demo")?);
    let link = stall
        .create_sign_in_link(spb::CreateSignInLinkRequest {
            merchant_id: vendor.id.clone(),
        })
        .await?
        .into_inner();
    let expires = link.expire_time.unwrap_or_default();
    println!(
        "stall page for the demo vendor (open it on a phone-sized browser; one use, until {} Asia/Ho_Chi_Minh):\n  {}",
        crate::demo::vietnam_clock(&expires),
        link.url
    );
    Ok(link.url)
}

/// Starts the demo buyer: every [`EVERY`], [`TIMES`] times, a bank credit to the vendor's
/// static QR (a static-QR payment), then it stops by itself.
pub fn start_buyer(mesh: &Mesh<'_>, vendor: &mpb::Merchant) -> anyhow::Result<()> {
    let mut bank = mesh.payment(&format!("bank:{BANK_BIN}"))?;
    let account = vendor.virtual_account_number.clone();
    anyhow::ensure!(
        !account.is_empty(),
        "the demo vendor has no virtual account"
    );
    println!(
        "a demo buyer pays the stall's static QR every {} s, {TIMES} times: watch the stall page",
        EVERY.as_secs()
    );
    tokio::spawn(async move {
        for amount in AMOUNTS.iter().cycle().take(TIMES) {
            tokio::time::sleep(EVERY).await;
            let txn = format!("FT{}", &Id128::random().to_string()[..12]).to_uppercase();
            let notice = pb::NotifyCreditRequest {
                bank_bin: BANK_BIN.into(),
                bank_transaction_id: txn,
                account_number: account.clone(),
                amount: Some(vnd(*amount)),
                description: "NGUYEN THI HOA chuyen tien".into(),
                value_time: Some(now()),
            };
            if let Err(status) = bank.notify_credit(notice).await.context("demo buyer") {
                eprintln!("demo buyer: {status:#}");
            }
        }
    });
    Ok(())
}
