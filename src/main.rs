//! The `partner-credit` command: `load` runs a purchase load test on an embedded engine;
//! `bench` compares the runtimes side by side; `serve` is the HTTP API server.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use partner_credit::bench::{self, BenchOptions};
use partner_credit::load::{self, LoadOptions};
use partner_credit::{Money, RuntimeKind, WorldSpec};

#[derive(Parser)]
#[command(name = "partner-credit", version, about = "In-memory credit engine for a cloud partner programme")]
struct Cli {
    #[command(subcommand)]
    command: Option<Commands>,
}

#[derive(Subcommand)]
enum Commands {
    /// Builds a generated hierarchy in an embedded engine and runs a purchase load test.
    Load(LoadArgs),
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
    /// Run only the rows whose name contains this, besides the limit and actix rows.
    #[arg(long)]
    only: Option<String>,
}

#[derive(clap::Args)]
struct LoadArgs {
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 10.0)]
    duration_secs: f64,
    /// Concurrent tasks, each with one purchase in flight.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Customers in the generated world (half under resellers, half under second-level resellers).
    #[arg(long, default_value_t = 100_000)]
    customers: usize,
    /// Credit allocated to each customer.
    #[arg(long, default_value = "1000")]
    customer_credit: String,
    /// Amount of each purchase.
    #[arg(long, default_value = "1.00")]
    amount: String,
    /// Seed of the world and of the purchase sequence.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Runtime: sharded or actix.
    #[arg(long, default_value = "sharded")]
    runtime: RuntimeKind,
    /// Stop after this many purchases even if time remains.
    #[arg(long)]
    purchases_max: Option<u64>,
    /// Write the generated world to this file (the format `serve` imports) and exit.
    #[arg(long)]
    write_world: Option<std::path::PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // With no subcommand, run the main job with its defaults.
    let command = cli.command.or_else(|| Cli::parse_from(["partner-credit", "load"]).command);
    let result = match command {
        Some(Commands::Load(args)) => run_load(args),
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
        args.duration_secs.is_finite() && args.duration_secs > 0.0 && args.duration_secs <= 86_400.0,
        "--duration-secs must be between 0 and 86400"
    );
    let options = LoadOptions {
        runtime: args.runtime,
        duration: Duration::from_secs_f64(args.duration_secs),
        concurrency: args.concurrency,
        world: WorldSpec {
            customers: args.customers,
            customer_credit: parse_money("--customer-credit", &args.customer_credit)?,
            ..WorldSpec::default()
        },
        amount: parse_money("--amount", &args.amount)?,
        purchases_max: args.purchases_max.unwrap_or(u64::MAX),
        seed: args.seed,
    };
    anyhow::ensure!(options.amount.is_positive(), "--amount must be greater than 0");
    if let Some(path) = &args.write_world {
        let world = partner_credit::World::generate(&options.world);
        world.save(path)?;
        eprintln!("partner-credit load: wrote a world of {} accounts to {}", world.len(), path.display());
        return Ok(true);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    eprintln!(
        "partner-credit load: {} customers, {} tasks, {:.1} s on the {} runtime",
        options.world.customers,
        options.concurrency,
        args.duration_secs,
        options.runtime.name()
    );
    let report = runtime.block_on(load::run(&options))?;
    print!("{report}");
    Ok(report.audit_ok())
}

fn run_bench(args: BenchArgs) -> anyhow::Result<bool> {
    let options = BenchOptions {
        secs: args.secs,
        customers: args.customers,
        only: args.only,
        ..BenchOptions::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    println!(
        "partner-credit bench: {} customers, {:.1} s per row, purchases of 1.00 by uniformly random customers",
        options.customers, options.secs
    );
    println!("{}", bench::header());
    let report = runtime.block_on(bench::run(&options, |row| println!("{}", bench::format_row(row))))?;
    if let Some(path) = args.json {
        std::fs::write(&path, serde_json::to_string_pretty(&report)?)
            .map_err(|error| anyhow::anyhow!("writing {}: {error}", path.display()))?;
    }
    Ok(report.rows.iter().all(|row| row.audit_ok))
}

#[cfg(feature = "http")]
fn run_serve(args: ServeArgs) -> anyhow::Result<bool> {
    tracing_subscriber::fmt().with_max_level(args.log).with_writer(std::io::stderr).init();
    let config = partner_credit::api::config::ServerConfig::load(&args.config)?;
    actix_web::rt::System::new().block_on(partner_credit::api::server::serve(config, args.listen))?;
    Ok(true)
}

fn parse_money(flag: &str, text: &str) -> anyhow::Result<Money> {
    Money::parse(text).map_err(|error| anyhow::anyhow!("{flag}: {error}"))
}
