//! The demo `paymesh dev --demo` runs: a market vendor takes a VietQR payment, paymesh books
//! it with its fee as one linked chain, a hold is placed and captured, a payout larger than
//! the balance is refused, a retry is answered EXISTS, and the balances are printed.

use paymesh_money::Id128;
use paymesh_platform::client::{CallContext, channel};
use paymesh_proto::common::v1::Money;
use paymesh_proto::ledger::v1 as pb;
use paymesh_proto::ledger::v1::ledger_service_client::LedgerServiceClient;

fn vnd(amount: &str) -> Option<Money> {
    Some(Money {
        amount: amount.into(),
        currency_code: "VND".into(),
    })
}

fn transfer(
    id: Id128,
    debit: Id128,
    credit: Id128,
    amount: &str,
    code: pb::TransferCode,
    reference: &str,
) -> pb::Transfer {
    pb::Transfer {
        id: id.to_bytes().to_vec(),
        debit_account_id: debit.to_bytes().to_vec(),
        credit_account_id: credit.to_bytes().to_vec(),
        amount: vnd(amount),
        code: code as i32,
        reference: reference.into(),
        flags: None,
        pending_id: vec![],
        timeout_seconds: 0,
    }
}

fn result_name(code: i32) -> String {
    pb::CreateTransferResult::try_from(code)
        .map(|r| {
            r.as_str_name()
                .trim_start_matches("CREATE_TRANSFER_RESULT_")
                .to_string()
        })
        .unwrap_or_else(|_| format!("UNKNOWN({code})"))
}

pub async fn run(ledger_addr: &str, token: &str) -> anyhow::Result<()> {
    let mut ledger = LedgerServiceClient::with_interceptor(
        channel(ledger_addr)?,
        CallContext::with_token(token)?,
    );
    let clearing = Id128::random();
    let vendor = Id128::random();
    let fees = Id128::random();
    let account = |id: Id128, code: u32, reference: &str, limited: bool| pb::Account {
        id: id.to_bytes().to_vec(),
        currency_code: "VND".into(),
        code,
        flags: Some(pb::AccountFlags {
            debits_must_not_exceed_credits: limited,
            credits_must_not_exceed_debits: false,
        }),
        reference: reference.into(),
    };
    println!("\n== demo: a VietQR payment at a market stall ==");
    ledger
        .create_accounts(pb::CreateAccountsRequest {
            accounts: vec![
                account(clearing, 1, "bank 970403 clearing", false),
                account(vendor, 2, "vendor: Cô Lan, Chợ Đông Ba stall 12", true),
                account(fees, 3, "paymesh fee revenue", false),
            ],
        })
        .await?;
    println!("opened accounts: bank clearing, vendor payable (may not go negative), fee revenue");

    let pay = Id128::random();
    let fee = Id128::random();
    let mut chain = vec![
        transfer(
            pay,
            clearing,
            vendor,
            "150000",
            pb::TransferCode::QrPayment,
            "pay-0001",
        ),
        transfer(fee, vendor, fees, "1500", pb::TransferCode::Fee, "pay-0001"),
    ];
    chain[0].flags = Some(pb::TransferFlags {
        linked: true,
        ..Default::default()
    });
    let r = ledger
        .create_transfers(pb::CreateTransfersRequest {
            transfers: chain.clone(),
        })
        .await?
        .into_inner();
    println!(
        "QR payment 150,000 VND + fee 1,500 VND (linked): {:?}",
        r.results
            .iter()
            .map(|c| result_name(*c))
            .collect::<Vec<_>>()
    );
    let r = ledger
        .create_transfers(pb::CreateTransfersRequest { transfers: chain })
        .await?
        .into_inner();
    println!(
        "the bank retries the same notification:          {:?}",
        r.results
            .iter()
            .map(|c| result_name(*c))
            .collect::<Vec<_>>()
    );

    let hold = Id128::random();
    let mut reserve = transfer(
        hold,
        clearing,
        vendor,
        "80000",
        pb::TransferCode::QrPayment,
        "pay-0002",
    );
    reserve.flags = Some(pb::TransferFlags {
        pending: true,
        ..Default::default()
    });
    reserve.timeout_seconds = 900;
    let mut capture = transfer(
        Id128::random(),
        clearing,
        vendor,
        "80000",
        pb::TransferCode::QrPayment,
        "pay-0002",
    );
    capture.debit_account_id.clear();
    capture.credit_account_id.clear();
    capture.amount = None;
    capture.pending_id = hold.to_bytes().to_vec();
    capture.flags = Some(pb::TransferFlags {
        post_pending: true,
        ..Default::default()
    });
    for (what, t) in [
        ("hold 80,000 VND (pending, 15 min)", reserve),
        ("capture the hold", capture),
    ] {
        let r = ledger
            .create_transfers(pb::CreateTransfersRequest { transfers: vec![t] })
            .await?
            .into_inner();
        println!(
            "{what:50} {:?}",
            r.results
                .iter()
                .map(|c| result_name(*c))
                .collect::<Vec<_>>()
        );
    }
    let payout = transfer(
        Id128::random(),
        vendor,
        clearing,
        "500000",
        pb::TransferCode::Payout,
        "payout-0001",
    );
    let r = ledger
        .create_transfers(pb::CreateTransfersRequest {
            transfers: vec![payout],
        })
        .await?
        .into_inner();
    println!(
        "{:50} {:?}",
        "payout of 500,000 VND (more than owed)",
        r.results
            .iter()
            .map(|c| result_name(*c))
            .collect::<Vec<_>>()
    );

    let balances = ledger
        .get_balances(pb::GetBalancesRequest {
            account_ids: vec![
                clearing.to_bytes().to_vec(),
                vendor.to_bytes().to_vec(),
                fees.to_bytes().to_vec(),
            ],
        })
        .await?
        .into_inner();
    println!("\n{:40} {:>12} {:>12}", "account", "debits", "credits");
    let amount = |m: &Option<Money>| m.as_ref().map(|m| m.amount.clone()).unwrap_or_default();
    for a in &balances.accounts {
        println!(
            "{:40} {:>12} {:>12}",
            a.reference,
            amount(&a.debits_posted),
            amount(&a.credits_posted)
        );
    }
    let listing = ledger
        .list_transfers(pb::ListTransfersRequest {
            account_id: vendor.to_bytes().to_vec(),
            page_size: 10,
            ..Default::default()
        })
        .await?
        .into_inner();
    println!(
        "\nvendor account history: {} transfers",
        listing.transfers.len()
    );
    for t in listing.transfers.iter().filter_map(|r| r.transfer.as_ref()) {
        let code = pb::TransferCode::try_from(t.code)
            .map(|c| c.as_str_name())
            .unwrap_or("?");
        println!(
            "  {:30} {:>10} VND  {}",
            code,
            amount(&t.amount),
            t.reference
        );
    }
    println!("== demo done ==\n");
    Ok(())
}
