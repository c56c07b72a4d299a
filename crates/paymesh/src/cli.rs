//! Command line: `serve`, `dev`, `token`, `config`, `qr`, `ledger`, `merchant`, `payment`,
//! `bank`, `bills`, `settlement`, `recon`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use paymesh_platform::auth::{Minter, Principal};
use paymesh_platform::config::Config;

#[derive(Parser)]
#[command(
    name = "paymesh",
    version,
    about = "paymesh: the cashless-payment mesh"
)]
struct Cli {
    /// Configuration file (TOML); PAYMESH_* environment variables override it.
    #[arg(long, global = true, env = "PAYMESH_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one service (ledger, merchant).
    Serve {
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(crate::dev::service_names()))]
        service: String,
    },
    /// Run every service in one process (each on its own port, talking gRPC), after making
    /// sure a private PostgreSQL and Redis are up and migrated.
    Dev {
        /// Run the demo against the mesh once it is up.
        #[arg(long)]
        demo: bool,
        /// Stop after the demo instead of serving until Ctrl-C.
        #[arg(long, requires = "demo")]
        exit_after_demo: bool,
    },
    /// JWT keys and tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// VietQR: decode a payload, or encode one (and render it as PNG/SVG).
    Qr {
        #[command(subcommand)]
        command: crate::qr::QrCommand,
    },
    /// Ledger tools.
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
    /// Merchants: onboard, approve, list, show, static QR, fee plan (calls the merchant service).
    Merchant(crate::merchant_cli::MerchantArgs),
    /// QR payments: intents, payments, the live stream (calls the payment service).
    Payment(crate::payment_cli::PaymentArgs),
    /// The acquiring bank's side, as a simulator: notify a credit.
    Bank(crate::payment_cli::BankArgs),
    /// Bill payment: billers' policies, CSV loads, bills and their VietQR, the daily report;
    /// a payer channel's lookup and payment (calls the billing service).
    Bills(crate::bills_cli::BillsArgs),
    /// Settlement windows: close a business day, its totals and payouts (calls the
    /// settlement service).
    Settlement(crate::settlement_cli::SettlementArgs),
    /// Reconciliation: the files banks pull, bank statements imported and matched, breaks
    /// listed and resolved (calls the settlement service).
    Recon(crate::settlement_cli::ReconArgs),
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create what is missing of the services' key pair (auth.private_key_file) and the
    /// operators' (auth.operator_private_key_file), public keys as <kid>.pem in
    /// auth.public_keys_dir.
    Keygen,
    /// Print a signed token for a principal (operator:NAME, merchant:ID, biller:ID, bank:BIN,
    /// channel:ID, service:NAME), signed with the operators' key.
    Mint {
        principal: String,
        /// Lifetime in seconds; at most auth.token_lifetime_max_seconds (the default).
        #[arg(long)]
        ttl: Option<u64>,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// List every key, its environment variable and default.
    Keys,
    /// Load and validate the configuration; print it with secrets hidden.
    Check,
}

#[derive(Subcommand)]
enum LedgerCommand {
    /// Check the ledger's invariants over the whole database.
    Audit,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("paymesh: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("paymesh: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The configuration, with every service's section.
fn load(file: Option<&std::path::Path>) -> anyhow::Result<Config> {
    Ok(Config::load(file, &crate::dev::sections())?)
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config_file = cli.config.as_deref();
    match cli.command {
        Command::Serve { service } => {
            crate::dev::serve(load(config_file)?, &service).await?;
        }
        Command::Dev {
            demo,
            exit_after_demo,
        } => {
            crate::dev::run(config_file, demo, exit_after_demo).await?;
        }
        Command::Token { command } => {
            let cfg = load(config_file)?;
            match command {
                TokenCommand::Keygen => {
                    let written = paymesh_platform::auth::ensure_keys(&cfg.auth)?;
                    if written.is_empty() {
                        eprintln!(
                            "kept existing keys: {}, {} and {}",
                            cfg.auth.private_key_file.display(),
                            cfg.auth.operator_private_key_file.display(),
                            cfg.auth.public_keys_dir.display()
                        );
                    }
                    for path in written {
                        eprintln!("created {}", path.display());
                    }
                }
                TokenCommand::Mint { principal, ttl } => {
                    let p = Principal::parse(&principal).map_err(anyhow::Error::msg)?;
                    let max = cfg.auth.token_lifetime_max_seconds;
                    let ttl = ttl.unwrap_or(max);
                    anyhow::ensure!(
                        ttl <= max,
                        "--ttl {ttl} is over auth.token_lifetime_max_seconds ({max})"
                    );
                    let minter = Minter::operator_from_config(&cfg.auth)?;
                    println!("{}", minter.mint(&p, ttl)?);
                }
            }
        }
        Command::Config { command } => match command {
            ConfigCommand::Keys => {
                for (key, env, default, help) in Config::keys(&crate::dev::sections()) {
                    println!("{key:40} {env:45} default {default:?}\n{:40} {help}", "");
                }
            }
            ConfigCommand::Check => {
                let cfg = load(config_file)?;
                println!("{cfg:#?}");
            }
        },
        Command::Qr { command } => return crate::qr::run(command),
        Command::Merchant(args) => {
            let cfg = load(config_file)?;
            return crate::merchant_cli::run(args, &cfg).await;
        }
        Command::Payment(args) => {
            let cfg = load(config_file)?;
            return crate::payment_cli::run(args, &cfg).await;
        }
        Command::Bank(args) => {
            let cfg = load(config_file)?;
            return crate::payment_cli::run_bank(args, &cfg).await;
        }
        Command::Bills(args) => {
            let cfg = load(config_file)?;
            return crate::bills_cli::run(args, &cfg).await;
        }
        Command::Settlement(args) => {
            let cfg = load(config_file)?;
            return crate::settlement_cli::run_settlement(args, &cfg).await;
        }
        Command::Recon(args) => {
            let cfg = load(config_file)?;
            return crate::settlement_cli::run_recon(args, &cfg).await;
        }
        Command::Ledger {
            command: LedgerCommand::Audit,
        } => {
            let cfg = load(config_file)?;
            let pool = paymesh_platform::migrate::connect(&cfg.database).await?;
            let problems = paymesh_ledger::store::audit(&pool)
                .await
                .context("auditing the ledger")?;
            if problems.is_empty() {
                println!("ledger audit: every invariant holds");
            } else {
                for p in &problems {
                    println!("{p}");
                }
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
