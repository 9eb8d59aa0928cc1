//! `certusd`: one node of the certus replicated key-value store, serving the
//! Redis protocol.
//!
//! ```text
//! certusd --config node1.toml
//! certusd --node-id 1 --data-dir /var/lib/certus \
//!         --peer-listen 10.0.0.1:7001 --client-listen 10.0.0.1:6379 \
//!         --health-listen 10.0.0.1:9200 \
//!         --peer-ca ca.pem --peer-cert node-1.pem --peer-key node-1.key \
//!         --member 1=10.0.0.1:7001 --member 2=10.0.0.2:7001 --member 3=10.0.0.3:7001
//! ```
//!
//! Flags override the file. Logs go to standard error; `RUST_LOG` filters
//! them (default `info`). SIGINT or SIGTERM stops the node cleanly.
//!
//! `certusd certs` makes the cluster's CA (once) and node certificates for
//! peer TLS:
//!
//! ```text
//! certusd certs --dir certs --cluster certus --node 1 --node 2 --node 3
//! ```
//!
//! `certusd backup` copies a running node's data at one position into a
//! file; `certusd restore` seeds a new node's empty data directory from
//! one (docs/operations.md):
//!
//! ```text
//! CERTUS_PASSWORD=... certusd backup --addr 10.0.0.1:6379 --out certus.backup
//! certusd restore --config node1.toml --from certus.backup
//! ```

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

/// jemalloc, as Redis uses: glibc's malloc kept freed value buffers in its
/// arenas (see Cargo.toml).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use certus::NodeId;
use certus::net::CertificateAuthority;
use certus::server::{Daemon, DaemonConfig};
use clap::Parser;
use serde::Deserialize as _;

/// One certus node: synchronous multi-master replication, Redis protocol.
#[derive(Debug, Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// TOML configuration file (keys as in `certus::server::DaemonConfig`).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// This node's id (unique, never reused).
    #[arg(long)]
    node_id: Option<u64>,
    /// Cluster name; peers of other clusters are refused.
    #[arg(long)]
    cluster: Option<String>,
    /// Directory for the log and the data.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Peer (replication) address to bind.
    #[arg(long)]
    peer_listen: Option<String>,
    /// Redis-protocol address to bind.
    #[arg(long)]
    client_listen: Option<String>,
    /// HTTP health-check address to bind.
    #[arg(long)]
    health_listen: Option<String>,
    /// An initial member as ID=PEER_ADDRESS (repeat for each member).
    #[arg(long = "member", value_name = "ID=ADDR")]
    members: Vec<String>,
    /// Join a running cluster through this member's peer address (repeat
    /// for more seeds).
    #[arg(long = "join", value_name = "ADDR")]
    join: Vec<String>,
    /// Storage engine: fjall (the default), rocksdb, redb or memory.
    #[arg(long)]
    engine: Option<String>,
    /// The cluster CA's certificate, for verifying peers (PEM).
    #[arg(long)]
    peer_ca: Option<PathBuf>,
    /// This node's peer certificate, naming node-<ID> (PEM).
    #[arg(long)]
    peer_cert: Option<PathBuf>,
    /// This node's peer key (PEM).
    #[arg(long)]
    peer_key: Option<PathBuf>,
    /// Plaintext, unauthenticated peer links: only on a network nothing
    /// else can reach.
    #[arg(long)]
    insecure_peers: bool,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Make the cluster's CA (once) and certificates for nodes' peer TLS.
    Certs(CertsArgs),
    /// Copy a running node's data, as of one position, into a file.
    Backup(BackupArgs),
    /// Seed a new node's empty data directory from a backup file (on every
    /// node of the new cluster, before its first start).
    Restore(RestoreArgs),
}

/// The password, if the node wants one, comes from `CERTUS_PASSWORD` (not
/// the command line, where other users could read it).
#[derive(Debug, clap::Args)]
struct BackupArgs {
    /// The node's Redis-protocol address (plain TCP).
    #[arg(long)]
    addr: String,
    /// The user to authenticate as (with `CERTUS_PASSWORD`); it needs the
    /// `@admin` category.
    #[arg(long, default_value = "default")]
    user: String,
    /// The file to write (written to FILE.tmp, synced, then renamed).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Debug, clap::Args)]
struct RestoreArgs {
    /// The new node's configuration file; its data directory must be empty.
    #[arg(long, short)]
    config: PathBuf,
    /// The backup file.
    #[arg(long)]
    from: PathBuf,
}

/// Takes a backup from a running node.
fn backup(args: &BackupArgs) -> ExitCode {
    let password = std::env::var("CERTUS_PASSWORD").ok();
    let auth = password.as_deref().map(|p| (args.user.as_str(), p));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let taken = match runtime {
        Ok(runtime) => runtime.block_on(certus::server::backup::fetch(&args.addr, auth, &args.out)),
        Err(err) => {
            eprintln!("certusd backup: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match taken {
        Ok(summary) => {
            let _ = writeln!(
                std::io::stdout().lock(),
                "backup of {} at seqno {}: {} keys, {} bytes",
                args.addr,
                summary.seqno,
                summary.keys,
                summary.bytes
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("certusd backup: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Seeds a new node from a backup.
fn restore(args: &RestoreArgs) -> ExitCode {
    let config = std::fs::read_to_string(&args.config)
        .map_err(|e| format!("cannot read {}: {e}", args.config.display()))
        .and_then(|text| text.parse::<toml::Table>().map_err(|e| e.to_string()))
        .and_then(|table| DaemonConfig::deserialize(table).map_err(|e| e.to_string()));
    let config = match config {
        Ok(config) => config,
        Err(message) => {
            eprintln!("certusd restore: configuration: {message}");
            return ExitCode::from(2);
        }
    };
    match certus::server::backup::restore(&config, &args.from) {
        Ok(summary) => {
            let _ = writeln!(
                std::io::stdout().lock(),
                "restored {} keys (backup at seqno {}) into {}",
                summary.keys,
                summary.seqno,
                config.data_dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("certusd restore: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Files written: ca.pem and ca.key (the CA, reused when present; keep the
/// key off the nodes), node-<ID>.pem and node-<ID>.key for each node.
#[derive(Debug, clap::Args)]
struct CertsArgs {
    /// Directory of the CA and the node certificates (made if absent).
    #[arg(long)]
    dir: PathBuf,
    /// The cluster's name, as in the nodes' configuration.
    #[arg(long, default_value = "certus")]
    cluster: String,
    /// A node id to issue a certificate for (repeat for each node).
    #[arg(long = "node", value_name = "ID", required = true)]
    nodes: Vec<u64>,
    /// A host name or address to add to every node certificate besides
    /// node-<ID> (repeat), for tools that check them.
    #[arg(long = "host", value_name = "NAME")]
    hosts: Vec<String>,
}

/// Makes the CA if absent and issues each node's certificate.
fn certs(args: &CertsArgs) -> ExitCode {
    let issue = || -> Result<Vec<PathBuf>, certus::net::CertError> {
        let ca = CertificateAuthority::open_or_create(&args.dir, &args.cluster)?;
        let mut written = vec![args.dir.join("ca.pem")];
        for node in &args.nodes {
            let (cert, key) = ca.write_node(&args.dir, NodeId::new(*node), &args.hosts)?;
            written.extend([cert, key]);
        }
        Ok(written)
    };
    match issue() {
        Ok(written) => {
            let mut out = std::io::stdout().lock();
            for path in written {
                let _ = writeln!(out, "{}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("certusd certs: {err}");
            ExitCode::FAILURE
        }
    }
}

impl Args {
    /// The file's table with the flags laid over it.
    fn table(&self) -> Result<toml::Table, String> {
        let mut table = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                text.parse::<toml::Table>()
                    .map_err(|e| format!("{}: {e}", path.display()))?
            }
            None => toml::Table::new(),
        };
        let mut set = |key: &str, value: Option<toml::Value>| {
            if let Some(value) = value {
                table.insert(key.to_string(), value);
            }
        };
        let int = |v: u64| i64::try_from(v).map(toml::Value::Integer).ok();
        set("node_id", self.node_id.and_then(int));
        set("cluster", self.cluster.clone().map(toml::Value::String));
        let dir = self.data_dir.as_ref().map(|d| d.display().to_string());
        set("data_dir", dir.map(toml::Value::String));
        set(
            "peer_listen",
            self.peer_listen.clone().map(toml::Value::String),
        );
        set(
            "client_listen",
            self.client_listen.clone().map(toml::Value::String),
        );
        set(
            "health_listen",
            self.health_listen.clone().map(toml::Value::String),
        );
        set("engine", self.engine.clone().map(toml::Value::String));
        let path = |p: &Option<PathBuf>| {
            p.as_ref()
                .map(|p| toml::Value::String(p.display().to_string()))
        };
        set("peer_ca", path(&self.peer_ca));
        set("peer_cert", path(&self.peer_cert));
        set("peer_key", path(&self.peer_key));
        set(
            "insecure_peers",
            self.insecure_peers.then_some(toml::Value::Boolean(true)),
        );
        if !self.join.is_empty() {
            let seeds = self.join.iter().cloned().map(toml::Value::String).collect();
            table.insert("join".into(), toml::Value::Array(seeds));
        }
        if !self.members.is_empty() {
            let mut members = toml::Table::new();
            for member in &self.members {
                let (id, addr) = member
                    .split_once('=')
                    .ok_or_else(|| format!("--member {member}: expected ID=ADDR"))?;
                members.insert(id.to_string(), toml::Value::String(addr.to_string()));
            }
            table.insert("initial_members".into(), toml::Value::Table(members));
        }
        Ok(table)
    }
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    match &args.command {
        Some(Command::Certs(certs_args)) => return certs(certs_args),
        Some(Command::Backup(backup_args)) => return backup(backup_args),
        Some(Command::Restore(restore_args)) => return restore(restore_args),
        None => {}
    }
    let config = match args.table().and_then(|table| {
        DaemonConfig::deserialize(table).map_err(|e| format!("configuration: {e}"))
    }) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("certusd: {message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("certusd: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(config))
}

async fn run(config: DaemonConfig) -> ExitCode {
    let daemon = match start(config).await {
        Ok(daemon) => daemon,
        Err(err) => {
            tracing::error!(error = %err, "certusd did not start");
            return ExitCode::FAILURE;
        }
    };
    let code = tokio::select! {
        signal = wait_for_signal() => {
            match signal {
                Ok(signal) => tracing::info!(signal, "stopping"),
                Err(err) => tracing::error!(error = %err, "cannot wait for signals; stopping"),
            }
            ExitCode::SUCCESS
        }
        cause = daemon.failed() => {
            // Only a new process recovers from this, from what is durable:
            // exit non-zero so the service manager restarts it. Nothing
            // more becomes durable here, so the shutdown is bounded, in
            // case a task misses the signal as the sync-point task once
            // did (it waited for a second shutdown after a round the first
            // one ended: the Jepsen suite's log-io nodes took 10 s to exit).
            tracing::error!(error = %cause, "this node cannot go on: stopping, to be restarted from what is durable");
            if tokio::time::timeout(FAILED_SHUTDOWN, daemon.shutdown()).await.is_err() {
                tracing::error!(after = ?FAILED_SHUTDOWN, "the shutdown did not finish; exiting without it");
            }
            return ExitCode::from(EXIT_FAILED);
        }
    };
    daemon.shutdown().await;
    tracing::info!("stopped");
    code
}

/// How long a node that cannot go on waits for its shutdown.
const FAILED_SHUTDOWN: std::time::Duration = std::time::Duration::from_secs(10);

#[cfg(not(feature = "failpoints"))]
async fn start(config: DaemonConfig) -> Result<Daemon, certus::server::DaemonError> {
    Daemon::start(config).await
}

/// With `CERTUS_ENGINE_FAULT_FILE` set, the engine fails writes while that
/// file says `disk-full` (ENOSPC) or `io` (EIO), and the ordering log's
/// disk while it says `log-full` (writes fail with ENOSPC) or `log-io`
/// (fsyncs fail with EIO); it is read every 50 ms.
#[cfg(feature = "failpoints")]
async fn start(config: DaemonConfig) -> Result<Daemon, certus::server::DaemonError> {
    use certus::kv::{Engine, Fault, FaultSwitch, FaultyEngine};
    use std::sync::Arc;
    let Some(path) = std::env::var_os("CERTUS_ENGINE_FAULT_FILE") else {
        return Daemon::start(config).await;
    };
    tracing::warn!(file = ?path, "FAILPOINTS: the engine and the log fail on command");
    let (switch, log_switch) = (FaultSwitch::new(), FaultSwitch::new());
    let (polled, log_polled) = (switch.clone(), log_switch.clone());
    std::thread::spawn(move || {
        loop {
            let said = std::fs::read_to_string(&path).unwrap_or_default();
            let (engine, log) = match said.trim() {
                "disk-full" => (Fault::DiskFull, Fault::None),
                "io" => (Fault::Io, Fault::None),
                "log-full" => (Fault::None, Fault::DiskFull),
                "log-io" => (Fault::None, Fault::Io),
                _ => (Fault::None, Fault::None),
            };
            polled.set(engine);
            log_polled.set(log);
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    });
    certus::server::fail_log_disk(&config.data_dir, log_switch);
    let inner = certus::server::engine_opener(&config);
    let open: certus::server::EngineOpener = Arc::new(move || {
        let engine: Arc<dyn Engine> = Arc::new(FaultyEngine::new(inner()?, switch.clone()));
        Ok(engine)
    });
    let listeners = certus::server::Listeners::bind(&config).await?;
    Daemon::start_with_engine(config, listeners, open).await
}

/// The exit status of a node that stopped because it failed while running
/// (as opposed to 1, did not start, and 2, bad configuration).
const EXIT_FAILED: u8 = 3;

async fn wait_for_signal() -> std::io::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.map(|()| "SIGINT"),
        _ = terminate.recv() => Ok("SIGTERM"),
    }
}
