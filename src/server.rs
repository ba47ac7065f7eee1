//! Start-up: turn options into a running server (used by `main` and by the
//! tests, which bind port 0 and shut down on drop).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::broker::{Broker, BrokerConfig};
use crate::config::{KexPolicy, MetricsListen, load_trusted_cas, load_users};
use crate::hostkey;
use crate::http;
use crate::identity::AuthMode;
use crate::metrics::{self, Metrics};
use crate::monitor::shared::{KvMonitors, MONITORS_BUCKET};
use crate::monitor::{Clock, MonitorLimits, Monitors};
use crate::ssh::{self, SshLimits};
use crate::store::Store;
use crate::tokens::Tokens;
use crate::tokens::shared::{KvTokens, TOKENS_BUCKET};

/// Everything needed to run the server, already checked.
#[derive(Debug, Clone)]
pub struct Options {
    pub ssh_listen: SocketAddr,
    /// `None`: no HTTP side door (`--http-listen off`).
    pub http_listen: Option<SocketAddr>,
    pub data_dir: PathBuf,
    /// `--host-key FILE`; `None`: the data dir's key, made if missing.
    pub host_key: Option<PathBuf>,
    pub users: Option<PathBuf>,
    pub auth: AuthMode,
    pub domain: String,
    /// `None`: the port actually bound.
    pub advertise_port: Option<u16>,
    pub ssh_limits: SshLimits,
    pub broker: BrokerConfig,
    /// Key exchange algorithms offered (SPEC §9).
    pub kex: KexPolicy,
    /// `--trusted-user-ca`: CA keys whose user certificates log in.
    pub trusted_user_ca: Option<PathBuf>,
    /// Where `/metrics` is served (SPEC §12).
    pub metrics_listen: MetricsListen,
    /// HTTP connection limits and `--http-anonymous` (SPEC §11).
    pub http: http::HttpLimits,
}

/// A started server. `shutdown` stops it; `join` waits for it.
pub struct Running {
    pub ssh_addr: SocketAddr,
    /// `None` when HTTP is off.
    pub http_addr: Option<SocketAddr>,
    /// `--metrics-listen ADDR`'s bound address (`None`: `http` or `off`).
    pub metrics_addr: Option<SocketAddr>,
    pub host_key_fingerprint: String,
    pub shutdown: CancellationToken,
    /// Ends once the SSH, HTTP and metrics sides have finished.
    pub join: JoinHandle<()>,
    /// The shared state, for in-process observers (tests, metrics).
    pub app: Arc<App>,
}

/// Checks the configuration, binds SSH (and HTTP, unless off), and starts
/// serving in the background.
pub async fn start(opts: Options) -> anyhow::Result<Running> {
    // Before any socket or file is opened (SPEC §2, §11.2).
    let open_files = http::raise_open_files_limit();
    let http_budget = http::connection_budget(opts.http.max_connections, open_files);
    let users = load_users(opts.users.as_deref(), opts.auth)?;
    let trusted_cas = load_trusted_cas(opts.trusted_user_ca.as_deref())?;
    hostkey::ensure_data_dir(&opts.data_dir)?;
    let key = match &opts.host_key {
        Some(file) => hostkey::load_given(file)?,
        None => hostkey::load_or_create(&opts.data_dir)?,
    };
    let host_key_fingerprint = hostkey::fingerprint(&key);
    let listener = TcpListener::bind(opts.ssh_listen)
        .await
        .with_context(|| format!("cannot listen on {} (SSH)", opts.ssh_listen))?;
    let ssh_addr = listener
        .local_addr()
        .context("reading the SSH listen address")?;
    let http_listener = match opts.http_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (HTTP)"))?,
        ),
        None => None,
    };
    let http_addr = http_listener
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()
        .context("reading the HTTP listen address")?;
    let metrics_listener = match opts.metrics_listen {
        MetricsListen::On(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (metrics)"))?,
        ),
        MetricsListen::Http | MetricsListen::Off => None,
    };
    let metrics_addr = metrics_listener
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()
        .context("reading the metrics listen address")?;
    // Opened before any port is bound: a bad store file is a start-up error.
    let store = Store::open(&opts.data_dir)?;
    let shutdown = CancellationToken::new();
    let broker =
        Broker::connect(opts.broker.clone(), Some(store.clone()), shutdown.clone()).await?;
    let tokens = open_tokens(&broker, &store, &shutdown).await?;
    let monitors = open_monitors(&broker, store, &shutdown).await?;
    let expiry = {
        let (broker, stop) = (broker.clone(), shutdown.clone());
        tokio::spawn(async move { broker.expire_until(stop).await })
    };
    let app = App::new(
        broker,
        users,
        trusted_cas,
        opts.auth,
        opts.domain.clone(),
        opts.advertise_port.unwrap_or(ssh_addr.port()),
        shutdown.clone(),
    );
    let http_anonymous = opts.http.anonymous.unwrap_or(opts.auth == AuthMode::Open);
    let app = app
        .with_metrics(Metrics::new(opts.metrics_listen == MetricsListen::Http))
        .with_tokens(tokens, http_anonymous)
        .with_monitors(monitors.clone());
    let app = Arc::new(app);
    // Timer and alert worker; its first look is the re-evaluation of the
    // monitors loaded from the store.
    let monitoring = {
        let stop = shutdown.clone();
        tokio::spawn(async move { monitors.run(stop).await })
    };
    let config = Arc::new(ssh::russh_config(key, &opts.ssh_limits, opts.kex));
    let ssh_task = tokio::spawn(ssh::serve(
        listener,
        Arc::clone(&app),
        config,
        opts.ssh_limits.clone(),
    ));
    if http_listener.is_some() {
        tracing::debug!(open_files = ?open_files, limit = http_budget, "HTTP connection budget");
    }
    let http_task = http_listener.map(|l| {
        let serve = http::serve(l, Arc::clone(&app), opts.http.clone(), http_budget);
        tokio::spawn(serve)
    });
    let metrics_task = metrics_listener.map(|l| tokio::spawn(metrics::serve(l, Arc::clone(&app))));
    let tasks = app.broker.tasks().clone();
    let join = tokio::spawn(async move {
        let _ = ssh_task.await;
        for t in [http_task, metrics_task].into_iter().flatten() {
            let _ = t.await;
        }
        let _ = expiry.await;
        let _ = monitoring.await;
        // Lines of departed round-robin workers still being handed on: the
        // clients are gone by now, so this ends at once or within the grace.
        tasks.close();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), tasks.wait()).await;
    });
    Ok(Running {
        ssh_addr,
        http_addr,
        metrics_addr,
        host_key_fingerprint,
        shutdown,
        join,
        app,
    })
}

/// Monitors: in the node's store, or — on NATS — in a bucket every node
/// shares, watched until shutdown (SPEC §14).
async fn open_monitors(
    broker: &Broker,
    store: Store,
    shutdown: &CancellationToken,
) -> anyhow::Result<Monitors> {
    let (clock, limits) = (Clock::system(), MonitorLimits::default());
    let Some(kv) = broker.shared_bucket(MONITORS_BUCKET).await else {
        return Ok(Monitors::open(
            Arc::new(store),
            broker.clone(),
            clock,
            limits,
        )?);
    };
    let kv =
        kv.map_err(|e| anyhow::anyhow!("cannot open the NATS bucket {MONITORS_BUCKET}: {e}"))?;
    let (shared, records) = KvMonitors::open(kv).await?;
    let monitors = Monitors::new(
        Arc::clone(&shared) as Arc<dyn crate::monitor::MonitorStore>,
        records,
        broker.clone(),
        clock,
        limits,
    );
    let node = broker.node_id().unwrap_or_default().to_string();
    tokio::spawn(crate::monitor::shared::watch(
        shared,
        monitors.clone(),
        node,
        shutdown.clone(),
    ));
    Ok(monitors)
}

/// HTTP tokens: in the node's store, or — on NATS — in a bucket every node
/// shares, watched until shutdown (SPEC §14).
async fn open_tokens(
    broker: &Broker,
    store: &Store,
    shutdown: &CancellationToken,
) -> anyhow::Result<Arc<Tokens>> {
    let Some(kv) = broker.shared_bucket(TOKENS_BUCKET).await else {
        let tokens = Tokens::open(Arc::new(store.clone()), shutdown.clone())?;
        return Ok(Arc::new(tokens));
    };
    let kv = kv.map_err(|e| anyhow::anyhow!("cannot open the NATS bucket {TOKENS_BUCKET}: {e}"))?;
    let (shared, rows) = KvTokens::open(kv).await?;
    let tokens = Arc::new(Tokens::with_rows(
        Arc::clone(&shared) as Arc<dyn crate::tokens::TokenStore>,
        rows,
        shutdown.clone(),
    ));
    let node = broker.node_id().unwrap_or_default().to_string();
    tokio::spawn(crate::tokens::shared::watch(
        shared,
        Arc::clone(&tokens),
        node,
        shutdown.clone(),
    ));
    Ok(tokens)
}
