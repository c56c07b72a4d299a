//! `paymesh serve <service>` and `paymesh dev`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use paymesh_ledger::LedgerService;
use paymesh_merchant::MerchantService;
use paymesh_platform::auth::Verifier;
use paymesh_platform::config::Config;
use paymesh_platform::idempotency::{IdempotencyLayer, KeyRule};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Resolves when `rx` sees `true` (or its sender is gone).
async fn stopped(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

async fn bind(what: &str, addr: std::net::SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {what} to {addr}"))
}

/// A running ledger: its address and the task serving it.
struct Running {
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start_ledger(
    cfg: &Config,
    verifier: Verifier,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Running> {
    let pool = paymesh_platform::migrate::connect(&cfg.database).await?;
    let service = LedgerService::start(pool, &cfg.ledger).await?;
    let svc = service.into_server(cfg.server.message_bytes_max);
    spawn_service(
        cfg,
        "ledger.listen",
        cfg.ledger.listen,
        svc,
        LedgerService::idempotent_rpcs(),
        verifier,
        stop,
    )
    .await
}

/// The merchant service, calling the ledger at `ledger_addr` with tokens from `minter`.
async fn start_merchant(
    cfg: &Config,
    verifier: Verifier,
    minter: paymesh_platform::auth::Minter,
    ledger_addr: String,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Running> {
    let pool = paymesh_platform::migrate::connect(&cfg.database).await?;
    let settings = paymesh_merchant::Settings {
        ledger_addr,
        ..paymesh_merchant::Settings::from_config(cfg)
    };
    let redis = paymesh_platform::idempotency::redis_or_warn(cfg.redis_url.expose()).await;
    let service = MerchantService::start(pool, &settings, minter, redis).await?;
    let svc = service.into_server(cfg.server.message_bytes_max);
    spawn_service(
        cfg,
        "merchant.listen",
        cfg.merchant.listen,
        svc,
        MerchantService::idempotent_rpcs(),
        verifier,
        stop,
    )
    .await
}

/// Binds `addr` and serves `svc` there (health, reflection, telemetry, auth, idempotency for
/// `rpcs`) until `stop`.
async fn spawn_service<S>(
    cfg: &Config,
    what: &str,
    addr: std::net::SocketAddr,
    svc: S,
    rpcs: Vec<(String, KeyRule)>,
    verifier: Verifier,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Running>
where
    S: tonic::codegen::Service<
            tonic::codegen::http::Request<tonic::body::Body>,
            Response = tonic::codegen::http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
        > + tonic::server::NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let listener = bind(what, addr).await?;
    let addr = listener.local_addr()?;
    let server_cfg = cfg.server.clone();
    let redis = paymesh_platform::idempotency::redis_or_warn(cfg.redis_url.expose()).await;
    // Tokens exchanged for API credentials are checked against the revocation list there.
    let verifier = verifier.with_revocations(redis.clone());
    let idempotency = IdempotencyLayer::new(redis, rpcs, &cfg.idempotency);
    let task = tokio::spawn(async move {
        paymesh_platform::server::serve(
            svc,
            listener,
            &server_cfg,
            verifier,
            idempotency,
            stopped(stop),
        )
        .await
    });
    Ok(Running { addr, task })
}

/// Runs a started service until SIGINT/SIGTERM, then drains it (bounded by
/// `server.shutdown_grace_ms`).
async fn serve_until_signal(
    name: &str,
    running: Running,
    metrics: std::net::SocketAddr,
    stop_tx: watch::Sender<bool>,
) -> anyhow::Result<()> {
    tracing::info!(service = name, grpc = %running.addr, metrics = %metrics, "serving");
    let mut task = running.task;
    tokio::select! {
        () = paymesh_platform::server::shutdown_signal() => {}
        result = &mut task => return result.with_context(|| format!("{name} task"))?,
    }
    let _ = stop_tx.send(true);
    task.await.with_context(|| format!("{name} task"))??;
    tracing::info!(service = name, "stopped");
    Ok(())
}

async fn start_metrics(
    cfg: &Config,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<std::net::SocketAddr> {
    let listener = bind("telemetry.metrics_listen", cfg.telemetry.metrics_listen).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(paymesh_platform::metrics::serve(listener, stopped(stop)));
    Ok(addr)
}

/// `paymesh serve ledger`: one service until SIGINT/SIGTERM.
pub async fn serve_ledger(cfg: &Config) -> anyhow::Result<()> {
    let _telemetry = paymesh_platform::telemetry::init(&cfg.telemetry, "paymesh-ledger")?;
    let verifier = Verifier::from_config(&cfg.auth)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let metrics = start_metrics(cfg, stop_rx.clone()).await?;
    let ledger = start_ledger(cfg, verifier, stop_rx).await?;
    serve_until_signal("ledger", ledger, metrics, stop_tx).await
}

/// `paymesh serve merchant`: the merchant service until SIGINT/SIGTERM. It signs its calls to
/// the ledger (`merchant.ledger_addr`) with `auth.private_key_file`.
pub async fn serve_merchant(cfg: &Config) -> anyhow::Result<()> {
    let _telemetry = paymesh_platform::telemetry::init(&cfg.telemetry, "paymesh-merchant")?;
    let verifier = Verifier::from_config(&cfg.auth)?;
    let minter = paymesh_platform::auth::Minter::from_config(&cfg.auth)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let metrics = start_metrics(cfg, stop_rx.clone()).await?;
    let merchant = start_merchant(
        cfg,
        verifier,
        minter,
        cfg.merchant.ledger_addr.clone(),
        stop_rx,
    )
    .await?;
    serve_until_signal("merchant", merchant, metrics, stop_tx).await
}

/// `paymesh dev`: the whole mesh in one process.
pub async fn run(
    config_file: Option<&Path>,
    demo: bool,
    exit_after_demo: bool,
) -> anyhow::Result<()> {
    let mut env: BTreeMap<String, String> = std::env::vars().collect();
    if !env.contains_key("PAYMESH_DATABASE_URL") {
        let root = crate::stack::repo_root().context(
            "PAYMESH_DATABASE_URL is not set and no infra/stack.sh was found above the current folder; \
             run from the repository or set PAYMESH_DATABASE_URL and PAYMESH_REDIS_URL",
        )?;
        for (k, v) in crate::stack::ensure_up(&root, "dev")? {
            env.entry(k).or_insert(v);
        }
        env.entry("PAYMESH_AUTH_PRIVATE_KEY_FILE".into())
            .or_insert_with(|| {
                root.join(".paymesh/keys/jwt-private.pem")
                    .display()
                    .to_string()
            });
        env.entry("PAYMESH_AUTH_PUBLIC_KEY_FILE".into())
            .or_insert_with(|| {
                root.join(".paymesh/keys/jwt-public.pem")
                    .display()
                    .to_string()
            });
    }
    env.entry("PAYMESH_TELEMETRY_LOG_FORMAT".into())
        .or_insert_with(|| "text".into());
    env.entry("PAYMESH_TELEMETRY_LOG_LEVEL".into())
        .or_insert_with(|| "warn".into());
    let cfg = Config::load_from(config_file, &env)?;
    let _telemetry = paymesh_platform::telemetry::init(&cfg.telemetry, "paymesh-dev")?;

    // Services check that Redis answers before they serve: the idempotency layer needs it.
    check_redis(&cfg).await?;
    if paymesh_platform::auth::ensure_keypair(&cfg.auth)? {
        eprintln!(
            "created dev JWT keys: {}",
            cfg.auth.private_key_file.display()
        );
    }
    let verifier = Verifier::from_config(&cfg.auth)?;
    let minter = Arc::new(paymesh_platform::auth::Minter::from_config(&cfg.auth)?);
    let (stop_tx, stop_rx) = watch::channel(false);
    let metrics = start_metrics(&cfg, stop_rx.clone()).await?;
    let ledger = start_ledger(&cfg, verifier.clone(), stop_rx.clone()).await?;
    let merchant = start_merchant(
        &cfg,
        verifier,
        (*minter).clone(),
        ledger.addr.to_string(),
        stop_rx,
    )
    .await?;

    println!("paymesh dev is up");
    println!(
        "  ledger    grpc://{}  (paymesh.ledger.v1.LedgerService, health, reflection)",
        ledger.addr
    );
    println!(
        "  merchant  grpc://{}  (paymesh.merchant.v1.MerchantService; paymesh merchant --help)",
        merchant.addr
    );
    println!("  metrics   http://{metrics}/metrics");
    println!("  postgres  {}", redact(cfg.database.url.expose()));
    println!("  redis     {}", redact(cfg.redis_url.expose()));
    println!(
        "  token     paymesh token mint operator   (keys in {})",
        cfg.auth
            .public_key_file
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );

    if demo {
        let token = minter.mint(&paymesh_platform::auth::Principal::Operator, 600)?;
        crate::demo::run(&ledger.addr.to_string(), &token).await?;
        if exit_after_demo {
            let _ = stop_tx.send(true);
            let _ = ledger.task.await;
            let _ = merchant.task.await;
            return Ok(());
        }
    }
    println!("serving; Ctrl-C to stop");
    paymesh_platform::server::shutdown_signal().await;
    let _ = stop_tx.send(true);
    let _ = ledger.task.await;
    let _ = merchant.task.await;
    Ok(())
}

/// Hides a password in a URL.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

async fn check_redis(cfg: &Config) -> anyhow::Result<()> {
    let client = redis::Client::open(cfg.redis_url.expose()).context("redis.url")?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .context("connecting to Redis (redis.url)")?;
    let pong: String = redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .context("Redis PING")?;
    anyhow::ensure!(pong == "PONG", "Redis answered {pong:?} to PING");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://u:secret@h:1/d"),
            "postgres://u:***@h:1/d"
        );
        assert_eq!(redact("redis://127.0.0.1:1/"), "redis://127.0.0.1:1/");
    }
}
