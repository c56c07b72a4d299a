//! The service kit: how a paymesh service is described, and the one way it is started, by
//! `paymesh serve`, `paymesh dev` and the tests alike.
//!
//! A service crate exports one value implementing [`ServiceDef`]: its name (which is also its
//! config section and its PostgreSQL schema), its gRPC service, its RPC table ([`Rpc`]: who
//! may call each and whether it is idempotent), its config keys, its migrations, and `start`,
//! which builds the tonic service from a [`StartContext`]. [`Mesh::spawn`] does the rest the
//! same way for every service: pool, migrations, shared Redis, listener, the tower stack
//! (telemetry, auth with the RPC table, idempotency), health and reflection listing only this
//! service, a sweeper of the service's expired idempotency keys, and a graceful drain on stop.

pub mod policy;

use std::any::Any;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use futures::future::BoxFuture;
use sqlx::PgPool;
use tokio::sync::watch;
use tonic::service::Routes;

pub use policy::{Callers, Policy, Rpc, is_owner};

use crate::auth::{Minter, Verifier};
use crate::config::{Config, Section, ServiceSection};
use crate::idempotency::IdempotencyLayer;
use crate::migrate::Migration;

/// What a service is. Implemented once per service crate, listed once in the binary.
pub trait ServiceDef: Send + Sync + 'static {
    /// Short name: `paymesh serve <name>`, config section `<name>.*`, PostgreSQL schema.
    fn name(&self) -> &'static str;
    /// The full gRPC service name, e.g. `paymesh.ledger.v1.LedgerService`.
    fn grpc_service(&self) -> &'static str;
    /// Every RPC of the gRPC service, with who may call it and its idempotency rule. Start-up
    /// refuses a table that misses an RPC of the proto or names one it does not have.
    fn rpcs(&self) -> &'static [Rpc];
    /// The service's config section; it must have a `listen` key (its gRPC address).
    fn config(&self) -> Section;
    /// Forward-only migrations of the service's schema, applied before `start`.
    fn migrations(&self) -> Vec<Migration>;
    /// Builds the gRPC service (its background tasks may be spawned here).
    fn start<'a>(&'a self, ctx: StartContext<'a>) -> BoxFuture<'a, anyhow::Result<Started>>;
}

/// What a service gets to start with.
pub struct StartContext<'a> {
    pub config: &'a Config,
    /// The service's own section.
    pub section: &'a ServiceSection,
    /// A pool on the database, migrations applied.
    pub pool: PgPool,
    /// The process's Redis connection (reconnects by itself); `None` when Redis was
    /// unreachable at start-up.
    pub redis: Option<redis::aio::ConnectionManager>,
    minter: Option<&'a Minter>,
    private_key_file: &'a std::path::Path,
    peers: &'a BTreeMap<&'static str, SocketAddr>,
    stop: watch::Receiver<bool>,
}

impl StartContext<'_> {
    /// Where to reach service `name`: where it listens when it runs in this mesh (`paymesh dev`,
    /// tests), else this service's `<name>_addr` config key.
    pub fn peer(&self, name: &str) -> anyhow::Result<String> {
        if let Some(addr) = self.peers.get(name) {
            return Ok(addr.to_string());
        }
        Ok(self.section.non_empty(&format!("{name}_addr"))?)
    }

    /// Signs the service's own tokens for the services it calls (and any tokens it issues):
    /// the key of `auth.private_key_file`, which only services that sign need.
    pub fn minter(&self) -> anyhow::Result<&Minter> {
        self.minter.with_context(|| {
            format!(
                "auth.private_key_file {} is needed: this service signs its calls to other services",
                self.private_key_file.display()
            )
        })
    }

    /// Largest gRPC message, for the generated server's limits.
    pub fn message_bytes_max(&self) -> usize {
        self.config.server.message_bytes_max
    }

    /// Resolves when the mesh stops: a service's background work (workers, extra listeners)
    /// ends with it.
    pub fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        stopped(self.stop.clone())
    }
}

/// A started service: its routes, and optionally a handle that tests can reach in-process.
pub struct Started {
    routes: Routes,
    handle: Option<Arc<dyn Any + Send + Sync>>,
}

impl Started {
    pub fn new<S>(service: S) -> Started
    where
        S: tower::Service<
                http::Request<tonic::body::Body>,
                Response = http::Response<tonic::body::Body>,
                Error = std::convert::Infallible,
            > + tonic::server::NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        Started {
            routes: Routes::new(service),
            handle: None,
        }
    }

    /// Keeps `handle` for [`Mesh::handle`].
    pub fn with_handle<T: Any + Send + Sync>(mut self, handle: T) -> Started {
        self.handle = Some(Arc::new(handle));
        self
    }
}

/// What every service in a process shares.
pub struct Env {
    pub config: Config,
    pub verifier: Verifier,
    /// `None` when there is no private key: services that sign then refuse to start.
    pub minter: Option<Minter>,
    /// One connection for the whole process.
    pub redis: Option<redis::aio::ConnectionManager>,
}

impl Env {
    /// Keys from the config's files (the private key only if its file exists); Redis
    /// connected (or `None`, with a warning).
    pub async fn from_config(config: Config) -> anyhow::Result<Env> {
        let verifier = Verifier::from_config(&config.auth)?;
        let minter = if config.auth.private_key_file.exists() {
            Some(Minter::from_config(&config.auth)?)
        } else {
            None
        };
        let redis = crate::idempotency::redis_or_warn(config.redis.url.expose()).await;
        Ok(Env {
            config,
            verifier,
            minter,
            redis,
        })
    }
}

/// A service serving in this process.
pub struct Running {
    pub name: &'static str,
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    handle: Option<Arc<dyn Any + Send + Sync>>,
}

/// The services of one process, stopped together.
pub struct Mesh {
    env: Env,
    stop: watch::Sender<bool>,
    running: Vec<Running>,
}

impl Mesh {
    pub fn new(env: Env) -> Mesh {
        let (stop, _) = watch::channel(false);
        Mesh {
            env,
            stop,
            running: Vec::new(),
        }
    }

    pub fn env(&self) -> &Env {
        &self.env
    }

    /// Starts `def` on its `listen` address (port 0 picks a free one).
    pub async fn spawn(&mut self, def: &'static dyn ServiceDef) -> anyhow::Result<SocketAddr> {
        let name = def.name();
        let section = self.env.config.service(name)?;
        let policy = checked_policy(def)?;
        let listen = section.addr("listen")?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {name} to {listen} ({name}.listen)"))?;
        let addr = listener.local_addr()?;
        let pool = crate::migrate::connect(&self.env.config.database).await?;
        let applied = crate::migrate::run(&pool, name, &def.migrations()).await?;
        if applied > 0 {
            tracing::info!(service = name, applied, "migrations applied");
        }
        let sweep_pool = crate::idempotency::pg::has_table(&pool, name)
            .await?
            .then(|| pool.clone());
        let peers: BTreeMap<&'static str, SocketAddr> =
            self.running.iter().map(|r| (r.name, r.addr)).collect();
        let started = def
            .start(StartContext {
                config: &self.env.config,
                section,
                pool,
                redis: self.env.redis.clone(),
                minter: self.env.minter.as_ref(),
                private_key_file: &self.env.config.auth.private_key_file,
                peers: &peers,
                stop: self.stop.subscribe(),
            })
            .await
            .with_context(|| format!("starting {name}"))?;
        // Expired idempotency keys are deleted while the service runs (stopped with the mesh).
        if let Some(pool) = sweep_pool {
            tokio::spawn(crate::idempotency::pg::sweep_every(
                pool,
                name,
                self.env.config.idempotency.sweep_interval,
                stopped(self.stop.subscribe()),
            ));
        }
        let cfg = &self.env.config;
        let prefix = &cfg.redis.key_prefix;
        let verifier = self
            .env
            .verifier
            .clone()
            .with_revocations(self.env.redis.clone(), prefix);
        let idempotency = IdempotencyLayer::new(
            self.env.redis.clone(),
            prefix,
            policy.idempotent(),
            &cfg.idempotency,
        )
        .with_command_timeout(cfg.redis.command_timeout)
        .replayed_by_service(policy.replayed_by_service())
        .streamed(policy.streamed());
        let server = crate::server::Server {
            grpc_service: def.grpc_service(),
            policy: Arc::new(policy),
            verifier,
            idempotency,
            config: cfg.server.clone(),
        };
        let stop = stopped(self.stop.subscribe());
        let routes = started.routes;
        let task = tokio::spawn(async move { server.serve(routes, listener, stop).await });
        self.running.push(Running {
            name,
            addr,
            task,
            handle: started.handle,
        });
        Ok(addr)
    }

    /// Where `name` listens, if it runs here.
    pub fn addr(&self, name: &str) -> Option<SocketAddr> {
        self.running.iter().find(|r| r.name == name).map(|r| r.addr)
    }

    pub fn running(&self) -> impl Iterator<Item = (&'static str, SocketAddr)> + '_ {
        self.running.iter().map(|r| (r.name, r.addr))
    }

    /// The in-process handle `name` kept at start (tests call handlers through it).
    pub fn handle<T: Any + Send + Sync>(&self, name: &str) -> Option<Arc<T>> {
        let handle = self
            .running
            .iter()
            .find(|r| r.name == name)?
            .handle
            .clone()?;
        handle.downcast::<T>().ok()
    }

    /// Resolves when a service's server ends by itself (an error), naming it.
    pub async fn failed(&mut self) -> anyhow::Result<()> {
        if self.running.is_empty() {
            return std::future::pending().await;
        }
        let tasks = self.running.iter_mut().map(|r| {
            let name = r.name;
            Box::pin(async move { (name, (&mut r.task).await) })
        });
        let ((name, result), _, _) = futures::future::select_all(tasks).await;
        match result {
            Ok(Ok(())) => anyhow::bail!("{name} stopped serving"),
            Ok(Err(e)) => Err(e.context(format!("{name} failed"))),
            Err(e) => Err(anyhow::Error::from(e).context(format!("{name} task"))),
        }
    }

    /// Stops every service: NOT_SERVING, then a drain bounded by `server.shutdown_grace_ms`.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        for r in self.running {
            r.task
                .await
                .with_context(|| format!("{} task", r.name))?
                .with_context(|| format!("{} drain", r.name))?;
        }
        Ok(())
    }

    /// Asks every service to stop without waiting (tests dropping a mesh).
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

/// Resolves when `rx` sees `true` (or its sender is gone).
async fn stopped(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// The service's RPC table, refused if it and the proto disagree.
pub fn checked_policy(def: &dyn ServiceDef) -> anyhow::Result<Policy> {
    let grpc = def.grpc_service();
    let proto: Vec<String> = crate::descriptor::methods(grpc)?;
    let table: Vec<&str> = def.rpcs().iter().map(|r| r.method).collect();
    let missing: Vec<&String> = proto
        .iter()
        .filter(|m| !table.contains(&m.as_str()))
        .collect();
    let unknown: Vec<&&str> = table
        .iter()
        .filter(|m| !proto.iter().any(|p| p == **m))
        .collect();
    anyhow::ensure!(
        missing.is_empty() && unknown.is_empty(),
        "{}: the RPC table and {grpc} disagree: no rule for {missing:?}, rules for unknown {unknown:?}",
        def.name()
    );
    Ok(Policy::new(grpc, def.rpcs()))
}
