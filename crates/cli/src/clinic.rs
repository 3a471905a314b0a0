//! The clinic commands: `serve`, `user`, `backup`, `audit verify`. This is the composition root:
//! it reads the environment and files, picks the storage backend and wires the server together.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use ketaflow_app::accounts;
use ketaflow_clinic::protocol::ProtocolLibrary;
use ketaflow_server::{AppState, Settings, demo};
use ketaflow_store::{Actor, Store};
use time::OffsetDateTime;

/// The default database: a SQLite file in the working directory.
const DEFAULT_DB: &str = "sqlite://ketaflow.db";

#[derive(Debug, Args)]
pub(crate) struct DbArgs {
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB. Default: the configuration file's
    /// `database`, else sqlite://ketaflow.db in the working directory
    #[arg(long = "db", env = "KETAFLOW_DATABASE_URL")]
    url: Option<String>,
    /// The configuration file whose `database` is used when --db is not given
    #[arg(long, env = "KETAFLOW_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
}

impl DbArgs {
    /// The database: --db (or KETAFLOW_DATABASE_URL), else the configuration file's, else the
    /// default, the same precedence as `serve`.
    fn url(&self) -> Result<String> {
        if let Some(url) = &self.url {
            return Ok(url.clone());
        }
        let file = match crate::config::chosen_path(self.config.as_deref()) {
            Some(path) => crate::config::load(&path)?,
            None => crate::config::FileConfig::default(),
        };
        Ok(file.database.unwrap_or_else(|| DEFAULT_DB.to_owned()))
    }
}

/// `serve`'s flags. Each is optional: a flag wins over its environment variable, which wins over
/// the configuration file (`--config`), which wins over the default shown (see `config.rs`).
#[derive(Debug, Default, Args)]
pub(crate) struct ServeArgs {
    /// The configuration file (default /etc/ketaflow/ketaflow.toml when it exists)
    #[arg(long, env = "KETAFLOW_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "KETAFLOW_LISTEN", value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: sqlite://ketaflow.db]
    #[arg(long = "db", env = "KETAFLOW_DATABASE_URL")]
    db: Option<String>,
    /// Seed a demo clinic (a user per role, patients, plans) if the database has no patients
    #[arg(long, env = "KETAFLOW_DEMO", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    demo: Option<bool>,
    /// Use the protocol library in this directory (library.toml and *.toml) instead of the built-in one
    #[arg(long, env = "KETAFLOW_PROTOCOLS", value_name = "DIR")]
    protocols: Option<PathBuf>,
    /// Log as text lines or JSON lines [default: text]
    #[arg(long, env = "KETAFLOW_LOG_FORMAT", value_name = "text|json")]
    log_format: Option<crate::config::LogFormat>,
    /// Log as JSON lines (the same as --log-format json)
    #[arg(long, conflicts_with = "log_format")]
    log_json: bool,
    /// The clinic's time zone, an IANA name (America/New_York, Europe/London): every time shown or
    /// typed on a page is in it (times are stored in UTC). Default: this machine's zone. An
    /// administrator's choice on the clinic page replaces it
    #[arg(long, env = "KETAFLOW_TIME_ZONE", value_name = "ZONE")]
    time_zone: Option<String>,
    /// A TOML file with the wording of questionnaires the clinic holds a licence for (BPI-SF,
    /// QIDS-SR16, FIQR, MADRS...): one table per instrument with instruction, source, items and
    /// optional anchors; checked against each instrument before the server starts
    #[arg(long, env = "KETAFLOW_INSTRUMENT_WORDING", value_name = "FILE")]
    instrument_wording: Option<PathBuf>,
    /// Demo only: run the clinic clock this many times faster than real time (1–600), so that a
    /// rehearsal or a browser test can reach discharge without waiting 90 minutes. Every page
    /// shows it [default: 1]
    #[arg(long, env = "KETAFLOW_CLOCK_SPEED")]
    clock_speed: Option<f64>,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key
    #[arg(long, env = "KETAFLOW_TLS_CERT", value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM); needs --tls-cert
    #[arg(long, env = "KETAFLOW_TLS_KEY", value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Plain HTTP on an address other than loopback, because a reverse proxy in front terminates
    /// TLS (see the README's security section). Without it, that is refused.
    #[arg(long, env = "KETAFLOW_BEHIND_PROXY", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    behind_proxy: Option<bool>,
    /// Behind a proxy: a proxy (address, or range as ADDR/PREFIX) whose Forwarded or
    /// X-Forwarded-For header names the client; repeat for several. Default: this machine
    /// (127.0.0.0/8, ::1). Nobody else's such headers are believed.
    #[arg(long = "trusted-proxy", env = "KETAFLOW_TRUSTED_PROXIES", value_delimiter = ',', value_name = "ADDR[/PREFIX]", value_parser = crate::config::parse_net)]
    trusted_proxies: Vec<ipnet::IpNet>,
    /// Who may read /metrics: an address or ADDR/PREFIX range; repeat for several. Default: this
    /// machine only (127.0.0.0/8, ::1)
    #[arg(long = "metrics-from", env = "KETAFLOW_METRICS_FROM", value_delimiter = ',', value_name = "ADDR[/PREFIX]", value_parser = crate::config::parse_net)]
    metrics_from: Vec<ipnet::IpNet>,
    /// Sign the audit chain's head with this Ed25519 key (created 0600 when missing) every
    /// --checkpoint-minutes, appending to --checkpoints; keep both apart from the database
    #[arg(long, env = "KETAFLOW_CHECKPOINT_KEY", value_name = "FILE")]
    checkpoint_key: Option<PathBuf>,
    /// The checkpoint file the server appends to
    #[arg(long, env = "KETAFLOW_CHECKPOINTS", value_name = "FILE")]
    checkpoints: Option<PathBuf>,
    /// Minutes between checkpoints (1–1440) [default: 15]
    #[arg(long, env = "KETAFLOW_CHECKPOINT_MINUTES")]
    checkpoint_minutes: Option<u64>,
    /// Take bedside monitors' readings as HL7 v2 (IHE PCD-01 ORU^R01) over MLLP on this address,
    /// e.g. 127.0.0.1:2575. Only on loopback: MLLP carries no encryption of its own, so a monitor
    /// network reaches it through a TLS tunnel or gateway on this machine
    #[arg(long, env = "KETAFLOW_MLLP", value_name = "ADDR:PORT")]
    mllp: Option<SocketAddr>,
}

/// `serve`'s settings once flags, environment, file and defaults are merged.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Serve {
    pub(crate) config_file: Option<PathBuf>,
    pub(crate) listen: SocketAddr,
    pub(crate) db: String,
    pub(crate) demo: bool,
    pub(crate) protocols: Option<PathBuf>,
    pub(crate) log_format: crate::config::LogFormat,
    pub(crate) time_zone: Option<String>,
    pub(crate) instrument_wording: Option<PathBuf>,
    pub(crate) clock_speed: f64,
    pub(crate) tls: Option<(PathBuf, PathBuf)>,
    pub(crate) behind_proxy: bool,
    pub(crate) trusted_proxies: Vec<ipnet::IpNet>,
    pub(crate) metrics_from: Vec<ipnet::IpNet>,
    pub(crate) checkpoints: Option<(PathBuf, PathBuf)>,
    pub(crate) checkpoint_minutes: u64,
    pub(crate) mllp: Option<SocketAddr>,
}

impl ServeArgs {
    /// Merges the flags (and their environment variables, which clap has already read) over the
    /// configuration file and the defaults, and checks what only the merged whole can show.
    pub(crate) fn resolve(&self) -> Result<Serve> {
        let config_file = crate::config::chosen_path(self.config.as_deref());
        let file = match &config_file {
            Some(path) => crate::config::load(path)?,
            None => crate::config::FileConfig::default(),
        };
        let log_format = if self.log_json {
            Some(crate::config::LogFormat::Json)
        } else {
            self.log_format
        };
        let pair = |a: &Option<PathBuf>,
                    b: &Option<PathBuf>,
                    fa: &Option<PathBuf>,
                    fb: &Option<PathBuf>,
                    what: &str| {
            match (a.clone().or_else(|| fa.clone()), b.clone().or_else(|| fb.clone())) {
                (Some(a), Some(b)) => Ok(Some((a, b))),
                (None, None) => Ok(None),
                _ => Err(anyhow::anyhow!("{what}")),
            }
        };
        let serve = Serve {
            listen: self
                .listen
                .or(file.listen)
                .unwrap_or_else(|| "127.0.0.1:8080".parse().expect("an address")),
            db: self
                .db
                .clone()
                .or(file.database)
                .unwrap_or_else(|| DEFAULT_DB.to_owned()),
            demo: self.demo.or(file.demo).unwrap_or(false),
            protocols: self.protocols.clone().or(file.protocols),
            log_format: log_format.or(file.log_format).unwrap_or_default(),
            time_zone: self.time_zone.clone().or(file.time_zone),
            instrument_wording: self.instrument_wording.clone().or(file.instrument_wording),
            clock_speed: self.clock_speed.or(file.clock_speed).unwrap_or(1.0),
            tls: pair(
                &self.tls_cert,
                &self.tls_key,
                &file.tls_cert,
                &file.tls_key,
                "a TLS certificate needs its key and a key its certificate: give --tls-cert and --tls-key \
                 (or tls.cert and tls.key in the configuration file) together",
            )?,
            behind_proxy: self.behind_proxy.or(file.behind_proxy).unwrap_or(false),
            trusted_proxies: if self.trusted_proxies.is_empty() {
                file.trusted_proxies.unwrap_or_default()
            } else {
                self.trusted_proxies.clone()
            },
            metrics_from: if self.metrics_from.is_empty() {
                file.metrics_from.unwrap_or_default()
            } else {
                self.metrics_from.clone()
            },
            checkpoints: pair(
                &self.checkpoint_key,
                &self.checkpoints,
                &file.checkpoint_key,
                &file.checkpoints,
                "audit checkpoints need both a signing key and a checkpoint file: give --checkpoint-key and \
                 --checkpoints (or checkpoints.key and checkpoints.file) together",
            )?,
            checkpoint_minutes: self.checkpoint_minutes.or(file.checkpoint_minutes).unwrap_or(15),
            mllp: self.mllp.or(file.mllp),
            config_file,
        };
        if !(1..=1440).contains(&serve.checkpoint_minutes) {
            bail!(
                "--checkpoint-minutes {} is outside 1–1440",
                serve.checkpoint_minutes
            );
        }
        if !serve.trusted_proxies.is_empty() && !serve.behind_proxy {
            bail!(
                "--trusted-proxy takes effect only behind a proxy: add --behind-proxy (or proxy.behind = true)"
            );
        }
        check_transport(&serve)?;
        Ok(serve)
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Check a configuration file without starting the server: every unknown key, bad value and
    /// missing file is named with what is allowed, and the protocol library and questionnaire
    /// wording it points to are loaded as `serve` would. FILE defaults to --config, KETAFLOW_CONFIG
    /// or /etc/ketaflow/ketaflow.toml
    Check {
        /// The file to check
        file: Option<PathBuf>,
    },
}

/// `ketaflow config check`: the file alone (no flags), checked as `serve` would start from it.
pub(crate) fn config(command: &ConfigCommand) -> Result<()> {
    let ConfigCommand::Check { file } = command;
    let named = file
        .clone()
        .or_else(|| std::env::var_os("KETAFLOW_CONFIG").map(PathBuf::from));
    let Some(path) = crate::config::chosen_path(named.as_deref()) else {
        bail!(
            "no configuration file to check: none was named and {} does not exist",
            crate::config::DEFAULT_PATH
        );
    };
    let serve = ServeArgs {
        config: Some(path.clone()),
        ..ServeArgs::default()
    }
    .resolve()?;
    load_library(serve.protocols.as_deref()).with_context(|| format!("{}: protocols", path.display()))?;
    if let Some(wording) = &serve.instrument_wording {
        let text = std::fs::read_to_string(wording).with_context(|| {
            format!(
                "{}: instrument_wording: could not read {}",
                path.display(),
                wording.display()
            )
        })?;
        ketaflow_app::wording::WordingLibrary::with_clinic_file(&text)
            .with_context(|| format!("{}: instrument_wording {}", path.display(), wording.display()))?;
    }
    if let Some(zone) = &serve.time_zone {
        ketaflow_app::clinic_time::ClinicZone::named(zone).map_err(app_error)?;
    }
    use std::fmt::Write as _;
    let mut summary = format!("{}: ok\n", path.display());
    writeln!(
        summary,
        "  listen    {}{}",
        serve.listen,
        if serve.tls.is_some() { " (HTTPS)" } else { "" }
    )?;
    writeln!(summary, "  database  {}", redact(&serve.db))?;
    writeln!(
        summary,
        "  time zone {}",
        serve.time_zone.as_deref().unwrap_or("this machine's")
    )?;
    if let Some(mllp) = serve.mllp {
        writeln!(summary, "  MLLP      {mllp}")?;
    }
    let metrics: Vec<String> = serve.metrics_from.iter().map(ToString::to_string).collect();
    writeln!(
        summary,
        "  metrics   {}",
        if metrics.is_empty() {
            "this machine only".to_owned()
        } else {
            metrics.join(", ")
        }
    )?;
    // Written as one, and a closed pipe (`| head`) is an error returned, not a panic.
    std::io::Write::write_all(&mut std::io::stdout().lock(), summary.as_bytes())?;
    Ok(())
}

/// How long a client may take to send a request's headers, and how long a kept-alive connection
/// may sit idle waiting for the next request, before it is closed (slow-header attacks; OWASP
/// Denial of Service Cheat Sheet). Long answers such as the live event streams are not affected.
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long a graceful shutdown waits for requests in flight before it stops (event streams are
/// ended as it begins, so an open board does not hold it).
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// The proxies whose forwarded-for headers are believed: none without --behind-proxy; the ones
/// named, or this machine.
fn trusted_proxies(args: &Serve) -> ketaflow_server::proxy::TrustedProxies {
    use ketaflow_server::proxy::TrustedProxies;
    match (args.behind_proxy, args.trusted_proxies.is_empty()) {
        (false, _) => TrustedProxies::none(),
        (true, true) => TrustedProxies::loopback(),
        (true, false) => TrustedProxies::new(args.trusted_proxies.clone()),
    }
}

/// Refuses plain HTTP beyond this machine unless a proxy in front provides TLS.
fn check_transport(args: &Serve) -> Result<()> {
    let tls = args.tls.is_some();
    if !tls && !args.listen.ip().is_loopback() && !args.behind_proxy {
        anyhow::bail!(
            "refusing to serve plain HTTP on {}: clinical data must travel encrypted. Give --tls-cert and --tls-key, \
             or --behind-proxy when a reverse proxy in front terminates TLS, or listen on 127.0.0.1 (in the \
             configuration file: tls.cert and tls.key, or proxy.behind = true)",
            args.listen
        );
    }
    if let Some(mllp) = args.mllp
        && !mllp.ip().is_loopback()
    {
        anyhow::bail!(
            "refusing to take HL7 over plain MLLP on {mllp}: readings must travel encrypted. Listen on 127.0.0.1 and \
             reach it through a TLS tunnel or the monitors' gateway on this machine"
        );
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Create a user; prints a generated password unless --password-stdin is given
    Add {
        /// Login name
        username: String,
        /// administrator, physician, nurse or viewer
        #[arg(long)]
        role: String,
        /// Name shown in the interface
        #[arg(long)]
        display_name: Option<String>,
        /// Read the password from standard input instead of generating one
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List users
    List {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Disable a user and revoke their sessions
    Disable {
        /// Login name
        username: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Set a new generated password and revoke the user's sessions
    ResetPassword {
        /// Login name
        username: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Check the hash chain; fails and says where if any entry was altered, deleted or reordered.
    /// Then checks every record, vital-sign reading and user against it (a row edited in the
    /// database, or written without an audit entry, fails and is named).
    /// With --checkpoints, also checks it against the latest signed checkpoint (truncation and
    /// re-hashing, which the chain alone cannot show)
    Verify {
        #[command(flatten)]
        db: DbArgs,
        /// The checkpoint file written by `audit checkpoint`
        #[arg(long)]
        checkpoints: Option<PathBuf>,
        /// Accept checkpoints signed by this public key only (hex, as printed by `audit checkpoint`)
        #[arg(long)]
        public_key: Option<String>,
    },
    /// Sign the chain's head with an Ed25519 key kept apart from the database and append it to a
    /// checkpoint file (run it on a schedule, e.g. from cron, and keep both files off the
    /// database's machine)
    Checkpoint {
        #[command(flatten)]
        db: DbArgs,
        /// The signing key (created, mode 0600, when missing)
        #[arg(long)]
        key: PathBuf,
        /// The checkpoint file to append to
        #[arg(long)]
        to: PathBuf,
    },
}

#[derive(Debug, Args)]
pub(crate) struct BackupArgs {
    /// The backup file: where to write the copy (must not exist), or what to restore
    file: PathBuf,
    #[command(flatten)]
    db: DbArgs,
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")
}

async fn connect(db: &DbArgs) -> Result<Store> {
    connect_url(&db.url()?).await
}

async fn connect_url(url: &str) -> Result<Store> {
    Store::connect(url)
        .await
        .with_context(|| format!("could not open the database {}", redact(url)))
}

use crate::config::redact;

fn load_library(dir: Option<&Path>) -> Result<ProtocolLibrary> {
    let Some(dir) = dir else {
        return Ok(ProtocolLibrary::embedded());
    };
    let library = std::fs::read_to_string(dir.join("library.toml"))
        .with_context(|| format!("could not read {}/library.toml", dir.display()))?;
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("could not read {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "toml")
            && path.file_name().is_some_and(|n| n != "library.toml")
        {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            files.push((
                name,
                std::fs::read_to_string(&path)
                    .with_context(|| format!("could not read {}", path.display()))?,
            ));
        }
    }
    Ok(ProtocolLibrary::from_files(&library, files)?)
}

/// Creates the first administrator on an empty database and prints the one-time password.
async fn ensure_administrator(store: &Store) -> Result<()> {
    if let Some(password) = accounts::ensure_administrator(store, now())
        .await
        .map_err(app_error)?
    {
        println!("created the first administrator: username admin, one-time password {password}");
        println!("it must be changed at the first login (POST /api/v1/auth/password)");
    }
    Ok(())
}

pub(crate) fn serve(flags: &ServeArgs) -> Result<()> {
    let args = &flags.resolve()?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,tower_http=info,sqlx=warn".into());
    if args.log_format == crate::config::LogFormat::Json {
        tracing_subscriber::fmt().with_env_filter(filter).json().init();
    } else {
        // Colour only for a person at a terminal: a file or a journal gets plain lines.
        let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(terminal)
            .init();
    }
    if let Some(file) = &args.config_file {
        tracing::info!(file = %file.display(), "configuration file read (flags and KETAFLOW_* variables win over it)");
    }
    let library = load_library(args.protocols.as_deref())?;
    runtime()?.block_on(async {
        let store = connect_url(&args.db).await?;
        ensure_administrator(&store).await?;
        let (clock, mut settings) = clock_and_settings(args)?;
        settings.time_zone = match &args.time_zone {
            Some(name) => ketaflow_app::clinic_time::ClinicZone::named(name).map_err(app_error)?,
            None => ketaflow_app::clinic_time::ClinicZone::system(),
        };
        if let Some(file) = &args.instrument_wording {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("could not read the instrument wording file {}", file.display()))?;
            let library = ketaflow_app::wording::WordingLibrary::with_clinic_file(&text)
                .with_context(|| format!("in {}", file.display()))?;
            settings.wording = Arc::new(library);
        }
        let proxies = trusted_proxies(args);
        if !proxies.nets().is_empty() {
            let nets: Vec<String> = proxies.nets().iter().map(ToString::to_string).collect();
            tracing::info!(proxies = %nets.join(", "), "client addresses taken from these proxies' forwarded-for headers");
        }
        let metrics_access = if args.metrics_from.is_empty() {
            ketaflow_server::ops::MetricsAccess::loopback()
        } else {
            ketaflow_server::ops::MetricsAccess::from_nets(args.metrics_from.clone())
        };
        let state = AppState::new(store.clone(), library, clock, settings)
            .with_trusted_proxies(proxies)
            .with_metrics_access(metrics_access);
        let cleared = state
            .reconcile_in_progress()
            .await
            .map_err(|e| anyhow::anyhow!("could not reconcile the open sessions: {e}"))?;
        if cleared > 0 {
            tracing::info!(cleared, "closed sessions taken off the board index");
        }
        let followed_up = state
            .reconcile_open_risk_alerts()
            .await
            .map_err(|e| anyhow::anyhow!("could not reconcile the open risk alerts: {e}"))?;
        if followed_up > 0 {
            tracing::info!(followed_up, "followed-up risk alerts taken off the open index");
        }
        let zone = state
            .load_time_zone()
            .await
            .map_err(|e| anyhow::anyhow!("could not read the clinic's time zone: {e}"))?;
        tracing::info!(
            zone = zone.zone.name(),
            chosen_by = if zone.set_at.is_some() { "an administrator" } else { "the server's setting" },
            "clinic time zone"
        );
        if args.demo {
            let accounts = demo::seed(&state).await.map_err(|e| anyhow::anyhow!("could not seed the demo clinic: {e}"))?;
            for account in accounts {
                println!("demo account: {} ({}) password {}", account.username, account.role, account.password);
            }
        }
        // A running infusion past its planned dose or a hard limit, and vitals overdue, alarm even
        // if no reading arrives: checked every 15 s of clinic time (at most every 250 ms of real time).
        let every = std::time::Duration::from_secs_f64((15.0 / state.settings.clock_speed).max(0.25));
        let watch = state.start_watch(every);
        let checkpoints = match &args.checkpoints {
            Some((key_file, file)) => {
                let key = ketaflow_app::checkpoints::load_or_create_key(key_file).map_err(app_error)?;
                let (store, file) = (store.clone(), file.clone());
                let every = std::time::Duration::from_secs(args.checkpoint_minutes * 60);
                Some(tokio::spawn(async move {
                    let mut ticks = tokio::time::interval(every);
                    loop {
                        ticks.tick().await;
                        match ketaflow_app::checkpoints::write_checkpoint(&store, &key, &file, now()).await {
                            Ok(cp) => tracing::info!(seq = cp.seq, "audit checkpoint signed"),
                            // A broken chain is never signed over: say so loudly every round.
                            Err(e) => tracing::error!(error = %e, "audit checkpoint not signed"),
                        }
                    }
                }))
            }
            None => None,
        };
        let monitors = match args.mllp {
            Some(address) => {
                let listener = tokio::net::TcpListener::bind(address)
                    .await
                    .with_context(|| format!("could not listen for MLLP on {address} (is the address in use?)"))?;
                println!("ketaflow MLLP listening on mllp://{}", listener.local_addr()?);
                let state = state.clone();
                Some(tokio::spawn(ketaflow_server::mllp::serve(listener, state, std::future::pending())))
            }
            None => None,
        };
        let app = ketaflow_server::router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let handle = axum_server::Handle::new();
        let stopping = handle.clone();
        let signal = shutdown_signal();
        let live = state.live.clone();
        tokio::spawn(async move {
            signal.await;
            // Event streams never finish by themselves: end them first, or they would hold the
            // shutdown until the grace period runs out.
            live.close();
            stopping.graceful_shutdown(Some(SHUTDOWN_GRACE));
        });
        let timer = |builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>| {
            builder
                .http1()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
        };
        let scheme = if args.tls.is_some() { "https" } else { "http" };
        tracing::info!(address = %args.listen, %scheme, database = %redact(&args.db), library = %state.library.version, build = ketaflow_server::ops::build(), "ketaflow serving");
        match &args.tls {
            Some((cert, key)) => {
                let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                    .await
                    .with_context(|| format!("could not load the TLS certificate {} and key {}", cert.display(), key.display()))?;
                let mut server = axum_server::bind_rustls(args.listen, config).handle(handle.clone());
                timer(server.http_builder());
                let serving = tokio::spawn(async move { server.serve(app).await });
                announce(&handle, scheme).await?;
                serving.await.context("server task failed")?.context("server failed")?;
            }
            _ => {
                let mut server = axum_server::bind(args.listen).handle(handle.clone());
                timer(server.http_builder());
                let serving = tokio::spawn(async move { server.serve(app).await });
                announce(&handle, scheme).await?;
                serving.await.context("server task failed")?.context("server failed")?;
            }
        }
        watch.abort();
        if let Some(task) = monitors {
            task.abort();
        }
        if let Some(task) = checkpoints {
            task.abort();
        }
        store.close().await;
        tracing::info!("shut down cleanly");
        Ok(())
    })
}

/// Waits until the server listens and says where (or fails if it could not bind).
async fn announce(handle: &axum_server::Handle, scheme: &str) -> Result<()> {
    let address = handle
        .listening()
        .await
        .context("could not listen (is the address in use?)")?;
    println!("ketaflow listening on {scheme}://{address}");
    Ok(())
}

/// The clock the clinic runs on: the system clock, or for a demo a faster one (with a banner on
/// every page saying so). A simulated clock on a clinic's real database is refused.
fn clock_and_settings(args: &Serve) -> Result<(ketaflow_server::Clock, Settings)> {
    let speed = args.clock_speed;
    if !(1.0..=600.0).contains(&speed) {
        anyhow::bail!("--clock-speed {speed} is outside 1–600");
    }
    if speed == 1.0 {
        return Ok((Arc::new(now), Settings::default()));
    }
    if !args.demo {
        anyhow::bail!("--clock-speed is only for demo clinics (--demo): a real clinic runs on real time");
    }
    let start = now();
    let started = std::time::Instant::now();
    let clock: ketaflow_server::Clock =
        Arc::new(move || start + time::Duration::seconds_f64(started.elapsed().as_secs_f64() * speed));
    let settings = Settings {
        banner: Some(format!(
            "DEMO CLINIC — simulated clock running {speed}× real time; not for patients"
        )),
        clock_speed: speed,
        // Sign-in lifetimes are real time: a demo's fast clock must not sign people out in seconds.
        session_ttl: Settings::default().session_ttl * speed,
        browser_idle_timeout: Settings::default().browser_idle_timeout * speed,
        ..Settings::default()
    };
    Ok((clock, settings))
}

/// Waits for Ctrl-C or SIGTERM. The handlers are installed when this is called, not when the
/// future is first polled, so a signal that arrives as soon as the server says it listens is not
/// the default (killing) action.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let ctrl_c = tokio::signal::ctrl_c();
    async move {
        #[cfg(unix)]
        let terminate = async {
            match terminate {
                Some(mut signal) => {
                    signal.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {},
            () = terminate => {},
        }
    }
}

pub(crate) fn user(command: &UserCommand) -> Result<()> {
    runtime()?.block_on(async {
        let actor = Actor::system("cli");
        match command {
            UserCommand::Add {
                username,
                role,
                display_name,
                password_stdin,
                db,
            } => {
                let store = connect(db).await?;
                let (password, show) = if *password_stdin {
                    let mut line = String::new();
                    std::io::stdin()
                        .read_line(&mut line)
                        .context("could not read the password from standard input")?;
                    (line.trim_end_matches(['\r', '\n']).to_string(), false)
                } else {
                    (accounts::one_time_password(), true)
                };
                let body = accounts::UserIn {
                    username: username.clone(),
                    display_name: display_name.clone().unwrap_or_else(|| username.clone()),
                    role: role.clone(),
                    password: password.clone(),
                };
                // Someone other than the user chose this password: the user replaces it at first login.
                let user = accounts::add_user(&store, &actor, body, now())
                    .await
                    .map_err(app_error)?;
                let role = user.role;
                if show {
                    println!("created {username} ({role}); one-time password {password}");
                } else {
                    println!("created {username} ({role})");
                }
            }
            UserCommand::List { db } => {
                let store = connect(db).await?;
                println!("{:<24} {:<14} {:<9} display name", "username", "role", "status");
                for account in ketaflow_app::operations::all_accounts(&store, now())
                    .await
                    .map_err(app_error)?
                {
                    let u = account.user;
                    let status = if u.disabled {
                        "disabled"
                    } else if account.locked_until.is_some() {
                        "locked"
                    } else {
                        "active"
                    };
                    println!(
                        "{:<24} {:<14} {:<9} {}",
                        u.username, u.role, status, u.display_name
                    );
                }
            }
            UserCommand::Disable { username, db } => {
                let store = connect(db).await?;
                let user = store
                    .get_user_by_username(username)
                    .await?
                    .with_context(|| format!("no user {username}"))?;
                let (_, revoked) = accounts::set_user_disabled(&store, &actor, user.id, true, now())
                    .await
                    .map_err(app_error)?;
                println!("disabled {username}; revoked {revoked} session(s) and token(s)");
            }
            UserCommand::ResetPassword { username, db } => {
                let store = connect(db).await?;
                let user = store
                    .get_user_by_username(username)
                    .await?
                    .with_context(|| format!("no user {username}"))?;
                let password = accounts::one_time_password();
                accounts::reset_user_password(&store, &actor, user.id, &password, now())
                    .await
                    .map_err(app_error)?;
                println!("new one-time password for {username}: {password}");
            }
        }
        Ok(())
    })
}

fn app_error(e: ketaflow_app::AppError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

pub(crate) fn backup(args: &BackupArgs) -> Result<()> {
    runtime()?.block_on(async {
        let store = connect(&args.db).await?;
        let report = ketaflow_app::operations::backup(&store, &args.file)
            .await
            .map_err(app_error)
            .with_context(|| format!("could not back up to {}", args.file.display()))?;
        println!("backup written to {} ({report:?})", args.file.display());
        Ok(())
    })
}

pub(crate) fn restore(args: &BackupArgs) -> Result<()> {
    runtime()?.block_on(async {
        let store = connect(&args.db).await?;
        let (report, chain) = ketaflow_app::operations::restore(&store, &args.file)
            .await
            .map_err(app_error)
            .with_context(|| format!("could not restore {}", args.file.display()))?;
        if let Some(problem) = &chain.problem {
            bail!(
                "restored {} rows, but the audit chain is broken at entry {}: {:?}",
                report.rows,
                problem.seq,
                problem.kind
            );
        }
        println!(
            "restored {} rows from {}; audit chain intact ({} entries, last hash {})",
            report.rows,
            args.file.display(),
            chain.checked,
            chain.last_hash
        );
        store.close().await;
        Ok(())
    })
}

pub(crate) fn audit(command: &AuditCommand) -> Result<()> {
    use ketaflow_app::checkpoints::{
        CheckpointVerdict, load_or_create_key, verify_against, write_checkpoint,
    };
    let (db, checkpoints, public_key) = match command {
        AuditCommand::Checkpoint { db, key, to } => {
            return runtime()?.block_on(async {
                let store = connect(db).await?;
                let key = load_or_create_key(key).map_err(app_error)?;
                let cp = write_checkpoint(&store, &key, to, now())
                    .await
                    .map_err(app_error)?;
                println!(
                    "checkpoint signed: entry {} hash {} at {}; public key {}",
                    cp.seq, cp.hash, cp.at, cp.public_key
                );
                Ok(())
            });
        }
        AuditCommand::Verify {
            db,
            checkpoints,
            public_key,
        } => (db, checkpoints, public_key),
    };
    runtime()?.block_on(async {
        if let Some(file) = checkpoints {
            let store = connect(db).await?;
            match verify_against(&store, file, public_key.as_deref()).await.map_err(app_error)? {
                CheckpointVerdict::Holds { checkpoint, entries } => println!(
                    "checkpoint holds: entry {} still has the signed hash ({} entries now)",
                    checkpoint.seq, entries
                ),
                CheckpointVerdict::BadCheckpoint(why) => bail!("the latest checkpoint cannot be trusted: {why}"),
                CheckpointVerdict::Truncated { checkpoint_seq, entries } => bail!(
                    "audit log truncated: the checkpoint signed entry {checkpoint_seq}, the log now ends at {entries}"
                ),
                CheckpointVerdict::Rewritten { seq } => bail!(
                    "audit log rewritten: entry {seq} no longer has the hash the checkpoint signed (an entry at or before it was changed and the chain re-hashed)"
                ),
            }
        }
        let store = connect(db).await?;
        let report = ketaflow_app::operations::verify_audit_chain(&store)
            .await
            .map_err(app_error)?;
        match (report.problem_seq, report.problem) {
            (Some(seq), Some(kind)) => bail!(
                "audit chain broken at entry {seq}: {kind} ({} entries before it are intact)",
                report.checked
            ),
            _ => {
                println!(
                    "audit chain intact: {} entries, last hash {}",
                    report.checked, report.last_hash
                );
                let t = &report.tables;
                for p in &t.problems {
                    eprintln!("{} {}: {} ({})", p.table, p.id, p.kind, p.detail);
                }
                if !t.ok {
                    bail!(
                        "{} row(s) disagree with the audit log (listed above): changed or written behind the application's back",
                        t.problems.len()
                    );
                }
                println!(
                    "tables agree with the chain: {} records, {} vital-sign readings in {} batches, {} users",
                    t.records, t.vitals, t.vital_batches, t.users
                );
                Ok(())
            }
        }
    })
}
