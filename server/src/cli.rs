//! The command line: `segkit init | sync | evaluate | run | serve | keys | users`.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use segkit::auth::Role;
use segkit::workflow::ServeOptions;
use segkit::{ApplyOptions, CancellationToken, Error, IngestControl, Workspace};
use serde_json::{json, Value};

use crate::api::{self, ServerOptions};
use crate::error::{error_path, exit_code, EXIT_CANCELLED, EXIT_ERROR, EXIT_OK};

const EXIT_CODES: &str = "\
Exit codes:
  0    success
  1    failure of storage, the engine or the process
  2    wrong command line (unknown flag, missing argument)
  3    not found (entity, segment, source, key, run, workspace)
  4    conflict (another writer got there first, or it exists already); retrying may succeed
  5    invalid input (definition, rule, argument)
  6    a source or an ingest failed
  130  cancelled (Ctrl-C / SIGTERM) before anything was committed";

/// segkit: entity segmentation and automation, as one command.
#[derive(Debug, Parser)]
#[command(name = "segkit", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    /// The workspace directory.
    #[arg(long, short = 'w', global = true, env = "SEGKIT_WORKSPACE", default_value = ".")]
    pub workspace: PathBuf,
    /// Print results as JSON (one document on stdout) instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a workspace directory (or open an existing one and report it).
    Init {
        /// The directory.
        dir: PathBuf,
    },
    /// Sync a named source now (from its cursor when it is incremental).
    Sync {
        /// The source's name.
        source: String,
    },
    /// Evaluate a segment now and store the run.
    Evaluate {
        /// The segment's name.
        segment: String,
        /// Also evaluate the segments that depend on it, in order.
        #[arg(long)]
        with_dependents: bool,
    },
    /// Run the scheduler (due syncs, evaluations, workflows, dispatch) until Ctrl-C or SIGTERM.
    Run(RunArgs),
    /// Serve the REST API (/api/v1, docs at /api/docs/) until Ctrl-C or SIGTERM.
    Serve(ServeArgs),
    /// Show what `apply` would create, change or delete to make the workspace match a project file (or a
    /// directory of them). Exits 5 (invalid) when the project has destructive changes not allowed.
    Plan(ProjectArgs),
    /// Make the workspace match a project file (or directory), in one catalog transaction: all or nothing.
    Apply(ProjectArgs),
    /// Write the workspace's definitions as a project file (applying it again changes nothing).
    Export {
        /// Where to write it (standard output without it).
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// `toml` or `yaml` (default: from the output's extension, else toml).
        #[arg(long)]
        format: Option<String>,
    },
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// List who holds API keys.
    #[command(subcommand)]
    Users(UsersCommand),
}

/// The project of `plan` / `apply` and how to treat what it does not say.
#[derive(Debug, Clone, Args)]
pub struct ProjectArgs {
    /// A project file (.toml, .yaml, .yml) or a directory of them.
    pub project: PathBuf,
    /// Allow destructive entity changes (dropped attributes, changed types or keys on entities holding data).
    #[arg(long)]
    pub allow_destructive: bool,
    /// Delete the workspace's objects that the project does not define.
    #[arg(long)]
    pub prune: bool,
}

/// Options of the scheduler loop.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Longest sleep between two scheduler passes, in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub poll_interval: f64,
    /// On shutdown, how long deliveries in flight may take to finish, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub grace: f64,
    /// Deliveries sent at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Most deliveries a dispatch processes at once, sent with their outcome not yet recorded: what a killed
    /// process may send again (1 to 65536; default 2 × --concurrency, at least 1024 with --durable).
    #[arg(long)]
    pub delivery_window: Option<usize>,
    /// Sync every catalog commit, and every Parquet file it references, to disk before it counts as done
    /// (SQLite synchronous = FULL, fsync of each new file and its directory): a recorded delivery outcome, a
    /// committed sync or an answered write survives a power loss, not only a crash.
    #[arg(long)]
    pub durable: bool,
}

impl RunArgs {
    /// The workspace options these scheduler options imply.
    fn workspace_options(&self) -> segkit::WorkspaceOptions {
        let options = segkit::WorkspaceOptions::default().durable_commits(self.durable);
        match self.delivery_window {
            Some(w) => options.delivery_window(w),
            None => options,
        }
    }
}

/// Options of the HTTP server.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (loopback by default; port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// Also run the scheduler loop in this process.
    #[arg(long)]
    pub with_scheduler: bool,
    /// Requests per minute per client address (0: no limit).
    #[arg(long, default_value_t = 6000)]
    pub rate_limit: u32,
    /// Lifetime of session tokens, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub token_ttl: u64,
    /// Name of the environment variable holding the token signing secret (at least 32 bytes); without it,
    /// a random secret is used and tokens end with the process.
    #[arg(long, default_value = "SEGKIT_TOKEN_SECRET")]
    pub token_secret_env: String,
    /// Serve HTTPS with this PEM certificate chain (leaf first); needs --tls-key.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Largest file one upload (POST /api/v1/entities/{name}/upload) may send, in bytes.
    #[arg(long, default_value_t = segkit::limits::MAX_UPLOAD_BYTES)]
    pub upload_limit: usize,
    /// Scheduler options (with --with-scheduler), and --durable.
    #[command(flatten)]
    pub run: RunArgs,
}

/// `segkit keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; its secret is printed once and never stored.
    Create {
        /// Who will hold it (a person or a service).
        #[arg(long)]
        name: String,
        /// admin, editor or viewer.
        #[arg(long)]
        role: String,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key by id: it and its session tokens stop working.
    Revoke {
        /// The key's id (`key_…`).
        id: String,
    },
}

/// `segkit users …`
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Every key holder with their roles and number of active keys.
    List,
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let json = cli.json;
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(e) => {
            if json {
                let v = json!({"error": {"kind": e.kind().as_str(), "message": e.to_string(), "path": error_path(&e)}});
                println!("{v}");
            }
            eprintln!("error: {e}");
            ExitCode::from(exit_code(e.kind()))
        }
    }
}

/// Prints `value` as JSON or `human` as text.
fn emit(json: bool, value: Value, human: impl FnOnce() -> String) {
    let mut out = std::io::stdout().lock();
    let _ = if json { writeln!(out, "{value}") } else { writeln!(out, "{}", human()) };
}

/// A token cancelled by the first SIGINT or SIGTERM; a second one ends the process at once.
fn shutdown_on_signals() -> segkit::Result<CancellationToken> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let token = CancellationToken::new();
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    let t = token.clone();
    std::thread::Builder::new().name("segkit-signals".into()).spawn(move || {
        let mut seen = 0;
        for _ in signals.forever() {
            seen += 1;
            if seen == 1 {
                t.cancel();
                // Not eprintln!: with stderr closed it would panic and take the signal thread with it.
                let _ = writeln!(std::io::stderr(), "shutting down (again to stop at once)…");
            } else {
                std::process::exit(i32::from(EXIT_CANCELLED));
            }
        }
    })?;
    Ok(token)
}

/// Opens an existing workspace (commands other than `init` never create one by accident).
async fn existing(dir: &Path) -> segkit::Result<Workspace> {
    existing_with(dir, segkit::WorkspaceOptions::default()).await
}

/// [`existing`], opened with `options`.
async fn existing_with(dir: &Path, options: segkit::WorkspaceOptions) -> segkit::Result<Workspace> {
    if !dir.join("segkit.db").is_file() {
        return Err(Error::NotFound {
            kind: "workspace",
            name: format!("{} (create one with `segkit init {}`)", dir.display(), dir.display()),
            hint: Default::default(),
        });
    }
    crate::open_workspace_with(dir, options).await
}

/// The error of a plan that has destructive changes the options do not allow.
fn blocked(plan: &segkit::project::Plan) -> Error {
    let names: Vec<String> = plan.destructive().map(|c| format!("{:?} `{}`", c.kind, c.name)).collect();
    Error::IncompatibleChange {
        path: "project".into(),
        message: format!("destructive changes to {} (run with --allow-destructive to apply them)", names.join(", ")),
    }
}

fn seconds(what: &str, s: f64) -> segkit::Result<Duration> {
    Duration::try_from_secs_f64(s)
        .map_err(|_| Error::InvalidArgument(format!("{what}: {s} is not a duration in seconds")))
}

fn serve_options(a: &RunArgs) -> segkit::Result<ServeOptions> {
    Ok(ServeOptions::default()
        .poll_interval(seconds("--poll-interval", a.poll_interval)?)
        .grace(seconds("--grace", a.grace)?)
        .concurrency(a.concurrency.max(1)))
}

async fn run(cli: Cli) -> segkit::Result<()> {
    let json = cli.json;
    match cli.command {
        Command::Init { dir } => {
            let existed = dir.join("segkit.db").is_file();
            let ws = crate::open_workspace(&dir).await?;
            let path = ws.path().display().to_string();
            emit(json, json!({"workspace": path, "created": !existed}), || {
                format!("{} workspace at {path}", if existed { "opened existing" } else { "created" })
            });
        }
        Command::Sync { source } => {
            let ws = existing(&cli.workspace).await?;
            let token = shutdown_on_signals()?;
            let mut control = IngestControl::new().cancel_with(token);
            if !json && std::io::stderr().is_terminal() {
                control = control.progress_interval(Duration::from_millis(500)).on_progress(|p| {
                    eprint!(
                        "\r{} rows read, {:.0} rows/s, {:.1} s   ",
                        p.rows_read,
                        p.rows_per_second(),
                        p.elapsed.as_secs_f64()
                    );
                    if p.done {
                        eprintln!();
                    }
                });
            }
            let r = ws.sync_with(&source, &control).await?;
            emit(json, json!(r), || {
                format!(
                    "synced `{source}` into `{}`: {} rows read, {} written ({} inserted, {} updated), {} quarantined, \
                     snapshot {}, {:.0} ms",
                    r.entity,
                    r.rows_read,
                    r.rows_written,
                    r.rows_inserted,
                    r.rows_updated,
                    r.rows_quarantined,
                    r.snapshot.map(|s| s.to_string()).unwrap_or_else(|| "unchanged".into()),
                    r.duration_ms
                )
            });
        }
        Command::Evaluate { segment, with_dependents } => {
            let ws = existing(&cli.workspace).await?;
            let runs = if with_dependents {
                ws.evaluate_with_dependents(&segment).await?
            } else {
                vec![ws.evaluate(&segment).await?]
            };
            for r in &runs {
                ws.audit("cli", "segment.evaluate", &r.segment, Some(&format!("run={}", r.run)))?;
            }
            let v: Vec<Value> = runs
                .iter()
                .map(|r| {
                    json!({"segment": r.segment, "run": r.run, "count": r.count, "entered": r.entered.num_rows(),
                           "exited": r.exited.num_rows(), "duration_ms": r.duration.as_secs_f64() * 1000.0})
                })
                .collect();
            let v = if with_dependents { Value::Array(v) } else { v.into_iter().next().unwrap_or_default() };
            emit(json, v, || {
                runs.iter()
                    .map(|r| {
                        format!(
                            "`{}` run {}: {} members, {} entered, {} exited ({:.0} ms)",
                            r.segment,
                            r.run,
                            r.count,
                            r.entered.num_rows(),
                            r.exited.num_rows(),
                            r.duration.as_secs_f64() * 1000.0
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        Command::Plan(a) => {
            let ws = existing(&cli.workspace).await?;
            let project = segkit::Project::from_path(&a.project)?;
            let options = ApplyOptions { allow_destructive: a.allow_destructive, prune: a.prune };
            let plan = ws.plan_with(&project, options).await?;
            emit(json, json!(plan), || plan.to_string());
            if plan.blocked {
                return Err(blocked(&plan));
            }
        }
        Command::Apply(a) => {
            let ws = existing(&cli.workspace).await?;
            let project = segkit::Project::from_path(&a.project)?;
            let options = ApplyOptions { allow_destructive: a.allow_destructive, prune: a.prune };
            let plan = ws.apply(&project, options).await?;
            if !plan.is_noop() {
                ws.audit("cli", "project.apply", &a.project.display().to_string(), None)?;
            }
            emit(json, json!(plan), || plan.to_string());
        }
        Command::Export { output, format } => {
            let ws = existing(&cli.workspace).await?;
            let format = format.unwrap_or_else(|| match output.as_ref().and_then(|o| o.extension()) {
                Some(e) if e == "yaml" || e == "yml" => "yaml".into(),
                _ => "toml".into(),
            });
            let text = ws.export()?.to_text(&format)?;
            match &output {
                Some(path) => {
                    std::fs::write(path, &text)?;
                    emit(json, json!({"written": path.display().to_string(), "format": format}), || {
                        format!("wrote {}", path.display())
                    });
                }
                None => {
                    let _ = std::io::stdout().lock().write_all(text.as_bytes());
                }
            }
        }
        Command::Run(a) => {
            let ws = existing_with(&cli.workspace, a.workspace_options()).await?;
            let options = serve_options(&a)?;
            let token = shutdown_on_signals()?;
            if !json {
                eprintln!("scheduler running on {} (Ctrl-C to stop)", ws.path().display());
            }
            let r = ws.serve(options, token).await?;
            emit(json, json!(r), || {
                format!(
                    "scheduler stopped: {} passes, {} jobs ({} failed), {} delivered, {} released",
                    r.passes, r.jobs, r.failed_jobs, r.delivered, r.released
                )
            });
        }
        Command::Serve(a) => {
            let ws = existing_with(&cli.workspace, a.run.workspace_options()).await?;
            let tls = match (&a.tls_cert, &a.tls_key) {
                (Some(cert), Some(key)) => Some(crate::tls::server_config(cert, key)?),
                _ => None,
            };
            let secret = std::env::var(&a.token_secret_env).ok().filter(|s| !s.is_empty()).map(String::into_bytes);
            let options = ServerOptions {
                token_ttl: Duration::from_secs(a.token_ttl),
                token_secret: secret,
                rate_limit_per_minute: (a.rate_limit > 0).then_some(a.rate_limit),
                upload_limit: a.upload_limit,
                ..ServerOptions::default()
            };
            let app = api::app(ws.clone(), &options)?;
            let listener = tokio::net::TcpListener::bind(a.bind).await?;
            let addr = listener.local_addr()?;
            let token = shutdown_on_signals()?;
            let scheduler = if a.with_scheduler {
                let (ws, options, token) = (ws.clone(), serve_options(&a.run)?, token.clone());
                Some(tokio::spawn(async move { ws.serve(options, token).await }))
            } else {
                None
            };
            let scheme = if tls.is_some() { "https" } else { "http" };
            emit(json, json!({"listening": addr.to_string(), "scheme": scheme, "scheduler": a.with_scheduler}), || {
                format!("listening on {scheme}://{addr}/api/v1 (docs: {scheme}://{addr}/api/docs/); Ctrl-C to stop")
            });
            match tls {
                Some(config) => crate::tls::serve(listener, config, app, token).await?,
                None => api::serve(listener, app, token).await?,
            }
            if let Some(s) = scheduler {
                match s.await {
                    Ok(r) => {
                        r?;
                    }
                    Err(e) => return Err(Error::InvalidArgument(format!("the scheduler task failed: {e}"))),
                }
            }
        }
        Command::Keys(k) => {
            let ws = existing(&cli.workspace).await?;
            match k {
                KeysCommand::Create { name, role } => {
                    let role: Role = role.parse()?;
                    let k = ws.create_api_key(&name, role, "cli")?;
                    let mut v = json!(k.key);
                    v["secret"] = Value::String(k.secret.clone());
                    emit(json, v, || {
                        format!(
                            "created key {} for `{}` ({}). Its secret, shown only now:\n{}",
                            k.key.id, k.key.name, k.key.role, k.secret
                        )
                    });
                }
                KeysCommand::List => {
                    let keys = ws.api_keys()?;
                    emit(json, json!(keys), || {
                        if keys.is_empty() {
                            return "no API keys (create one with `segkit keys create --name NAME --role admin`)"
                                .into();
                        }
                        keys.iter()
                            .map(|k| {
                                format!(
                                    "{}  {:<7}  {}  created {}{}",
                                    k.id,
                                    k.role.as_str(),
                                    k.name,
                                    k.created_at,
                                    k.revoked_at.as_ref().map(|r| format!("  REVOKED {r}")).unwrap_or_default()
                                )
                            })
                            .collect::<Vec<_>>()
                            .join("\n")
                    });
                }
                KeysCommand::Revoke { id } => {
                    let k = ws.revoke_api_key(&id, "cli")?;
                    emit(json, json!(k), || format!("revoked key {} of `{}`", k.id, k.name));
                }
            }
        }
        Command::Users(UsersCommand::List) => {
            let ws = existing(&cli.workspace).await?;
            let mut users: std::collections::BTreeMap<String, (std::collections::BTreeSet<Role>, usize)> =
                Default::default();
            for k in ws.api_keys()? {
                let e = users.entry(k.name.clone()).or_default();
                if k.revoked_at.is_none() {
                    e.0.insert(k.role);
                    e.1 += 1;
                }
            }
            let v: Vec<Value> = users
                .iter()
                .map(|(n, (roles, active))| json!({"name": n, "roles": roles, "active_keys": active}))
                .collect();
            emit(json, json!(v), || {
                users
                    .iter()
                    .map(|(n, (roles, active))| {
                        let roles: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
                        format!(
                            "{n}  roles: {}  active keys: {active}",
                            if roles.is_empty() { "-".into() } else { roles.join(",") }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    Ok(())
}
