//! `partner-credit serve`: starts the engine, listens, imports the world, and serves until
//! Ctrl-C or SIGTERM.
//!
//! The listener comes up first, so that orchestrators and test harnesses can watch the
//! start: while the world file is read and imported, `GET /health` answers 503 and API
//! requests `ServiceUnavailable`; then the server is ready. Standard output says both:
//! `partner-credit serve: listening on URL` once bound, `partner-credit serve: ready (N
//! accounts)` once ready (`(N accounts recovered)` when they came from the data directory). A world that cannot be imported stops the server with an error.
//!
//! With a data directory, the engine first recovers what the directory holds; a directory
//! that holds accounts is served as it is, and the world is imported only into an empty one.
//!
//! Invariant: the world is imported through [`Api::replace_engine`], the same path as
//! `ResetState`, so the state a reset restores is exactly the state the server started with.

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::{web, App, HttpServer};

use super::config::ServerConfig;
use super::server::{configure, Api, Readiness, Replacement};
use crate::clock::OffsetClock;
use crate::engine::Engine;
use crate::world::World;

/// How long requests in flight get to finish once the server is told to stop.
const SHUTDOWN_GRACE_SECS: u64 = 5;

/// Starts the engine from the configuration, listens, imports its world, and serves until
/// Ctrl-C (or SIGTERM), which stops it gracefully.
pub async fn serve(config: ServerConfig, listen: Option<SocketAddr>) -> anyhow::Result<()> {
    let (api, recovered) = api_of(&config)?;
    let settings = config.http.clone();
    let app_api = api.clone();
    let server = HttpServer::new(move || App::new().configure(configure(app_api.clone())))
        .workers(settings.workers)
        .max_connections(settings.max_connections)
        .keep_alive(std::time::Duration::from_secs(settings.keep_alive_secs))
        .shutdown_timeout(SHUTDOWN_GRACE_SECS)
        // actix stops at once on SIGINT; Ctrl-C must let requests in flight finish.
        .disable_signals();
    // Listening for the signals before the address is printed: a script that stops the
    // server as soon as it sees the line still gets a graceful stop.
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let listen = listen.unwrap_or(config.listen);
    let server = match &config.tls {
        Some(tls) => server.bind_rustls_0_23(listen, super::tls::server_config(&tls.cert, &tls.key)?)?,
        None => server.bind(listen)?,
    };
    for address in server.addrs() {
        let scheme = if config.tls.is_some() { "https" } else { "http" };
        // The line tests and scripts wait for: the bound address (the port may have been 0).
        println!("partner-credit serve: listening on {scheme}://{address}");
    }
    let admin = admin_server(&config, &api)?;
    let server = server.run();
    let handle = server.handle();
    let admin_handle = admin.as_ref().map(|admin| admin.handle());
    if let Some(admin) = admin {
        actix_web::rt::spawn(admin);
    }
    let import = actix_web::rt::spawn(start(
        api.clone().into_inner(),
        config.world.clone(),
        recovered,
        handle.clone(),
    ));
    let stopping = api.clone();
    actix_web::rt::spawn(async move {
        let name = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        stopping.set_readiness(Readiness::Stopping);
        tracing::info!(signal = name, "stopping: requests in flight get {SHUTDOWN_GRACE_SECS} s to finish");
        handle.stop(true).await;
    });
    server.await?;
    if let Some(admin) = admin_handle {
        admin.stop(true).await;
    }
    // Events published while requests finished get the same grace to go out.
    if let Some(webhooks) = api.take_webhooks() {
        webhooks.shutdown(std::time::Duration::from_secs(SHUTDOWN_GRACE_SECS)).await;
    }
    tracing::info!("stopped");
    if let Err(error) = api.engine().close() {
        tracing::error!("closing the journal: {error}");
    }
    match import.await {
        Ok(Err(error)) => Err(error),
        _ => Ok(()),
    }
}

/// The engine (recovered from its data directory, if it has one) behind the API, with its
/// webhooks and clock; and whether it recovered accounts.
fn api_of(config: &ServerConfig) -> anyhow::Result<(web::Data<Api>, bool)> {
    let engine_config = config.engine_config().map_err(anyhow::Error::msg)?;
    let adjustable_clock = config.engine.adjustable_clock.then(OffsetClock::new);
    let data_dir = engine_config.data_dir.clone();
    let engine = Arc::new(match &adjustable_clock {
        Some(clock) => Engine::open_with_clock(engine_config, Arc::new(clock.clone()))?,
        None => Engine::open(engine_config)?,
    });
    // A data directory that holds a state serves it: the world is imported only into an
    // empty one (and again by ResetState).
    let recovered = match &data_dir {
        Some(dir) => {
            let accounts = engine.account_count();
            tracing::info!(accounts, dir = %dir.display(), "recovered the data directory");
            accounts > 0
        }
        None => false,
    };
    let webhooks = super::webhook::start(engine.events(), &config.webhooks).map_err(anyhow::Error::msg)?;
    let mut api = Api::new(engine, config);
    if let Some(clock) = adjustable_clock {
        tracing::warn!(
            "[engine] adjustable_clock is on: the operator's AdvanceClock moves the engine's clock forward"
        );
        api = api.with_adjustable_clock(clock);
    }
    if config.world.is_some() {
        api.set_readiness(Readiness::Starting);
    }
    api.attach_webhooks(webhooks);
    Ok((web::Data::new(api), recovered))
}

/// The server of health and metrics on an address of their own (`[admin] listen`), bound
/// and said on standard output, not yet run.
fn admin_server(
    config: &ServerConfig,
    api: &web::Data<Api>,
) -> anyhow::Result<Option<actix_web::dev::Server>> {
    let Some(address) = config.admin.listen else { return Ok(None) };
    let admin_api = api.clone();
    let admin =
        HttpServer::new(move || App::new().app_data(admin_api.clone()).configure(super::admin::routes))
            .workers(1)
            .shutdown_timeout(SHUTDOWN_GRACE_SECS)
            .disable_signals()
            .bind(address)?;
    for address in admin.addrs() {
        println!("partner-credit serve: health and metrics on http://{address}");
    }
    Ok(Some(admin.run()))
}

/// Reads and imports the world file, if the configuration names one, then makes the server
/// ready. A world that cannot be read or imported stops the server: its error is the
/// server's.
async fn start(
    api: Arc<Api>,
    world: Option<std::path::PathBuf>,
    recovered: bool,
    server: actix_web::dev::ServerHandle,
) -> anyhow::Result<()> {
    let imported = async {
        if recovered {
            // Still read, so that ResetState can bring it back.
            if let Some(path) = world {
                let world = tokio::task::spawn_blocking(move || World::load(&path)).await??;
                api.set_start_world(Arc::new(world));
            }
            return Ok(Some(api.engine().account_count()));
        }
        let Some(path) = world else { return Ok(None) };
        let read = path.clone();
        let world = tokio::task::spawn_blocking(move || World::load(&read)).await??;
        api.set_start_world(Arc::new(world));
        let accounts = api.replace_engine(Replacement::StartWorld).await?;
        tracing::info!(accounts, world = %path.display(), "imported the world");
        anyhow::Ok(Some(accounts))
    };
    match imported.await {
        Ok(accounts) => {
            // A stop during the import stays a stop.
            if api.readiness() == Readiness::Starting {
                api.set_readiness(Readiness::Ready);
            }
            let source = if recovered { " recovered" } else { "" };
            println!("partner-credit serve: ready ({} accounts{source})", accounts.unwrap_or(0));
            Ok(())
        }
        Err(error) => {
            tracing::error!(error = %format!("{error:#}"), "the world could not be imported: stopping");
            api.set_readiness(Readiness::Stopping);
            server.stop(false).await;
            Err(error)
        }
    }
}
