//! `paymesh qr decode|encode`: the VietQR codec from the command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::{Map, Value, json};
use vietqr::{MerchantAccount, PointOfInitiation, VietQr, VietQrBuilder};

/// Default pixels per QR module for `--png` (a phone reads it comfortably when printed).
const PNG_MODULE_PX: u32 = 8;

#[derive(clap::Subcommand)]
pub enum QrCommand {
    /// Decode a VietQR string and print its fields as JSON (exit 1 with the reason on a reject).
    Decode { payload: String },
    /// Build a VietQR string (static without --amount, dynamic with it).
    Encode {
        /// The bank's 6-digit BIN (NAPAS), e.g. 970436.
        #[arg(long)]
        bin: String,
        /// The account number at that bank.
        #[arg(long)]
        account: String,
        /// Amount in đồng (VND has no decimals).
        #[arg(long)]
        amount: Option<String>,
        /// Transfer message shown to the payer (62/08).
        #[arg(long)]
        purpose: Option<String>,
        /// Bill number (62/01).
        #[arg(long)]
        bill: Option<String>,
        /// Merchant name (59) and city (60).
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        city: Option<String>,
        /// Also write the QR as a PNG here.
        #[arg(long)]
        png: Option<PathBuf>,
        /// Also write the QR as an SVG here.
        #[arg(long)]
        svg: Option<PathBuf>,
    },
}

fn pairs(v: &[(u8, String)]) -> Value {
    Value::Object(
        v.iter()
            .map(|(id, s)| (format!("{id:02}"), Value::String(s.clone())))
            .collect(),
    )
}

/// The decoded fields as JSON (absent fields are left out).
pub fn to_json(qr: &VietQr) -> Value {
    let mut o = Map::new();
    o.insert(
        "point_of_initiation".into(),
        json!(match qr.point_of_initiation {
            PointOfInitiation::Static => "static",
            PointOfInitiation::Dynamic => "dynamic",
        }),
    );
    if let Some(s) = qr.scheme() {
        o.insert("scheme".into(), json!(s.name()));
    }
    if let Some(a) = qr.vietqr_account() {
        o.insert("bank_bin".into(), json!(a.bank_bin));
        o.insert("account".into(), json!(a.account));
        o.insert("service_code".into(), json!(a.service_code.code()));
    }
    let accounts: Vec<Value> = qr
        .merchant_accounts
        .iter()
        .map(|m| match m {
            MerchantAccount::VietQr(a) => json!({"id": a.id, "scheme": m.scheme().name(), "bank_bin": a.bank_bin, "account": a.account}),
            MerchantAccount::Template(t) => json!({"id": t.id, "scheme": m.scheme().name(), "fields": pairs(&t.fields)}),
            MerchantAccount::Network { id, value } => json!({"id": id, "scheme": m.scheme().name(), "value": value}),
        })
        .collect();
    o.insert("merchant_accounts".into(), Value::Array(accounts));
    for (k, v) in [
        ("mcc", &qr.mcc),
        ("amount", &qr.amount),
        ("merchant_name", &qr.merchant_name),
        ("merchant_city", &qr.merchant_city),
        ("bill_number", &qr.additional.bill_number),
        ("store_label", &qr.additional.store_label),
        ("reference_label", &qr.additional.reference_label),
        ("customer_label", &qr.additional.customer_label),
        ("terminal_label", &qr.additional.terminal_label),
        ("purpose", &qr.additional.purpose),
    ] {
        if let Some(v) = v {
            o.insert(k.into(), json!(v));
        }
    }
    o.insert("currency".into(), json!(qr.currency));
    o.insert("country".into(), json!(qr.country));
    if !qr.additional.others.is_empty() {
        o.insert("additional_others".into(), pairs(&qr.additional.others));
    }
    if !qr.unknown.is_empty() {
        o.insert("unknown".into(), pairs(&qr.unknown));
    }
    Value::Object(o)
}

pub fn run(cmd: QrCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        QrCommand::Decode { payload } => match vietqr::decode(payload.trim()) {
            Ok(qr) => {
                println!("{}", serde_json::to_string_pretty(&to_json(&qr))?);
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("rejected: {e}");
                Ok(ExitCode::FAILURE)
            }
        },
        QrCommand::Encode {
            bin,
            account,
            amount,
            purpose,
            bill,
            name,
            city,
            png,
            svg,
        } => {
            let mut b = VietQrBuilder::new(bin, account);
            if let Some(a) = amount {
                b = b.amount(a).point_of_initiation(PointOfInitiation::Dynamic);
            }
            if let Some(p) = purpose {
                b = b.purpose(p);
            }
            if let Some(x) = bill {
                b = b.bill_number(x);
            }
            if let Some(n) = name {
                b = b.merchant_name(n);
            }
            if let Some(c) = city {
                b = b.merchant_city(c);
            }
            let payload = match b.build() {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("cannot encode: {e}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            if let Some(path) = png {
                let bytes = vietqr::render_png(&payload, PNG_MODULE_PX)?;
                std::fs::write(&path, bytes)
                    .with_context(|| format!("writing {}", path.display()))?;
                eprintln!("wrote {}", path.display());
            }
            if let Some(path) = svg {
                std::fs::write(&path, vietqr::render_svg(&payload)?)
                    .with_context(|| format!("writing {}", path.display()))?;
                eprintln!("wrote {}", path.display());
            }
            println!("{payload}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
