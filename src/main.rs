//! The `partner-credit` command: `load` runs a purchase load test (on an embedded engine by
//! default, or against a server); `bench` compares the runtimes side by side; `serve` is the
//! HTTP API server.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use partner_credit::bench::{self, BenchOptions};
use partner_credit::journal::FsyncPolicy;
use partner_credit::load::{self, LoadOptions, WorldSource};
use partner_credit::{Money, RuntimeKind, WorldSpec};

#[derive(Parser)]
#[command(name = "partner-credit", version, about = "In-memory credit engine for a cloud partner programme")]
struct Cli {
    #[command(subcommand)]
    command: Option<Commands>,
}

#[derive(Subcommand)]
enum Commands {
    /// Runs a purchase load test against an embedded engine (the default) or a server
    /// (--target), then reports latency, outcomes and an audit of the books.
    Load(Box<LoadArgs>),
    /// Compares the runtimes on one workload: a table of purchases/s and ratios.
    Bench(BenchArgs),
    /// Serves the API 3.0 HTTP API (the official SDKs and CLI talk to it unchanged).
    #[cfg(feature = "http")]
    Serve(ServeArgs),
}

#[cfg(feature = "http")]
#[derive(clap::Args)]
struct ServeArgs {
    /// The TOML configuration (see config/example.toml).
    #[arg(long)]
    config: std::path::PathBuf,
    /// Listen on this address instead of the configuration's (port 0 picks a free one).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Log level: error, warn, info, debug or trace.
    #[arg(long, default_value = "info")]
    log: tracing::Level,
    /// Keep a journal and snapshots in this directory, and recover from it at start
    /// (overrides `[engine] data_dir`); without one the state is in memory only.
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
    /// When the journal is fsynced: always (before every answer; the default), interval:<ms>
    /// or never (overrides `[engine] fsync`).
    #[arg(long)]
    fsync: Option<String>,
}

#[derive(clap::Args)]
struct BenchArgs {
    /// Seconds per row.
    #[arg(long, default_value_t = 3.0)]
    secs: f64,
    /// Customers in the generated world.
    #[arg(long, default_value_t = 100_000)]
    customers: usize,
    /// Write the rows as JSON to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Run only the rows whose name contains this, besides the limit, actix and dashmap
    /// rows (`durable`: the durable rows, their in-memory rows, fsync-limit and the recovery
    /// measurement, named `durable recovery`).
    #[arg(long)]
    only: Option<String>,
    /// The HTTP rows' server counts nothing for GET /metrics (`[admin] metrics = false`),
    /// to measure what counting costs.
    #[arg(long)]
    no_metrics: bool,
    /// Where the durable rows keep their journals (each row in a fresh directory inside,
    /// deleted after it; the directory too if the bench made it). Default:
    /// ./partner-credit-bench-data-<pid>. Give a directory on the disk to measure, not tmpfs.
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
    /// Keep-alive connections of the HTTP single-request rows, each with one request in
    /// flight (the batch rows use 4).
    #[arg(long, default_value_t = BenchOptions::default().http_connections)]
    http_connections: usize,
    /// The durable rows' fsync policy: always, interval:<ms> or never.
    #[arg(long, default_value = "always")]
    fsync: FsyncPolicy,
    /// The recovery measurement (in a whole run, or with --only recovery or durable): the
    /// customers in its data directory, with their partners (at most 10,000,000).
    #[arg(long, default_value_t = BenchOptions::default().recovery_accounts)]
    recovery_accounts: usize,
    /// The recovery measurement: the purchases journalled after the accounts (at most
    /// 100,000,000).
    #[arg(long, default_value_t = BenchOptions::default().recovery_purchases)]
    recovery_purchases: u64,
}

#[derive(clap::Args)]
struct LoadArgs {
    /// How long to run: seconds, or with a unit (500ms, 10s, 2m).
    #[arg(long = "duration-secs", visible_alias = "duration", default_value = "10", value_parser = parse_duration)]
    duration: Duration,
    /// Tasks, each with one request in flight (closed loop; in the open loop, the cap on
    /// requests in flight). Default 256 embedded; over HTTP the tasks are the connections.
    #[arg(long)]
    concurrency: Option<usize>,
    /// Open loop: purchases started per second, on a fixed schedule; latency counts from
    /// each request's due time.
    #[arg(long)]
    rate: Option<f64>,
    /// Purchases per request, with the batch action (CreatePurchases).
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Customers in the generated world (half under resellers, half under second-level resellers).
    #[arg(long, default_value_t = 100_000)]
    customers: usize,
    /// Credit allocated to each customer of the generated world.
    #[arg(long, default_value = "1000")]
    customer_credit: String,
    /// Amount of each purchase.
    #[arg(long, default_value = "1.00")]
    amount: String,
    /// Seed of the world and of the sequence of requests.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Runtime of the embedded engine: sharded or actix.
    #[arg(long, default_value = "sharded")]
    runtime: RuntimeKind,
    /// Stop after this many purchases even if time remains.
    #[arg(long)]
    purchases_max: Option<u64>,
    /// Write the generated world to this file (the format `serve` imports) and exit.
    #[arg(long)]
    write_world: Option<std::path::PathBuf>,
    /// Use this world file instead of a generated one (the file the server imported).
    #[arg(long)]
    world: Option<std::path::PathBuf>,
    /// Every purchase charges one partner: the one charged for the most customers.
    #[arg(long)]
    hot_partner: bool,
    /// Skewed customers: Zipf with this exponent (1.0 is classic Zipf).
    #[arg(long)]
    zipf: Option<f64>,
    /// Flows by weight: one-shot, reserve-commit, reserve-cancel, reserve-expire, allocate
    /// (e.g. one-shot=90,reserve-commit=5,reserve-cancel=2,reserve-expire=1,allocate=2).
    #[arg(long)]
    mix: Option<String>,
    /// Write the whole report as JSON to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Write the report as a self-contained HTML page with charts to this file.
    #[arg(long)]
    html: Option<std::path::PathBuf>,
    /// A pass/fail condition for the exit code: p99<5ms, refused<1%, errors<10,
    /// throughput>1000, ... (repeatable).
    #[arg(long = "threshold")]
    thresholds: Vec<String>,
    /// No progress line and no header: the report only.
    #[arg(long)]
    quiet: bool,
    /// Load a running server (http://HOST:PORT) instead of an embedded engine.
    #[arg(long)]
    target: Option<String>,
    /// The operator's SecretId on the server.
    #[arg(long)]
    secret_id: Option<String>,
    /// The operator's SecretKey on the server.
    #[arg(long)]
    secret_key: Option<String>,
    /// The server's configuration: its operator key, address and quotas (instead of
    /// --secret-id/--secret-key; --target overrides the address).
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// Keep-alive connections to the server, one per task (default: --concurrency, or 64).
    #[arg(long)]
    connections: Option<usize>,
    /// Journal the embedded engine's changes in this directory (created if missing; it must
    /// be new or empty, and is kept after the run).
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
    /// With --data-dir, when the journal is fsynced: always (before each answer; the
    /// default), interval:<ms> (answers first, an fsync at least every <ms>) or never (the
    /// system decides).
    #[arg(long)]
    fsync: Option<FsyncPolicy>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // With no subcommand, run the main job with its defaults.
    let command = cli.command.or_else(|| Cli::parse_from(["partner-credit", "load"]).command);
    let result = match command {
        Some(Commands::Load(args)) => run_load(*args),
        Some(Commands::Bench(args)) => run_bench(args),
        #[cfg(feature = "http")]
        Some(Commands::Serve(args)) => run_serve(args),
        None => unreachable!("load is the default"),
    };
    match result {
        Ok(ok) if ok => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run_load(args: LoadArgs) -> anyhow::Result<bool> {
    anyhow::ensure!(
        !args.duration.is_zero() && args.duration <= Duration::from_secs(86_400),
        "--duration must be between 0 and 86400 s"
    );
    let thresholds = args
        .thresholds
        .iter()
        .map(|text| load::threshold::Threshold::parse(text))
        .collect::<Result<Vec<_>, _>>()?;
    let spec = WorldSpec {
        customers: args.customers,
        customer_credit: parse_money("--customer-credit", &args.customer_credit)?,
        hot_partner: args.hot_partner,
        seed: args.seed,
        ..WorldSpec::default()
    };
    if let Some(path) = &args.write_world {
        let world = partner_credit::World::generate(&spec);
        world.save(path)?;
        eprintln!("partner-credit load: wrote a world of {} accounts to {}", world.len(), path.display());
        return Ok(true);
    }
    let (target, concurrency) = load_target(&args)?;
    let options = LoadOptions {
        target,
        duration: args.duration,
        concurrency,
        rate_per_sec: args.rate,
        batch: args.batch,
        world: match &args.world {
            Some(path) => WorldSource::File(path.clone()),
            None => WorldSource::Generate(spec),
        },
        amount: parse_money("--amount", &args.amount)?,
        purchases_max: args.purchases_max.unwrap_or(u64::MAX),
        seed: args.seed,
        hot_partner: args.hot_partner,
        zipf: args.zipf,
        mix: match &args.mix {
            Some(text) => load::mix::Mix::parse(text)?,
            None => load::mix::Mix::default(),
        },
        thresholds,
        quiet: args.quiet,
    };
    anyhow::ensure!(options.amount.is_positive(), "--amount must be greater than 0");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    if !args.quiet {
        let world = match &args.world {
            Some(path) => path.display().to_string(),
            None => format!("a generated world of {} customers", args.customers),
        };
        let model = match args.rate {
            Some(rate) => format!("open loop at {rate}/s"),
            None => "closed loop".to_string(),
        };
        eprintln!(
            "partner-credit load: {world}, {model}, {} tasks, {:.1} s, against {}",
            options.concurrency,
            options.duration.as_secs_f64(),
            args.target.as_deref().unwrap_or("an embedded engine")
        );
    }
    let report = runtime.block_on(load::run(&options))?;
    print!("{report}");
    if let Some(dir) = &args.data_dir {
        eprintln!("partner-credit load: the journal is kept in {}", dir.display());
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .map_err(|error| anyhow::anyhow!("writing {}: {error}", path.display()))?;
    }
    if let Some(path) = &args.html {
        std::fs::write(path, load::html::render(&report))
            .map_err(|error| anyhow::anyhow!("writing {}: {error}", path.display()))?;
    }
    Ok(report.ok())
}

/// The target and the number of tasks: embedded (256 by default), or a server with one
/// connection per task.
fn load_target(args: &LoadArgs) -> anyhow::Result<(load::Target, usize)> {
    let concurrency = args.concurrency.unwrap_or(256);
    if args.target.is_none() && args.config.is_none() {
        anyhow::ensure!(
            args.secret_id.is_none() && args.secret_key.is_none() && args.connections.is_none(),
            "--secret-id, --secret-key and --connections need --target or --config"
        );
        anyhow::ensure!(args.fsync.is_none() || args.data_dir.is_some(), "--fsync needs --data-dir");
        let target = load::Target::Embedded {
            runtime: args.runtime,
            data_dir: args.data_dir.clone(),
            fsync: args.fsync.unwrap_or_default(),
        };
        return Ok((target, concurrency));
    }
    anyhow::ensure!(
        args.data_dir.is_none() && args.fsync.is_none(),
        "--data-dir and --fsync journal an embedded engine: a server keeps its own journal"
    );
    #[cfg(feature = "http")]
    {
        use partner_credit::load::http::HttpTarget;
        let target = match (&args.config, &args.secret_id, &args.secret_key) {
            (Some(path), None, None) => {
                let config = partner_credit::api::config::ServerConfig::load(path)?;
                HttpTarget::from_config(&config, args.target.as_deref())?
            }
            (None, Some(id), Some(key)) => {
                HttpTarget::new(args.target.as_deref().unwrap_or_default(), id, key)?
            }
            (Some(_), _, _) => anyhow::bail!("give either --config or --secret-id/--secret-key, not both"),
            (None, _, _) => {
                anyhow::bail!("--target needs the operator's key: --secret-id and --secret-key, or --config")
            }
        };
        let connections = args.connections.or(args.concurrency).unwrap_or(64);
        anyhow::ensure!((1..=10_000).contains(&connections), "--connections must be between 1 and 10000");
        Ok((load::Target::Http(target), connections))
    }
    #[cfg(not(feature = "http"))]
    anyhow::bail!("--target and --config need the http feature")
}

/// Seconds (`10`, `0.5`) or a number with a unit (`500ms`, `10s`, `2m`).
fn parse_duration(text: &str) -> Result<Duration, String> {
    let (digits, scale) = if let Some(digits) = text.strip_suffix("ms") {
        (digits, 0.001)
    } else if let Some(digits) = text.strip_suffix('s') {
        (digits, 1.0)
    } else if let Some(digits) = text.strip_suffix('m') {
        (digits, 60.0)
    } else {
        (text, 1.0)
    };
    match digits.trim().parse::<f64>() {
        Ok(value) if value.is_finite() && value > 0.0 && value * scale <= 86_400.0 => {
            Ok(Duration::from_secs_f64(value * scale))
        }
        _ => Err(format!("{text:?} is not a duration between 0 and 86400 s (10, 10s, 500ms, 2m)")),
    }
}

fn run_bench(args: BenchArgs) -> anyhow::Result<bool> {
    let data_dir = args.data_dir.unwrap_or_else(bench::data_dir_default);
    if bench::on_tmpfs(&data_dir) {
        eprintln!(
            "partner-credit bench: warning: {} is on tmpfs (memory), where an fsync costs nothing: \
             the durable rows will not measure a disk; give --data-dir on one",
            data_dir.display()
        );
    }
    let options = BenchOptions {
        secs: args.secs,
        customers: args.customers,
        only: args.only,
        http_metrics: !args.no_metrics,
        data_dir: Some(data_dir.clone()),
        fsync: args.fsync,
        http_connections: args.http_connections,
        recovery_accounts: args.recovery_accounts,
        recovery_purchases: args.recovery_purchases,
        ..BenchOptions::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    println!(
        "partner-credit bench: {} customers, {:.1} s per row, purchases of 1.00 by uniformly random customers; \
         durable rows journal in {} (fsync {}; each row in a fresh directory, deleted after it)",
        options.customers,
        options.secs,
        data_dir.display(),
        options.fsync
    );
    println!("{}", bench::header());
    let report = runtime.block_on(bench::run(&options, |row| println!("{}", bench::format_row(row))))?;
    print!("{}", bench::format_recovery(&report.recovery));
    if let Some(path) = args.json {
        std::fs::write(&path, serde_json::to_string_pretty(&report)?)
            .map_err(|error| anyhow::anyhow!("writing {}: {error}", path.display()))?;
    }
    Ok(report.audit_ok())
}

#[cfg(feature = "http")]
fn run_serve(args: ServeArgs) -> anyhow::Result<bool> {
    tracing_subscriber::fmt().with_max_level(args.log).with_writer(std::io::stderr).init();
    let mut config = partner_credit::api::config::ServerConfig::load(&args.config)?;
    if let Some(dir) = args.data_dir {
        config.engine.data_dir = Some(dir);
    }
    if let Some(fsync) = args.fsync {
        config.engine.fsync = Some(fsync);
    }
    actix_web::rt::System::new().block_on(partner_credit::api::serve::serve(config, args.listen))?;
    Ok(true)
}

fn parse_money(flag: &str, text: &str) -> anyhow::Result<Money> {
    Money::parse(text).map_err(|error| anyhow::anyhow!("{flag}: {error}"))
}
