//! The bill-payment part of `paymesh dev --demo`: an operator approves a water company and
//! sets its policy; the company uploads its bills as the CSV its own system exports (one bad
//! row reported with its line); a bank app looks a customer up and pays; a second payment of
//! the same bill from another app is refused; a paper bill's VietQR is paid by bank transfer
//! and settles the bill through the payment service; the day's collection report, and the
//! company's payable in the ledger.

use anyhow::Context;
use paymesh_ledger::chart::MerchantAccount;
use paymesh_money::Id128;
use paymesh_platform::time::Date;
use paymesh_proto::billing::v1 as pb;
use paymesh_proto::billing::v1::billing_service_client::BillingServiceClient;
use paymesh_proto::ledger::v1::ledger_service_client::LedgerServiceClient;
use paymesh_proto::merchant::v1 as mpb;
use paymesh_proto::merchant::v1::merchant_service_client::MerchantServiceClient;
use paymesh_proto::payment::v1 as ppb;

use crate::demo::{Authed, BANK_BIN, Mesh, balance_line, fresh_tax_code, keyed, now, vnd};

fn billing(mesh: &Mesh<'_>, who: &str) -> anyhow::Result<BillingServiceClient<Authed>> {
    Ok(BillingServiceClient::new(mesh.channel(
        &mesh.billing,
        &mesh.people,
        who,
    )?))
}

fn water_company() -> mpb::MerchantApplication {
    mpb::MerchantApplication {
        business_name: "Công ty Cổ phần Cấp nước Bến Thành".into(),
        trading_name: String::new(),
        tax_code: fresh_tax_code(),
        owner_citizen_id: String::new(),
        phone: "0903 111 222".into(),
        address: "194 Pasteur, P. Võ Thị Sáu, Q.3, TP. Hồ Chí Minh".into(),
        market_name: String::new(),
        stall_number: String::new(),
        mcc: "4900".into(),
        biller_category: mpb::BillerCategory::Water as i32,
        settlement_bank_bin: BANK_BIN.into(),
        settlement_account_number: "0071000777888".into(),
    }
}

/// Customer codes ("số danh bộ") unique to this run: a dev database keeps earlier demos.
fn customer(run: u32, n: u32) -> String {
    format!("{:04}{n:04}", run % 10_000)
}

fn status_name(s: i32) -> String {
    pb::BillStatus::try_from(s)
        .unwrap_or(pb::BillStatus::Unspecified)
        .as_str_name()
        .trim_start_matches("BILL_STATUS_")
        .to_owned()
}

pub async fn run(mesh: &Mesh<'_>) -> anyhow::Result<()> {
    println!("\n== demo: water bills paid from any bank app ==");
    let mut merchants =
        MerchantServiceClient::new(mesh.channel(&mesh.merchant, &mesh.people, "operator:demo")?);
    let applied = merchants
        .onboard_merchant(keyed(mpb::OnboardMerchantRequest {
            kind: mpb::MerchantKind::Biller as i32,
            application: Some(water_company()),
            ..Default::default()
        })?)
        .await?
        .into_inner();
    let biller = merchants
        .approve_merchant(keyed(mpb::ApproveMerchantRequest {
            merchant_id: applied.id.clone(),
            reason: "business registration and collection contract checked".into(),
            etag: applied.etag,
        })?)
        .await?
        .into_inner();
    let mut ops = billing(mesh, "operator:demo")?;
    ops.set_biller_policy(keyed(pb::SetBillerPolicyRequest {
        policy: Some(pb::BillerPolicy {
            biller_id: biller.id.clone(),
            customer_code_pattern: "[0-9]{8}".into(),
            amount_rule: pb::AmountRule::Exact as i32,
            expires_after_days: 60,
            ..Default::default()
        }),
    })?)
    .await?;
    println!(
        "operator approved biller {} (Cấp nước Bến Thành, WATER): customer codes of 8 digits, EXACT amounts",
        biller.id
    );

    // The company's system exports this month's bills; one row has a formatted amount.
    let run = u32::from_be_bytes(Id128::random().to_bytes()[..4].try_into()?);
    let (first, second, third) = (customer(run, 1), customer(run, 2), customer(run, 3));
    let today = Date::today_in_vietnam();
    let (issue, due) = (today.plus_days(-3), today.plus_days(12));
    let period = &due.to_string()[..7];
    let csv = format!(
        "\u{feff}customer_code,bill_number,period,amount_due,issue_date,due_date,customer_name,description\r\n\
         {first},N{first}-{period},{period},186000,{issue},{due},\"Nguyễn Văn An\",\"Tiền nước, 18 m³\"\r\n\
         {second},N{second}-{period},{period},94500,{issue},{due},Trần Thị Bích,Tiền nước 9 m³\r\n\
         {third},N{third}-{period},{period},\"1.250.000\",{issue},{due},Lê Văn Cường,Tiền nước\r\n"
    );
    let as_biller = format!("biller:{}", biller.id);
    let upload = billing(mesh, &as_biller)?
        .upload_bills_csv(keyed(tokio_stream::iter(vec![
            pb::UploadBillsCsvRequest {
                biller_id: biller.id.clone(),
                chunk: csv.into_bytes(),
            },
        ]))?)
        .await?
        .into_inner();
    println!(
        "water company uploads its CSV: loaded {}, unchanged {}, rejected {}",
        upload.loaded, upload.unchanged, upload.rejected_count
    );
    for r in &upload.rejected {
        println!("  line {} ({}): {}", r.line, r.bill_number, r.reason);
    }

    // A bank app looks the first customer up and pays.
    let mut app = billing(mesh, "channel:vcb-app")?;
    let found = app
        .lookup_bills(pb::LookupBillsRequest {
            biller_id: biller.id.clone(),
            customer_code: first.clone(),
        })
        .await?
        .into_inner();
    let bill = found.bills.first().context("the lookup found no bill")?;
    println!(
        "bank app looks up {first}: {} {} due {} đồng by {} ({})",
        bill.customer_name_masked,
        bill.bill_number,
        bill.amount_due_now
            .as_ref()
            .map(|m| m.amount.clone())
            .unwrap_or_default(),
        bill.due_date,
        found.biller_name
    );
    let paid = app
        .pay_bill(keyed(pb::PayBillRequest {
            lookup_reference: found.lookup_reference.clone(),
            bills: vec![],
            channel_reference: "VCB-20261201-000173".into(),
        })?)
        .await?
        .into_inner();
    let payment = paid.payments.first().context("no payment in the answer")?;
    println!(
        "bank app pays {} đồng: bill {}",
        paid.total
            .as_ref()
            .map(|m| m.amount.clone())
            .unwrap_or_default(),
        status_name(payment.bill_status)
    );

    // Another app tries to pay the same bill.
    let mut other = billing(mesh, "channel:momo")?;
    let again = other
        .lookup_bills(pb::LookupBillsRequest {
            biller_id: biller.id.clone(),
            customer_code: first.clone(),
        })
        .await?
        .into_inner();
    let refused = other
        .pay_bill(keyed(pb::PayBillRequest {
            lookup_reference: again.lookup_reference,
            bills: vec![pb::BillAmount {
                bill_number: bill.bill_number.clone(),
                amount: None,
            }],
            channel_reference: "MOMO-88231".into(),
        })?)
        .await;
    match refused {
        Err(status) => println!(
            "second app pays the same bill: refused ({})",
            status.message()
        ),
        Ok(_) => anyhow::bail!("a bill was paid twice"),
    }

    // The second customer pays the paper bill's QR from any bank app.
    let second_bill = format!("N{second}-{period}");
    let qr = billing(mesh, &as_biller)?
        .get_bill_qr(pb::GetBillQrRequest {
            biller_id: biller.id.clone(),
            bill_number: second_bill.clone(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let decoded = vietqr::decode(&qr.qr_payload).map_err(|e| anyhow::anyhow!("{e}"))?;
    let purpose = decoded.additional.purpose.clone().unwrap_or_default();
    println!(
        "paper bill {second_bill}: VietQR with amount {}, bill number (62/01), customer {} (62/06), purpose {purpose} (62/08)",
        decoded.amount.clone().unwrap_or_default(),
        decoded
            .additional
            .customer_label
            .clone()
            .unwrap_or_default()
    );
    let description = format!("IBFT {purpose} TRAN THI BICH chuyen tien nuoc");
    let credit = mesh
        .payment(&format!("bank:{BANK_BIN}"))?
        .notify_credit(ppb::NotifyCreditRequest {
            bank_bin: BANK_BIN.into(),
            bank_transaction_id: format!("FT{}", &Id128::random().to_string()[..12]).to_uppercase(),
            account_number: biller.virtual_account_number.clone(),
            amount: Some(vnd(94_500)),
            description: description.clone(),
            value_time: Some(now()),
        })
        .await?
        .into_inner()
        .credit
        .context("no credit in the answer")?;
    let after = billing(mesh, &as_biller)?
        .get_bill(pb::GetBillRequest {
            biller_id: biller.id.clone(),
            bill_number: second_bill.clone(),
        })
        .await?
        .into_inner()
        .bill
        .context("no bill in the answer")?;
    println!(
        "bank notifies {description:?}: outcome {}, bill {}",
        credit
            .outcome()
            .as_str_name()
            .trim_start_matches("CREDIT_OUTCOME_"),
        status_name(after.status)
    );

    let report = billing(mesh, &as_biller)?
        .get_collection_report(pb::GetCollectionReportRequest {
            biller_id: biller.id.clone(),
            date: today.to_string(),
        })
        .await?
        .into_inner();
    println!("collection report {} (Asia/Ho_Chi_Minh):", report.date);
    for line in report.csv.lines() {
        println!("  {line}");
    }
    let mut ledger = LedgerServiceClient::new(mesh.channel(
        &mesh.ledger,
        mesh.services,
        "service:settlement",
    )?);
    let payable = MerchantAccount::BillerPayable.id(uuid::Uuid::parse_str(&biller.id)?);
    println!(
        "  {}",
        balance_line(&mut ledger, "biller payable", payable).await?
    );
    println!("== bills demo done ==");
    Ok(())
}
