//! The HTTP server: API 3.0 over actix-web. One route, `/`, by `POST` (a JSON or form body)
//! or `GET` (a query string); everything else answers in the same JSON error shape, because
//! the SDKs read errors only from a 200 body.
//!
//! A request goes: what the headers alone can refuse (method and path, a declared length over
//! the limit, TC3 credentials), read the body (bounded), authenticate ([`super::auth`]: TC3
//! or v1), read the action and version, then either the fast path
//! ([`super::actions::fast`]) or the one decoder ([`super::decode`]) and the action's row of
//! the table ([`super::actions`]), which calls the engine (where the rate limit is counted
//! first).
//!
//! Once the caller and the action are known, the faults in force ([`super::faults`]) may
//! answer an error, wait, or drop the connection, before the engine is called. Every answer
//! is counted in [`super::metrics`] (unless `[admin] metrics = false`).
//!
//! The engine is behind an [`ArcSwap`]: each request takes the engine in force when it
//! starts and finishes on it, and [`Api::replace_engine`] (`ResetState`, and the start
//! world's import) swaps in a new one in one step.
//!
//! Invariants:
//! - a request's parameters come from one place (the JSON body, the form body or the query
//!   string), never two: a POST with a query string and a GET with a body are refused;
//! - until the server is ready (its world imported), every API request is answered
//!   `ServiceUnavailable` and changes nothing; `GET /health` says when it is ready.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;

use actix_web::http::header::CONTENT_TYPE;
use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use futures::StreamExt;
use serde_json::{Map, Value};

use super::actions::{self, Context};
use super::auth::{header, Keys, Signed, Tc3Credentials, Window, V1_PARAMETERS};
use super::config::{HttpSettings, ServerConfig};
use super::decode::{Encoded, FlatParams};
use super::errors::ApiError;
use super::faults::{Effect, Faults};
use super::metrics::{Answered, Metrics};
use super::webhook::Webhooks;
use super::VERSION;
use crate::clock::OffsetClock;
use crate::domain::{Action, Caller};
use crate::engine::Engine;
use crate::world::World;

/// Where the server is in its life, as `GET /health` tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Readiness {
    /// Listening, the world not yet imported: API requests are answered `ServiceUnavailable`.
    Starting = 0,
    Ready = 1,
    /// Told to stop: requests in flight finish.
    Stopping = 2,
}

/// What [`Api::replace_engine`] builds the new engine's state from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Replacement {
    /// No account, no voucher, no purchase.
    Empty,
    /// The world file the configuration names (`world = ...`), as imported at start; the
    /// same as `Empty` when it names none.
    StartWorld,
    /// A snapshot file (`LoadSnapshot`), checked whole before the state in force is let go.
    Snapshot(std::path::PathBuf),
}

/// What every request needs: the engine, the keys and the HTTP settings, and the test
/// double's controls (faults, readiness, metrics).
pub struct Api {
    /// The engine in force: a request loads it once and finishes on it.
    engine: ArcSwap<Engine>,
    keys: Keys,
    settings: HttpSettings,
    /// Bytes of request bodies being read or held, on all connections.
    buffered: AtomicUsize,
    /// The engine's clock when the configuration sets `[engine] adjustable_clock`: what
    /// `AdvanceClock` moves. Signature timestamps are checked against the real time (the
    /// engine's less the offset), since clients sign with theirs.
    adjustable_clock: Option<OffsetClock>,
    faults: Faults,
    /// `None` when `[admin] metrics = false`: nothing is counted.
    metrics: Option<Arc<Metrics>>,
    /// A [`Readiness`].
    readiness: AtomicU8,
    /// The world of the configuration, read once at start, for `ResetState`.
    start_world: std::sync::OnceLock<Arc<World>>,
    /// The webhooks posting the engine's events: resubscribed when the engine is replaced,
    /// taken to be shut down when the server stops. A `parking_lot::Mutex` and not a tokio
    /// one, because no await happens while it is held.
    webhooks: parking_lot::Mutex<Option<Webhooks>>,
    /// One replacement at a time (a tokio mutex: held across the import's awaits).
    replacing: tokio::sync::Mutex<()>,
    /// `/health` and `/metrics` are served on `[admin] listen`, not beside the API.
    admin_apart: bool,
    pub(super) started: Instant,
}

/// What the request path found out besides the answer, for the metrics and the connection.
#[derive(Default)]
struct Trace {
    action: Option<Action>,
    /// The fault that applied, if one did.
    fault: Option<Effect>,
}

/// How a request is signed, as far as its headers tell before the body is read.
enum Signing<'h> {
    /// TC3-HMAC-SHA256, its header checks passed.
    Tc3(Tc3Credentials<'h>),
    /// Signature v1, among the parameters.
    V1,
}

/// How a request carries its parameters.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    /// A JSON body (POST).
    Json,
    /// A form body (POST, `application/x-www-form-urlencoded`) or the query string (GET).
    Flattened,
}

impl Api {
    /// The API of `engine`, ready, with the configuration's faults and metrics. The
    /// configuration must have been validated (its faults are checked again here).
    pub fn new(engine: Arc<Engine>, config: &ServerConfig) -> Api {
        Api {
            engine: ArcSwap::new(engine),
            keys: Keys::new(config),
            settings: config.http.clone(),
            buffered: AtomicUsize::new(0),
            adjustable_clock: None,
            faults: Faults::new(config.faults().expect("a validated configuration")),
            metrics: config.admin.metrics.then(|| Arc::new(Metrics::new())),
            readiness: AtomicU8::new(Readiness::Ready as u8),
            start_world: std::sync::OnceLock::new(),
            webhooks: parking_lot::Mutex::new(None),
            replacing: tokio::sync::Mutex::new(()),
            admin_apart: config.admin.listen.is_some(),
            started: Instant::now(),
        }
    }

    /// Sets the world `ResetState {"To": "StartWorld"}` restores (once: later calls are
    /// ignored, as the start is over).
    pub fn set_start_world(&self, world: Arc<World>) {
        let _ = self.start_world.set(world);
    }

    /// The engine in force now.
    pub fn engine(&self) -> Arc<Engine> {
        self.engine.load_full()
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    pub fn metrics(&self) -> Option<&Arc<Metrics>> {
        self.metrics.as_ref()
    }

    pub fn readiness(&self) -> Readiness {
        match self.readiness.load(Ordering::Acquire) {
            0 => Readiness::Starting,
            1 => Readiness::Ready,
            _ => Readiness::Stopping,
        }
    }

    pub fn set_readiness(&self, readiness: Readiness) {
        self.readiness.store(readiness as u8, Ordering::Release);
    }

    /// Hands the running webhooks to the API, which resubscribes them to every new engine.
    pub fn attach_webhooks(&self, webhooks: Webhooks) {
        *self.webhooks.lock() = Some(webhooks);
    }

    /// Takes the webhooks back, to shut them down.
    pub fn take_webhooks(&self) -> Option<Webhooks> {
        self.webhooks.lock().take()
    }

    /// Each webhook's URL and counts.
    pub fn webhook_stats(&self) -> Vec<(String, super::webhook::WebhookStats)> {
        self.webhooks.lock().as_ref().map(Webhooks::stats).unwrap_or_default()
    }

    /// Replaces the engine by a new one with the same configuration and clock, whose state
    /// is `replacement`: the one place the server's state is replaced whole. Requests in
    /// flight finish on the old engine (what they change is discarded with it); requests
    /// that start after the swap see the new one. With a data directory the old engine
    /// closes first, since two engines cannot hold one directory: requests in flight then
    /// fail, and the directory is cleared for the new state. The webhooks are subscribed to
    /// the new engine before the swap, so none of its events is missed. Answers the accounts
    /// the new state holds.
    pub async fn replace_engine(&self, replacement: Replacement) -> Result<usize, crate::engine::Error> {
        let _one_at_a_time = self.replacing.lock().await;
        let failed = |error: String| crate::engine::Error::Failed(crate::runtime::Failure::Internal(error));
        let refused = |error: crate::engine::OpenError| {
            crate::engine::Error::Rejected(crate::domain::Rejection::InvalidParameter {
                parameter: "Path",
                reason: error.to_string(),
            })
        };
        if let Replacement::Snapshot(path) = &replacement {
            // A snapshot that would not load leaves the state in force as it is.
            Engine::check_snapshot(path).map_err(refused)?;
        }
        let engine = {
            let old = self.engine.load_full();
            let config = old.config().clone();
            if config.data_dir.is_some() {
                old.close().map_err(|error| failed(format!("closing the old state: {error}")))?;
            }
            let engine = match &replacement {
                Replacement::Snapshot(path) => Engine::load_snapshot_with_clock(config, path, old.clock()),
                Replacement::Empty | Replacement::StartWorld => Engine::open_empty(config, old.clock()),
            };
            Arc::new(engine.map_err(|error| failed(format!("opening a new state: {error}")))?)
        };
        let accounts = match (&replacement, self.start_world.get()) {
            (Replacement::StartWorld, Some(world)) => engine.import(Caller::Operator, world).await?,
            (Replacement::Snapshot(_), _) => engine.account_count(),
            _ => 0,
        };
        if let Some(webhooks) = &*self.webhooks.lock() {
            webhooks.resubscribe(engine.events());
        }
        // The old engine stops when the last request holding it finishes (its drop stops
        // its runtime).
        self.engine.store(engine);
        Ok(accounts)
    }

    /// The API of an engine that runs on `clock`, which `AdvanceClock` moves forward.
    pub fn with_adjustable_clock(mut self, clock: OffsetClock) -> Api {
        self.adjustable_clock = Some(clock);
        self
    }

    /// The window signature timestamps must fall in: around the real time, also when the
    /// engine's clock was moved forward (one read of the system clock: no `AdvanceClock` can
    /// land in between).
    fn window(&self) -> Window {
        let now = match self.adjustable_clock {
            Some(_) => crate::clock::Clock::now(&crate::clock::SystemClock).0,
            None => self.engine.load().now().0,
        };
        Window { now: now.div_euclid(1000), skew_secs: self.settings.timestamp_skew_secs }
    }

    /// Answers a request that passed [`Api::before_body`], with its body: the `Response`
    /// object's fields, or an error.
    async fn answer(
        &self,
        signing: Signing<'_>,
        encoding: Encoding,
        request: &HttpRequest,
        body: &[u8],
        trace: &mut Trace,
    ) -> Result<Answer, ApiError> {
        let get = request.method() == Method::GET;
        if get && !body.is_empty() {
            return Err(ApiError::new(
                "InvalidParameter",
                "a GET request carries its parameters in the query string, not in a body",
            ));
        }
        let headers = request.headers();
        let signed = Signed {
            method: request.method().as_str(),
            host: header(headers, "host"),
            query: request.query_string(),
            headers,
        };
        let raw = if get { signed.query.as_bytes() } else { body };
        let (caller, action, encoded) = match signing {
            Signing::Tc3(credentials) => {
                let caller =
                    self.keys.tc3_caller(credentials, &signed, body, self.settings.require_signed_action)?;
                let action = action_of(
                    ("X-TC-Action", header(headers, "x-tc-action")),
                    ("X-TC-Version", header(headers, "x-tc-version")),
                )?;
                let encoded = match encoding {
                    Encoding::Json => Encoded::Json(body),
                    Encoding::Flattened => Encoded::Flattened(FlatParams::parse(raw)?),
                };
                (caller, action, encoded)
            }
            Signing::V1 => {
                let mut params = FlatParams::parse(raw)?;
                params.sort()?;
                let caller = self.keys.v1_caller(&params, &signed, self.window())?;
                let action = action_of(("Action", params.get("Action")), ("Version", params.get("Version")))?;
                for name in V1_PARAMETERS {
                    params.take(name);
                }
                (caller, action, Encoded::Flattened(params))
            }
        };
        trace.action = Some(action);
        if let Some(effect) = self.faults.decide(caller, action) {
            trace.fault = Some(effect);
            if let Some(metrics) = &self.metrics {
                metrics.fault_injected(effect);
            }
            match effect {
                Effect::Error(code) => {
                    return Err(ApiError::new(
                        code,
                        format!("injected by a fault on {action} (see DescribeFaults); nothing was changed"),
                    ))
                }
                Effect::Delay(delay) => actix_web::rt::time::sleep(delay).await,
                Effect::Drop => return Err(ApiError::new("InternalError", "dropped by a fault")),
            }
        }
        let engine = self.engine.load_full();
        let metrics = self.metrics.as_deref();
        if let Some(answer) = actions::fast::answer(&engine, caller, action, &encoded, metrics).await {
            return answer.map(Answer::Json);
        }
        let params = encoded.decode()?;
        let context =
            Context { engine: &engine, action, clock: self.adjustable_clock.as_ref(), server: self };
        actions::row(action).answer(&context, caller, params).await.map(Answer::Fields)
    }

    /// What can be refused before the body is read: the method and path, parameters in the
    /// query string of a POST, a declared length over the limit, and TC3 credentials that
    /// cannot be right whatever the body.
    fn before_body<'h>(&'h self, request: &'h HttpRequest) -> Result<(Signing<'h>, Encoding), ApiError> {
        let get = request.method() == Method::GET;
        if !(get || request.method() == Method::POST) || request.path() != "/" {
            return Err(ApiError::new(
                "UnsupportedOperation",
                format!("the API takes POST / or GET /, not {} {}", request.method(), request.path()),
            ));
        }
        if !get && !request.query_string().is_empty() {
            return Err(ApiError::new(
                "InvalidParameter",
                "a POST request carries its parameters in its body, not in the query string",
            ));
        }
        let headers = request.headers();
        let declared = header(headers, "content-length").and_then(|length| length.parse::<usize>().ok());
        if declared.is_some_and(|length| length > self.settings.body_limit) {
            return Err(too_large(self.settings.body_limit));
        }
        const FORM: &str = "application/x-www-form-urlencoded";
        let form = header(headers, "content-type").is_some_and(|content_type| {
            let prefix = content_type.trim_start().as_bytes().get(..FORM.len());
            prefix.is_some_and(|prefix| prefix.eq_ignore_ascii_case(FORM.as_bytes()))
        });
        let encoding = if get || form { Encoding::Flattened } else { Encoding::Json };
        let signing = if headers.contains_key("authorization") || encoding == Encoding::Json {
            Signing::Tc3(self.keys.tc3_credentials(headers, self.window())?)
        } else {
            Signing::V1
        };
        Ok((signing, encoding))
    }

    /// Reads the body up to the limit, within the body deadline, and within the bytes all
    /// connections may hold at once.
    async fn read_body(&self, mut payload: web::Payload) -> Result<BufferedBody<'_>, ApiError> {
        let mut body = BufferedBody { bytes: web::BytesMut::new(), counted: 0, api: self };
        let deadline = std::time::Duration::from_secs(self.settings.body_timeout_secs);
        let read = async {
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|error| {
                    ApiError::new("InvalidParameter", format!("reading the body: {error}"))
                })?;
                if body.bytes.len() + chunk.len() > self.settings.body_limit {
                    return Err(too_large(self.settings.body_limit));
                }
                body.count(chunk.len())?;
                body.bytes.extend_from_slice(&chunk);
            }
            Ok(())
        };
        match actix_web::rt::time::timeout(deadline, read).await {
            Ok(result) => result.map(|()| body),
            Err(_) => Err(ApiError::new(
                "RequestTimeout",
                format!("the request body did not arrive within {} s", self.settings.body_timeout_secs),
            )),
        }
    }
}

/// The action and version a request names, `(parameter name, value)` each: the TC3 headers
/// or the v1 parameters, with the same refusals.
fn action_of(action: (&str, Option<&str>), version: (&str, Option<&str>)) -> Result<Action, ApiError> {
    let name = action.1.ok_or_else(|| ApiError::missing(action.0))?;
    let action = Action::from_name(name)
        .ok_or_else(|| ApiError::new("InvalidAction", format!("{name} is not an action of this service")))?;
    match version.1 {
        None => Err(ApiError::missing(version.0)),
        Some(VERSION) => Ok(action),
        Some(other) => Err(ApiError::new("NoSuchVersion", format!("version {other} is not {VERSION}"))),
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new("RequestSizeLimitExceeded", format!("the request body is larger than {limit} bytes"))
}

/// A body being read, counted in [`Api::buffered`] until dropped.
struct BufferedBody<'a> {
    bytes: web::BytesMut,
    counted: usize,
    api: &'a Api,
}

impl BufferedBody<'_> {
    fn count(&mut self, more: usize) -> Result<(), ApiError> {
        let max = self.api.settings.buffered_bytes_max;
        let before = self.api.buffered.fetch_add(more, Ordering::Relaxed);
        self.counted += more;
        if before + more > max {
            return Err(ApiError::new(
                "RequestLimitExceeded",
                format!("the server holds {max} bytes of request bodies at most; retry later"),
            ));
        }
        Ok(())
    }
}

impl Drop for BufferedBody<'_> {
    fn drop(&mut self) {
        self.api.buffered.fetch_sub(self.counted, Ordering::Relaxed);
    }
}

/// The fields of a successful answer.
pub enum Answer {
    Fields(Map<String, Value>),
    /// A JSON object, already written.
    Json(Vec<u8>),
}

/// The body of an answer: `{"Response": {<fields>, "RequestId": "<uuid>"}}`.
pub fn response_body(answer: Result<Answer, ApiError>) -> Vec<u8> {
    let mut fields = match answer {
        Ok(Answer::Json(mut object)) => {
            debug_assert!(object.first() == Some(&b'{') && object.last() == Some(&b'}'));
            object.pop();
            let empty = object.len() == 1;
            let mut body = Vec::with_capacity(object.len() + 80);
            body.extend_from_slice(b"{\"Response\":");
            body.extend_from_slice(&object);
            body.extend_from_slice(if empty { b"\"RequestId\":\"" } else { b",\"RequestId\":\"" });
            body.extend_from_slice(
                uuid::Uuid::new_v4().hyphenated().encode_lower(&mut uuid::Uuid::encode_buffer()).as_bytes(),
            );
            body.extend_from_slice(b"\"}}");
            return body;
        }
        Ok(Answer::Fields(fields)) => fields,
        Err(error) => {
            let mut fields = Map::new();
            let mut body = Map::new();
            body.insert("Code".into(), Value::String(error.code.into_owned()));
            body.insert("Message".into(), Value::String(error.message));
            fields.insert("Error".into(), Value::Object(body));
            fields
        }
    };
    fields.insert("RequestId".into(), Value::String(uuid::Uuid::new_v4().to_string()));
    let mut response = Map::new();
    response.insert("Response".into(), Value::Object(fields));
    serde_json::to_vec(&Value::Object(response)).expect("JSON values serialize")
}

async fn entry(request: HttpRequest, payload: web::Payload, api: web::Data<Api>) -> HttpResponse {
    // The clock is read only when there are metrics to keep.
    let arrived = api.metrics.is_some().then(Instant::now);
    let mut read_whole_body = false;
    let mut trace = Trace::default();
    let answer = if api.readiness() == Readiness::Starting {
        Err(ApiError::new(
            "ServiceUnavailable",
            "the server is importing its world; GET /health answers 200 once it is ready",
        ))
    } else {
        match api.before_body(&request) {
            Err(error) => Err(error),
            Ok((signing, encoding)) => match api.read_body(payload).await {
                Err(error) => Err(error),
                Ok(body) => {
                    read_whole_body = true;
                    api.answer(signing, encoding, &request, &body.bytes, &mut trace).await
                }
            },
        }
    };
    if let Err(error) = &answer {
        tracing::debug!(code = %error.code, message = %error.message, "refused");
    }
    if let (Some(metrics), Some(arrived)) = (&api.metrics, arrived) {
        let code = match trace.fault {
            Some(Effect::Drop) => Some(super::metrics::DROPPED),
            _ => answer.as_ref().err().map(|error| error.code.as_ref()),
        };
        let injected = trace.fault.is_some_and(|effect| !matches!(effect, Effect::Delay(_)));
        metrics.answered(Answered { action: trace.action, code, injected, elapsed: arrived.elapsed() });
    }
    if trace.fault == Some(Effect::Drop) {
        return dropped();
    }
    let mut response = HttpResponse::Ok();
    response.insert_header((CONTENT_TYPE, "application/json"));
    if !read_whole_body {
        // What is left of the body would be read as the next request.
        response.force_close();
    }
    response.body(response_body(answer))
}

/// An answer that is none: its body fails before a byte of it is written, so actix-web
/// closes the connection without writing the status line either (the head waits in the
/// write buffer until the body's first chunk, and the error discards both).
fn dropped() -> HttpResponse {
    let failing = futures::stream::once(async {
        Err::<web::Bytes, _>(std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "dropped by a fault"))
    });
    HttpResponse::Ok().force_close().body(actix_web::body::BodyStream::new(failing))
}

/// Registers the API on an actix-web app: every path and method reaches [`entry`], but
/// `GET /health` and `GET /metrics` (unless `[admin] listen` serves them apart).
pub fn configure(api: web::Data<Api>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |config| {
        if !api.admin_apart {
            super::admin::routes(config);
        }
        config.app_data(api).default_service(web::to(entry));
    }
}
