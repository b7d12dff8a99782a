//! The HTTP rows of `partner-credit bench`: the server of `partner-credit serve` on a
//! loopback port in this process, driven over keep-alive connections by signing clients on
//! the same machine. `Ping` (an action that does nothing) measures the server's own cost;
//! `CreatePurchase` and `CreatePurchases` the same path with the engine behind it, signed
//! with TC3 over JSON or (the `v1` rows) with signature v1 over a form body.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpServer};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{audit, start, Measured, Submission};
use crate::api::client::ApiClient;
use crate::api::config::ServerConfig;
use crate::api::server::{configure, Api};
use crate::api::sign::V1Method;
use crate::domain::Uin;
use crate::engine::{Engine, EngineConfig};
use crate::world::World;

const SECRET_ID: &str = "bench-operator";
const SECRET_KEY: &str = "bench-operator-key";

/// The answer of a committed purchase, as the server writes it (compact JSON).
const COMMITTED: &[u8] = br#""Status":"Committed""#;

/// A server on a free loopback port, on a thread of its own; stopped on drop.
struct Server {
    address: SocketAddr,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(engine: Arc<Engine>, metrics: bool) -> anyhow::Result<Server> {
        let config = ServerConfig::parse(&format!(
            "listen = \"127.0.0.1:0\"\n[operator]\nsecret_id = \"{SECRET_ID}\"\nsecret_key = \"{SECRET_KEY}\"\n\
             [admin]\nmetrics = {metrics}\n"
        ))
        .map_err(anyhow::Error::msg)?;
        let (sender, receiver) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new().name("bench-server".into()).spawn(move || {
            let system = actix_web::rt::System::new();
            system.block_on(async move {
                let api = web::Data::new(Api::new(engine, &config));
                let bound = HttpServer::new(move || App::new().configure(configure(api.clone())))
                    .workers(config.http.workers)
                    .disable_signals()
                    .bind(config.listen);
                let server = match bound {
                    Ok(server) => server,
                    Err(error) => {
                        let _ = sender.send(Err(anyhow::Error::from(error)));
                        return;
                    }
                };
                let address = server.addrs()[0];
                let server = server.run();
                let _ = sender.send(Ok((address, server.handle())));
                let _ = server.await;
            });
        })?;
        let (address, handle) = receiver.recv()??;
        Ok(Server { address, handle, thread: Some(thread) })
    }
}

impl Drop for Server {
    /// Sends the stop command (`stop` sends it before its future is polled) and joins the
    /// server's thread, whose system ends once the server has stopped. Waiting on the
    /// returned future instead, with `block_on` on a thread of the bench's tokio runtime,
    /// could spin for ever: a row that just awaited more join handles than tokio's
    /// cooperative budget (256 connections) has none left, so tokio's oneshot answers
    /// `Pending` to every poll of an executor that never resets the budget.
    fn drop(&mut self) {
        drop(self.handle.stop(false));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One HTTP row: `connections` clients, each with one request in flight.
pub(super) async fn row(
    config: EngineConfig,
    world: &World,
    submission: Submission,
    v1: bool,
    duration: Duration,
    connections: usize,
    metrics: bool,
) -> anyhow::Result<Measured> {
    let (engine, bytes_per_uin) = start(config, world).await?;
    let server = Server::start(engine.clone(), metrics)?;
    let customers: Arc<Vec<Uin>> = Arc::new(world.customer_uins());
    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::with_capacity(connections);
    for _ in 0..connections {
        clients.push(ApiClient::connect(server.address, SECRET_ID, SECRET_KEY).await?);
    }
    let journal_before = engine.journal_bytes();
    let measured = super::timed(duration, stop.clone(), || {
        clients
            .into_iter()
            .enumerate()
            .map(|(index, client)| {
                let driver = Driver {
                    client,
                    customers: customers.clone(),
                    stop: stop.clone(),
                    committed: committed.clone(),
                    submission,
                    v1,
                    id: index as u64,
                };
                tokio::spawn(driver.run())
            })
            .collect()
    })
    .await?;
    drop(server);
    // Every purchase counted was answered, so its record is in (under `always`, durable).
    let journal_bytes = super::journal_written(&engine, journal_before);
    // Every purchase sent was answered, so the books must hold exactly the committed ones.
    let sent = if submission == Submission::HttpPing { 0 } else { measured.purchases };
    let audit_ok = audit(&engine, &committed, sent).await?;
    Ok(Measured { bytes_per_uin, audit_ok, journal_bytes, ..measured })
}

struct Driver {
    client: ApiClient,
    customers: Arc<Vec<Uin>>,
    stop: Arc<AtomicBool>,
    committed: Arc<AtomicU64>,
    submission: Submission,
    /// Sign with v1 over a form body (single purchases only) rather than TC3 over JSON.
    v1: bool,
    id: u64,
}

impl Driver {
    /// Answers how many purchases (or pings) it made.
    async fn run(mut self) -> anyhow::Result<u64> {
        let mut rng = SmallRng::seed_from_u64(self.id + 1);
        let mut sequence = 0u64;
        let mut made = 0u64;
        let mut body = Vec::with_capacity(128);
        while !self.stop.load(Ordering::Relaxed) {
            body.clear();
            let (action, count) = match self.submission {
                Submission::HttpPing => {
                    body.extend_from_slice(b"{}");
                    ("Ping", 1)
                }
                Submission::HttpSingle if self.v1 => {
                    sequence += 1;
                    let answer = self.purchase_v1(&mut rng, sequence).await?;
                    made += 1;
                    self.count_committed(&answer);
                    continue;
                }
                Submission::HttpSingle => {
                    sequence += 1;
                    self.purchase(&mut body, &mut rng, sequence);
                    ("CreatePurchase", 1)
                }
                Submission::HttpBatch(size) => {
                    body.extend_from_slice(b"{\"Purchases\":[");
                    for index in 0..size {
                        if index > 0 {
                            body.push(b',');
                        }
                        sequence += 1;
                        self.purchase(&mut body, &mut rng, sequence);
                    }
                    body.extend_from_slice(b"]}");
                    ("CreatePurchases", size as u64)
                }
                other => anyhow::bail!("{other:?} is not an HTTP submission"),
            };
            let answer =
                self.client.call(action, std::mem::replace(&mut body, Vec::with_capacity(128))).await?;
            made += count;
            if self.submission == Submission::HttpPing {
                if let Some(code) = crate::load::http::error_code(&answer) {
                    anyhow::bail!("Ping failed with {code}: {}", String::from_utf8_lossy(&answer));
                }
            } else {
                self.count_committed(&answer);
            }
        }
        Ok(made)
    }

    fn count_committed(&self, answer: &[u8]) {
        let ok = answer.windows(COMMITTED.len()).filter(|window| *window == COMMITTED).count();
        self.committed.fetch_add(ok as u64, Ordering::Relaxed);
    }

    /// One `CreatePurchase` signed with v1 (HmacSHA256), as the Node.js SDK sends it.
    async fn purchase_v1(&mut self, rng: &mut SmallRng, sequence: u64) -> anyhow::Result<bytes::Bytes> {
        let customer = self.customers[rng.gen_range(0..self.customers.len())];
        let id = format!("h{}-{sequence}", self.id);
        let customer = customer.0.to_string();
        let params = [("PurchaseId", id.as_str()), ("ClientUin", customer.as_str()), ("Amount", "1.00")];
        self.client.call_v1("CreatePurchase", &params, V1Method::HmacSha256).await
    }

    fn purchase(&self, body: &mut Vec<u8>, rng: &mut SmallRng, sequence: u64) {
        use std::io::Write;
        let customer = self.customers[rng.gen_range(0..self.customers.len())];
        let _ = write!(
            body,
            "{{\"PurchaseId\":\"h{}-{sequence}\",\"ClientUin\":{},\"Amount\":1.00}}",
            self.id, customer.0
        );
    }
}
