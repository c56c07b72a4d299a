//! `paymesh payment …` (an operator's or a merchant's verbs on the payment service) and
//! `paymesh bank credit` (the acquiring bank's notification, as a simulator for demos and
//! tests), over gRPC. Output is JSON on stdout (one line per event for `watch`); a refused
//! call prints the gRPC code, its reason and message on one line on stderr and exits 1.
//!
//! Tokens are minted from `auth.operator_private_key_file` unless `--token` is given:
//! `operator:{--operator}` for the payment verbs, `bank:{--bin}` for `bank credit`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use paymesh_platform::client::{CallContext, channel};
use paymesh_platform::config::Config;
use paymesh_proto::payment::v1 as pb;
use paymesh_proto::payment::v1::payment_service_client::PaymentServiceClient;
use serde_json::{Value, json};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use paymesh_payment::json;

use crate::verbs::{finish, keyed, operator, principal, refused, token, vnd};

type Client = PaymentServiceClient<InterceptedService<Channel, CallContext>>;

#[derive(clap::Args)]
pub struct PaymentArgs {
    /// The payment service (host:port); default: payment.listen.
    #[arg(long, global = true)]
    addr: Option<String>,
    /// Bearer token to call with; default: one minted for `operator:{--operator}`.
    #[arg(long, global = true, env = "PAYMESH_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[arg(long, global = true, env = "PAYMESH_OPERATOR")]
    operator: Option<String>,
    #[command(subcommand)]
    command: PaymentCommand,
}

#[derive(clap::Subcommand)]
enum PaymentCommand {
    /// Ask for an amount: a payment intent with its dynamic VietQR.
    Intent {
        #[arg(long)]
        merchant: String,
        /// Whole đồng.
        #[arg(long)]
        amount: String,
        /// The merchant's order reference.
        #[arg(long, default_value = "")]
        order: String,
        /// 15m, 900s, 1h… (60 s to 24 h).
        #[arg(long, default_value = "15m")]
        expires_in: String,
        /// Also write the QR as a PNG here.
        #[arg(long)]
        png: Option<PathBuf>,
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Cancel an active intent.
    Cancel {
        id: String,
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// One payment.
    Show { id: String },
    /// A merchant's payments, newest first.
    List {
        #[arg(long)]
        merchant: String,
        #[arg(long, default_value_t = 50)]
        page_size: i32,
        #[arg(long, default_value = "")]
        page_token: String,
    },
    /// Refund a payment, fully (default: what is left) or in part.
    Refund {
        id: String,
        /// Whole đồng (default: what is left of the payment).
        #[arg(long)]
        amount: Option<String>,
        #[arg(long, default_value = "")]
        reason: String,
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Refunds of a merchant (--merchant), of a payment (--payment) or a bank's queue (--bin).
    Refunds {
        #[arg(long, default_value = "")]
        merchant: String,
        #[arg(long, default_value = "")]
        payment: String,
        #[arg(long, default_value = "")]
        bin: String,
        /// pending, completed or failed.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        page_size: i32,
        #[arg(long, default_value = "")]
        page_token: String,
    },
    /// Credits held in suspense, oldest first.
    Suspense {
        #[arg(long, default_value_t = 50)]
        page_size: i32,
        #[arg(long, default_value = "")]
        page_token: String,
    },
    /// Assign a credit held in suspense to a merchant (audited).
    Assign {
        credit: String,
        #[arg(long)]
        merchant: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Return a credit held in suspense to the payer (audited).
    Return {
        credit: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Set (or, with an empty --url, remove) a merchant's webhook endpoint; prints the signing
    /// secret once.
    Webhook {
        #[arg(long)]
        merchant: String,
        #[arg(long, default_value = "")]
        url: String,
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// A merchant's payment events as they commit, one JSON line each, until interrupted.
    Watch {
        #[arg(long)]
        merchant: String,
        /// Resume after this event's cursor ("0": from the first event; default: from now).
        #[arg(long, default_value = "")]
        from: String,
    },
}

#[derive(clap::Args)]
pub struct BankArgs {
    /// The payment service (host:port); default: payment.listen.
    #[arg(long, global = true)]
    addr: Option<String>,
    #[arg(long, global = true, env = "PAYMESH_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: BankCommand,
}

#[derive(clap::Subcommand)]
enum BankCommand {
    /// The bank's result of a payout instruction (a refund or a return).
    Settle {
        refund: String,
        /// completed or failed.
        #[arg(long)]
        status: String,
        #[arg(long, default_value = "")]
        reason: String,
        #[arg(long, default_value = "970436")]
        bin: String,
    },
    /// Notify a credit to a (virtual) account, as the acquiring bank does.
    Credit {
        #[arg(long)]
        account: String,
        /// Whole đồng.
        #[arg(long)]
        amount: String,
        /// The transfer description as the bank received it.
        #[arg(long, default_value = "")]
        memo: String,
        /// The bank's transaction id (a repeat is answered with the first outcome).
        #[arg(long)]
        bank_txn: String,
        /// The acquiring bank's BIN.
        #[arg(long, default_value = "970436")]
        bin: String,
        /// Value time, RFC 3339 (default: now).
        #[arg(long)]
        time: Option<String>,
    },
}

fn client(cfg: &Config, addr: Option<&str>, token: &str) -> anyhow::Result<Client> {
    let addr = match addr {
        Some(a) => a.to_owned(),
        None => cfg.service("payment")?.addr("listen")?.to_string(),
    };
    Ok(PaymentServiceClient::with_interceptor(
        channel(&addr)?,
        CallContext::with_token(token)?,
    ))
}

/// `15m`, `900s`, `900`, `1h` → seconds.
fn seconds(text: &str) -> anyhow::Result<u32> {
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u32 = digits
        .parse()
        .with_context(|| format!("--expires-in {text:?}: a number and s, m or h"))?;
    let factor = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => anyhow::bail!("--expires-in {text:?}: the unit is s, m or h"),
    };
    n.checked_mul(factor).context("--expires-in is too long")
}

/// A notification's answer: the credit and whether it was a repeat.
pub fn credit_json(r: &pb::NotifyCreditResponse) -> Value {
    let mut v = r.credit.as_ref().map_or(Value::Null, json::credit);
    v["duplicate"] = json!(r.duplicate);
    v
}

pub async fn run(args: PaymentArgs, cfg: &Config) -> anyhow::Result<ExitCode> {
    let operator = operator(args.operator.as_deref())?;
    let token = token(cfg, args.token.as_deref(), &operator)?;
    let mut client = client(cfg, args.addr.as_deref(), &token)?;
    let result = match args.command {
        PaymentCommand::Intent {
            merchant,
            amount,
            order,
            expires_in,
            png,
            idempotency_key,
        } => {
            let request = pb::CreatePaymentIntentRequest {
                merchant_id: merchant,
                amount: Some(vnd(&amount)),
                order_reference: order,
                expires_in_seconds: seconds(&expires_in)?,
                render_png: png.is_some(),
                ..Default::default()
            };
            match client
                .create_payment_intent(keyed(request, idempotency_key)?)
                .await
            {
                Ok(r) => {
                    let r = r.into_inner();
                    let mut value = r.intent.as_ref().map_or(Value::Null, json::intent);
                    if let Some(path) = &png {
                        std::fs::write(path, &r.png)
                            .with_context(|| format!("writing {}", path.display()))?;
                        value["png"] = json!(path.display().to_string());
                    }
                    Ok(value)
                }
                Err(status) => Err(status),
            }
        }
        PaymentCommand::Cancel {
            id,
            idempotency_key,
        } => client
            .cancel_payment_intent(keyed(
                pb::CancelPaymentIntentRequest { intent_id: id },
                idempotency_key,
            )?)
            .await
            .map(|r| {
                r.into_inner()
                    .intent
                    .as_ref()
                    .map_or(Value::Null, json::intent)
            }),
        PaymentCommand::Show { id } => client
            .get_payment(pb::GetPaymentRequest { payment_id: id })
            .await
            .map(|r| {
                r.into_inner()
                    .payment
                    .as_ref()
                    .map_or(Value::Null, json::payment)
            }),
        PaymentCommand::List {
            merchant,
            page_size,
            page_token,
        } => client
            .list_payments(pb::ListPaymentsRequest {
                merchant_id: merchant,
                page_size,
                page_token,
                ..Default::default()
            })
            .await
            .map(|r| {
                let r = r.into_inner();
                json!({
                    "payments": r.payments.iter().map(json::payment).collect::<Vec<_>>(),
                    "next_page_token": r.next_page_token,
                })
            }),
        PaymentCommand::Refund {
            id,
            amount,
            reason,
            idempotency_key,
        } => {
            let request = pb::RefundPaymentRequest {
                payment_id: id,
                amount: amount.as_deref().map(vnd),
                reason,
            };
            client
                .refund_payment(keyed(request, idempotency_key)?)
                .await
                .map(|r| {
                    let r = r.into_inner();
                    json!({
                        "refund": r.refund.as_ref().map(json::refund),
                        "payment": r.payment.as_ref().map(json::payment),
                    })
                })
        }
        PaymentCommand::Refunds {
            merchant,
            payment,
            bin,
            status,
            page_size,
            page_token,
        } => {
            let status = match status {
                Some(s) => refund_status(&s)? as i32,
                None => 0,
            };
            client
                .list_refunds(pb::ListRefundsRequest {
                    merchant_id: merchant,
                    payment_id: payment,
                    bank_bin: bin,
                    status,
                    page_size,
                    page_token,
                })
                .await
                .map(|r| {
                    let r = r.into_inner();
                    json!({
                        "refunds": r.refunds.iter().map(json::refund).collect::<Vec<_>>(),
                        "next_page_token": r.next_page_token,
                    })
                })
        }
        PaymentCommand::Suspense {
            page_size,
            page_token,
        } => client
            .list_suspense_credits(pb::ListSuspenseCreditsRequest {
                page_size,
                page_token,
            })
            .await
            .map(|r| {
                let r = r.into_inner();
                json!({
                    "credits": r.credits.iter().map(json::credit).collect::<Vec<_>>(),
                    "next_page_token": r.next_page_token,
                })
            }),
        PaymentCommand::Assign {
            credit,
            merchant,
            reason,
            idempotency_key,
        } => {
            let request = pb::AssignCreditRequest {
                credit_id: credit,
                merchant_id: merchant,
                reason,
            };
            client
                .assign_credit(keyed(request, idempotency_key)?)
                .await
                .map(|r| {
                    let r = r.into_inner();
                    json!({
                        "credit": r.credit.as_ref().map(json::credit),
                        "payment": r.payment.as_ref().map(json::payment),
                    })
                })
        }
        PaymentCommand::Return {
            credit,
            reason,
            idempotency_key,
        } => {
            let request = pb::ReturnCreditRequest {
                credit_id: credit,
                reason,
            };
            client
                .return_credit(keyed(request, idempotency_key)?)
                .await
                .map(|r| {
                    let r = r.into_inner();
                    json!({
                        "credit": r.credit.as_ref().map(json::credit),
                        "refund": r.refund.as_ref().map(json::refund),
                    })
                })
        }
        PaymentCommand::Webhook {
            merchant,
            url,
            idempotency_key,
        } => {
            let request = pb::UpdateWebhookEndpointRequest {
                merchant_id: merchant,
                url,
            };
            client
                .update_webhook_endpoint(keyed(request, idempotency_key)?)
                .await
                .map(|r| {
                    let r = r.into_inner();
                    let e = r.endpoint.unwrap_or_default();
                    json!({
                        "merchant_id": e.merchant_id,
                        "url": e.url,
                        "signing_secret": r.signing_secret,
                        "update_time": e.update_time.map(|t| t.to_string()),
                    })
                })
        }
        PaymentCommand::Watch { merchant, from } => {
            let request = pb::WatchPaymentsRequest {
                merchant_id: merchant,
                after_cursor: from,
            };
            let mut stream = match client.watch_payments(request).await {
                Ok(s) => s.into_inner(),
                Err(status) => return Ok(refused(&status)),
            };
            loop {
                match stream.message().await {
                    Ok(Some(m)) => {
                        if let Some(e) = m.event {
                            println!("{}", serde_json::to_string(&json::event(&e))?);
                        }
                    }
                    Ok(None) => return Ok(ExitCode::SUCCESS),
                    Err(status) => return Ok(refused(&status)),
                }
            }
        }
    };
    finish(result)
}

fn refund_status(text: &str) -> anyhow::Result<pb::RefundStatus> {
    pb::RefundStatus::from_str_name(&format!("REFUND_STATUS_{}", text.to_ascii_uppercase()))
        .filter(|s| *s != pb::RefundStatus::Unspecified)
        .with_context(|| format!("{text:?}: pending, completed or failed"))
}

pub async fn run_bank(args: BankArgs, cfg: &Config) -> anyhow::Result<ExitCode> {
    let (account, amount, memo, bank_txn, bin, value_time) = match args.command {
        BankCommand::Credit {
            account,
            amount,
            memo,
            bank_txn,
            bin,
            time,
        } => (account, amount, memo, bank_txn, bin, time),
        BankCommand::Settle {
            refund,
            status,
            reason,
            bin,
        } => {
            let bank = principal("bank", &bin, "--bin")?;
            let token = token(cfg, args.token.as_deref(), &bank)?;
            let mut client = client(cfg, args.addr.as_deref(), &token)?;
            let request = pb::SettleRefundRequest {
                refund_id: refund,
                status: refund_status(&status)? as i32,
                failure_reason: reason,
            };
            return finish(client.settle_refund(request).await.map(|r| {
                r.into_inner()
                    .refund
                    .as_ref()
                    .map_or(Value::Null, json::refund)
            }));
        }
    };
    let bank = principal("bank", &bin, "--bin")?;
    let token = token(cfg, args.token.as_deref(), &bank)?;
    let mut client = client(cfg, args.addr.as_deref(), &token)?;
    let value_time = match value_time {
        Some(t) => t.parse::<prost_types::Timestamp>().map_err(|e| {
            anyhow::anyhow!("--time {t:?}: {e} (RFC 3339, e.g. 2026-12-01T09:30:00Z)")
        })?,
        None => {
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or(Duration::ZERO);
            prost_types::Timestamp {
                seconds: i64::try_from(now.as_secs()).unwrap_or(i64::MAX),
                nanos: i32::try_from(now.subsec_micros() * 1_000).unwrap_or(0),
            }
        }
    };
    let request = pb::NotifyCreditRequest {
        bank_bin: bin,
        bank_transaction_id: bank_txn,
        account_number: account,
        amount: Some(vnd(&amount)),
        description: memo,
        value_time: Some(value_time),
    };
    finish(
        client
            .notify_credit(request)
            .await
            .map(|r| credit_json(&r.into_inner())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_units() {
        assert_eq!(seconds("15m").unwrap(), 900);
        assert_eq!(seconds("900").unwrap(), 900);
        assert_eq!(seconds("2h").unwrap(), 7200);
        assert!(seconds("15d").is_err());
        assert!(seconds("m").is_err());
    }
}
