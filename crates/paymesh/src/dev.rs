//! `paymesh serve <service>` and `paymesh dev`: services started through the platform's kit,
//! the same way the tests start them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use paymesh_platform::config::{Config, Section};
use paymesh_platform::kit::{Env, Mesh, ServiceDef};
use tokio::sync::watch;

/// Every service of the mesh, in start order (a service reaches the ones before it). Adding a
/// service is adding it here.
pub const SERVICES: &[&dyn ServiceDef] = &[
    &paymesh_ledger::SERVICE,
    &paymesh_merchant::SERVICE,
    &paymesh_billing::SERVICE,
    &paymesh_payment::SERVICE,
    &paymesh_settlement::SERVICE,
    &paymesh_stall::SERVICE,
];

/// The config sections of every service.
pub fn sections() -> Vec<Section> {
    SERVICES.iter().map(|s| s.config()).collect()
}

/// The names `paymesh serve` takes.
pub fn service_names() -> Vec<&'static str> {
    SERVICES.iter().map(|s| s.name()).collect()
}

/// Serves Prometheus `/metrics` until `stop` turns true.
async fn start_metrics(cfg: &Config, stop: watch::Receiver<bool>) -> anyhow::Result<SocketAddr> {
    let addr = cfg.telemetry.metrics_listen;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding telemetry.metrics_listen to {addr}"))?;
    let bound = listener.local_addr()?;
    let mut stop = stop;
    tokio::spawn(paymesh_platform::metrics::serve(listener, async move {
        while !*stop.borrow() {
            if stop.changed().await.is_err() {
                return;
            }
        }
    }));
    Ok(bound)
}

/// Runs `mesh` until SIGINT/SIGTERM (then drains it) or until a service fails.
async fn until_signal(mut mesh: Mesh, metrics_stop: watch::Sender<bool>) -> anyhow::Result<()> {
    tokio::select! {
        () = paymesh_platform::server::shutdown_signal() => {}
        failed = mesh.failed() => return failed,
    }
    let _ = metrics_stop.send(true);
    mesh.shutdown().await?;
    tracing::info!("stopped");
    Ok(())
}

/// `paymesh serve <name>`: one service until SIGINT/SIGTERM. It reaches the services it calls
/// at its `<peer>_addr` config keys.
pub async fn serve(cfg: Config, name: &str) -> anyhow::Result<()> {
    let def = SERVICES
        .iter()
        .find(|s| s.name() == name)
        .with_context(|| format!("no service {name:?}; known: {:?}", service_names()))?;
    // Named once per process, for the life of the process.
    let service_name: &'static str = Box::leak(format!("paymesh-{name}").into_boxed_str());
    let _telemetry = paymesh_platform::telemetry::init(&cfg.telemetry, service_name)?;
    let (metrics_stop, stop_rx) = watch::channel(false);
    let metrics = start_metrics(&cfg, stop_rx).await?;
    let mut mesh = Mesh::new(Env::from_config(cfg).await?);
    let grpc = mesh.spawn(*def).await?;
    tracing::info!(service = name, %grpc, %metrics, "serving");
    until_signal(mesh, metrics_stop).await
}

/// The environment of `paymesh dev`: the private stack's URLs and dev keys unless set, text
/// logs at `warn`.
fn dev_environment() -> anyhow::Result<BTreeMap<String, String>> {
    let mut env: BTreeMap<String, String> = std::env::vars().collect();
    if !env.contains_key("PAYMESH_DATABASE_URL") {
        let root = crate::stack::repo_root().context(
            "PAYMESH_DATABASE_URL is not set and no infra/stack.sh was found above the current folder; \
             run from the repository or set PAYMESH_DATABASE_URL and PAYMESH_REDIS_URL",
        )?;
        for (k, v) in crate::stack::ensure_up(&root, "dev")? {
            env.entry(k).or_insert(v);
        }
        for (var, file) in [
            ("PAYMESH_AUTH_PRIVATE_KEY_FILE", "private/mesh.pem"),
            (
                "PAYMESH_AUTH_OPERATOR_PRIVATE_KEY_FILE",
                "private/operator.pem",
            ),
            ("PAYMESH_AUTH_PUBLIC_KEYS_DIR", "public"),
        ] {
            let path = root.join(".paymesh/keys").join(file);
            env.entry(var.into())
                .or_insert_with(|| path.display().to_string());
        }
    }
    // The sound boxes' broker: the stack's Mosquitto, unless one is configured.
    if let Some(url) = env.get("PAYMESH_MQTT_URL").cloned() {
        env.entry("PAYMESH_STALL_MQTT_URL".into()).or_insert(url);
    }
    env.entry("PAYMESH_TELEMETRY_LOG_FORMAT".into())
        .or_insert_with(|| "text".into());
    env.entry("PAYMESH_TELEMETRY_LOG_LEVEL".into())
        .or_insert_with(|| "warn".into());
    Ok(env)
}

/// `paymesh dev`: the whole mesh in one process, each service on its own port.
pub async fn run(
    config_file: Option<&Path>,
    demo: bool,
    exit_after_demo: bool,
) -> anyhow::Result<()> {
    let cfg = Config::load_from(config_file, &dev_environment()?, &sections())?;
    let _telemetry = paymesh_platform::telemetry::init(&cfg.telemetry, "paymesh-dev")?;
    // The idempotency layer and the revocation list need Redis: check it answers first.
    check_redis(&cfg).await?;
    for path in paymesh_platform::auth::ensure_keys(&cfg.auth)? {
        eprintln!("created dev JWT key {}", path.display());
    }
    let (metrics_stop, stop_rx) = watch::channel(false);
    let metrics = start_metrics(&cfg, stop_rx).await?;
    let mut mesh = Mesh::new(Env::from_config(cfg).await?);
    for def in SERVICES {
        mesh.spawn(*def).await?;
    }
    print_banner(&mesh, metrics);
    if demo {
        let addr = |name: &str| {
            mesh.addr(name)
                .map(|a| a.to_string())
                .with_context(|| format!("the {name} service is not running"))
        };
        let env = mesh.env();
        crate::demo::run(
            &crate::demo::Mesh {
                ledger: addr("ledger")?,
                merchant: addr("merchant")?,
                payment: addr("payment")?,
                billing: addr("billing")?,
                settlement: addr("settlement")?,
                stall: addr("stall")?,
                services: env
                    .minter
                    .as_ref()
                    .context("the demo needs auth.private_key_file")?,
                people: paymesh_platform::auth::Minter::operator_from_config(&env.config.auth)
                    .context("the demo needs auth.operator_private_key_file")?,
            },
            !exit_after_demo,
        )
        .await?;
        if exit_after_demo {
            let _ = metrics_stop.send(true);
            return mesh.shutdown().await;
        }
    }
    println!("serving; Ctrl-C to stop");
    until_signal(mesh, metrics_stop).await
}

fn print_banner(mesh: &Mesh, metrics: SocketAddr) {
    let cfg = &mesh.env().config;
    println!("paymesh dev is up");
    for (def, (name, addr)) in SERVICES.iter().zip(mesh.running()) {
        println!(
            "  {name:9} grpc://{addr}  ({}, health, reflection)",
            def.grpc_service()
        );
    }
    if let Some(payment) = mesh.handle::<paymesh_payment::PaymentService>("payment") {
        println!(
            "  banks     http://{}/v1/banks/{{bin}}/credits  (signed credit notifications)",
            payment.bank_webhook_addr()
        );
    }
    if let Some(stall) = mesh.handle::<paymesh_stall::StallService>("stall") {
        println!(
            "  stall     {}/  (the vendors' stall page; sign in: paymesh merchant link MERCHANT_ID)",
            stall.public_url()
        );
    }
    println!("  metrics   http://{metrics}/metrics");
    println!("  postgres  {}", redact(cfg.database.url.expose()));
    println!("  redis     {}", redact(cfg.redis.url.expose()));
    println!(
        "  token     paymesh token mint operator:$USER   (public keys in {})",
        cfg.auth.public_keys_dir.display()
    );
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
    let client = redis::Client::open(cfg.redis.url.expose()).context("redis.url")?;
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

    #[test]
    fn every_service_table_matches_its_proto_and_names_are_unique() {
        let mut names = service_names();
        for def in SERVICES {
            paymesh_platform::kit::checked_policy(*def).unwrap();
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SERVICES.len());
    }
}
