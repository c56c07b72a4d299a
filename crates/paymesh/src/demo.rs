//! The demo `paymesh dev --demo` runs, through the ledger's own typed client: a market vendor
//! takes a VietQR payment, paymesh books it with its fee as one linked chain, the bank's retry
//! is answered EXISTS, a hold is placed and captured, a payout larger than the balance is
//! refused, and the balances and the vendor's history are printed.

use paymesh_ledger::chart::NewAccount;
use paymesh_ledger::client::{LedgerClient, TransferQuery};
use paymesh_money::Id128;
use paymesh_platform::auth::Minter;
use paymesh_proto::common::v1::Money;
use paymesh_proto::ledger::v1 as pb;
use pb::{AccountCode, TransferCode};

/// The demo's three accounts.
struct Accounts {
    clearing: Id128,
    vendor: Id128,
    fees: Id128,
}

fn transfer(
    id: Id128,
    debit: Id128,
    credit: Id128,
    amount: &str,
    code: TransferCode,
    reference: &str,
) -> pb::Transfer {
    pb::Transfer {
        id: id.to_bytes().to_vec(),
        debit_account_id: debit.to_bytes().to_vec(),
        credit_account_id: credit.to_bytes().to_vec(),
        amount: Some(Money {
            amount: amount.into(),
            currency_code: "VND".into(),
        }),
        code: code as i32,
        reference: reference.into(),
        flags: None,
        pending_id: vec![],
        timeout_seconds: 0,
    }
}

fn flags(f: impl FnOnce(&mut pb::TransferFlags)) -> Option<pb::TransferFlags> {
    let mut flags = pb::TransferFlags::default();
    f(&mut flags);
    Some(flags)
}

/// Posts `transfers` and prints what the ledger answered for each, after `what`.
async fn post(
    ledger: &LedgerClient,
    what: &str,
    transfers: Vec<pb::Transfer>,
) -> anyhow::Result<()> {
    let results: Vec<&str> = ledger
        .create_transfers(transfers)
        .await?
        .into_iter()
        .map(|r| {
            r.as_str_name()
                .trim_start_matches("CREATE_TRANSFER_RESULT_")
        })
        .collect();
    println!("{what:50} {results:?}");
    Ok(())
}

pub async fn run(ledger_addr: &str, minter: &Minter) -> anyhow::Result<()> {
    let ledger = LedgerClient::new(ledger_addr, minter.clone(), "demo")?;
    println!("\n== demo: a VietQR payment at a market stall ==");
    let accounts = open(&ledger).await?;
    pay_with_fee(&ledger, &accounts).await?;
    hold_and_capture(&ledger, &accounts).await?;
    let payout = transfer(
        Id128::random(),
        accounts.vendor,
        accounts.clearing,
        "500000",
        TransferCode::Payout,
        "payout-0001",
    );
    post(
        &ledger,
        "payout of 500,000 VND (more than owed)",
        vec![payout],
    )
    .await?;
    print_balances(&ledger, &accounts).await?;
    print_history(&ledger, accounts.vendor).await?;
    println!("== demo done ==\n");
    Ok(())
}

async fn open(ledger: &LedgerClient) -> anyhow::Result<Accounts> {
    let accounts = Accounts {
        clearing: Id128::random(),
        vendor: Id128::random(),
        fees: Id128::random(),
    };
    ledger
        .open_accounts(&[
            NewAccount::of_chart(
                accounts.clearing,
                AccountCode::BankClearing,
                "bank 970403 clearing".into(),
            ),
            NewAccount::of_chart(
                accounts.vendor,
                AccountCode::MerchantPayable,
                "vendor: Cô Lan, Chợ Đông Ba stall 12".into(),
            ),
            NewAccount::of_chart(
                accounts.fees,
                AccountCode::FeeRevenue,
                "paymesh fee revenue".into(),
            ),
        ])
        .await?;
    println!("opened accounts: bank clearing, vendor payable (may not go negative), fee revenue");
    Ok(accounts)
}

/// The payment and its fee commit together or not at all; the bank's retry changes nothing.
async fn pay_with_fee(ledger: &LedgerClient, a: &Accounts) -> anyhow::Result<()> {
    let mut payment = transfer(
        Id128::random(),
        a.clearing,
        a.vendor,
        "150000",
        TransferCode::QrPayment,
        "pay-0001",
    );
    payment.flags = flags(|f| f.linked = true);
    let fee = transfer(
        Id128::random(),
        a.vendor,
        a.fees,
        "1500",
        TransferCode::Fee,
        "pay-0001",
    );
    let chain = vec![payment, fee];
    post(
        ledger,
        "QR payment 150,000 VND + fee 1,500 VND (linked)",
        chain.clone(),
    )
    .await?;
    post(ledger, "the bank retries the same notification", chain).await
}

/// A two-phase payment: a pending hold with a timeout, then its capture.
async fn hold_and_capture(ledger: &LedgerClient, a: &Accounts) -> anyhow::Result<()> {
    let hold = Id128::random();
    let mut reserve = transfer(
        hold,
        a.clearing,
        a.vendor,
        "80000",
        TransferCode::QrPayment,
        "pay-0002",
    );
    reserve.flags = flags(|f| f.pending = true);
    reserve.timeout_seconds = 900;
    let capture = pb::Transfer {
        id: Id128::random().to_bytes().to_vec(),
        code: TransferCode::QrPayment as i32,
        reference: "pay-0002".into(),
        pending_id: hold.to_bytes().to_vec(),
        flags: flags(|f| f.post_pending = true),
        ..Default::default()
    };
    post(ledger, "hold 80,000 VND (pending, 15 min)", vec![reserve]).await?;
    post(ledger, "capture the hold", vec![capture]).await
}

fn amount(m: &Option<Money>) -> String {
    m.as_ref().map(|m| m.amount.clone()).unwrap_or_default()
}

async fn print_balances(ledger: &LedgerClient, a: &Accounts) -> anyhow::Result<()> {
    let balances = ledger.get_balances(&[a.clearing, a.vendor, a.fees]).await?;
    println!("\n{:40} {:>12} {:>12}", "account", "debits", "credits");
    for b in &balances {
        println!(
            "{:40} {:>12} {:>12}",
            b.reference,
            amount(&b.debits_posted),
            amount(&b.credits_posted)
        );
    }
    Ok(())
}

async fn print_history(ledger: &LedgerClient, vendor: Id128) -> anyhow::Result<()> {
    let page = ledger
        .list_transfers(&TransferQuery::account(vendor))
        .await?;
    println!(
        "\nvendor account history: {} transfers",
        page.transfers.len()
    );
    for t in page.transfers.iter().filter_map(|r| r.transfer.as_ref()) {
        let code = TransferCode::try_from(t.code)
            .map(|c| c.as_str_name())
            .unwrap_or("?");
        println!(
            "  {:30} {:>10} VND  {}",
            code,
            amount(&t.amount),
            t.reference
        );
    }
    Ok(())
}
