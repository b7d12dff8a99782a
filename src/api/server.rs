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
//! Invariant: a request's parameters come from one place (the JSON body, the form body or
//! the query string), never two: a POST with a query string and a GET with a body are
//! refused.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix_web::http::header::CONTENT_TYPE;
use actix_web::http::Method;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use futures::StreamExt;
use serde_json::{Map, Value};

use super::actions::{self, Context};
use super::auth::{header, Keys, Signed, Tc3Credentials, Window, V1_PARAMETERS};
use super::config::{HttpSettings, ServerConfig};
use super::decode::{Encoded, FlatParams};
use super::errors::ApiError;
use super::VERSION;
use crate::clock::OffsetClock;
use crate::domain::{Action, Caller};
use crate::engine::Engine;
use crate::world::World;

/// What every request needs: the engine, the keys and the HTTP settings.
pub struct Api {
    pub engine: Arc<Engine>,
    keys: Keys,
    settings: HttpSettings,
    /// Bytes of request bodies being read or held, on all connections.
    buffered: AtomicUsize,
    /// The engine's clock when the configuration sets `[engine] adjustable_clock`: what
    /// `AdvanceClock` moves. Signature timestamps are checked against the real time (the
    /// engine's less the offset), since clients sign with theirs.
    adjustable_clock: Option<OffsetClock>,
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
    pub fn new(engine: Arc<Engine>, config: &ServerConfig) -> Api {
        Api {
            engine,
            keys: Keys::new(config),
            settings: config.http.clone(),
            buffered: AtomicUsize::new(0),
            adjustable_clock: None,
        }
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
            None => self.engine.now().0,
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
        if let Some(answer) = actions::fast::answer(&self.engine, caller, action, &encoded).await {
            return answer.map(Answer::Json);
        }
        let params = encoded.decode()?;
        let context = Context { engine: &self.engine, action, clock: self.adjustable_clock.as_ref() };
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
        let form = header(headers, "content-type").is_some_and(|content_type| {
            content_type.trim_start().to_ascii_lowercase().starts_with("application/x-www-form-urlencoded")
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
    let mut read_whole_body = false;
    let answer = match api.before_body(&request) {
        Err(error) => Err(error),
        Ok((signing, encoding)) => match api.read_body(payload).await {
            Err(error) => Err(error),
            Ok(body) => {
                read_whole_body = true;
                api.answer(signing, encoding, &request, &body.bytes).await
            }
        },
    };
    if let Err(error) = &answer {
        tracing::debug!(code = %error.code, message = %error.message, "refused");
    }
    let mut response = HttpResponse::Ok();
    response.insert_header((CONTENT_TYPE, "application/json"));
    if !read_whole_body {
        // What is left of the body would be read as the next request.
        response.force_close();
    }
    response.body(response_body(answer))
}

/// Registers the API on an actix-web app: every path and method reaches [`entry`].
pub fn configure(api: web::Data<Api>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |config| {
        config.app_data(api).default_service(web::to(entry));
    }
}

/// How long requests in flight get to finish once the server is told to stop.
const SHUTDOWN_GRACE_SECS: u64 = 5;

/// Starts the engine from the configuration, imports its world, and serves until Ctrl-C
/// (or SIGTERM), which stops it gracefully.
pub async fn serve(config: ServerConfig, listen: Option<SocketAddr>) -> anyhow::Result<()> {
    let engine_config = config.engine_config().map_err(anyhow::Error::msg)?;
    let adjustable_clock = config.engine.adjustable_clock.then(OffsetClock::new);
    let engine = Arc::new(match &adjustable_clock {
        Some(clock) => Engine::start_with_clock(engine_config, Arc::new(clock.clone())),
        None => Engine::start(engine_config),
    });
    if let Some(path) = &config.world {
        let world = World::load(path)?;
        let count = engine.import(Caller::Operator, &world).await?;
        tracing::info!(accounts = count, world = %path.display(), "imported the world");
    }
    let webhooks = super::webhook::start(engine.events(), &config.webhooks).map_err(anyhow::Error::msg)?;
    let listen = listen.unwrap_or(config.listen);
    let mut api = Api::new(engine.clone(), &config);
    if let Some(clock) = adjustable_clock {
        tracing::warn!(
            "[engine] adjustable_clock is on: the operator's AdvanceClock moves the engine's clock forward"
        );
        api = api.with_adjustable_clock(clock);
    }
    let api = web::Data::new(api);
    let settings = config.http.clone();
    let server = HttpServer::new(move || App::new().configure(configure(api.clone())))
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
    let server = match &config.tls {
        Some(tls) => server.bind_rustls_0_23(listen, super::tls::server_config(&tls.cert, &tls.key)?)?,
        None => server.bind(listen)?,
    };
    for address in server.addrs() {
        let scheme = if config.tls.is_some() { "https" } else { "http" };
        // The line tests and scripts wait for: the bound address (the port may have been 0).
        println!("partner-credit serve: listening on {scheme}://{address}");
    }
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        let name = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        tracing::info!(signal = name, "stopping: requests in flight get {SHUTDOWN_GRACE_SECS} s to finish");
        handle.stop(true).await;
    });
    server.await?;
    // Events published while requests finished get the same grace to go out.
    webhooks.shutdown(std::time::Duration::from_secs(SHUTDOWN_GRACE_SECS)).await;
    tracing::info!("stopped");
    engine.shutdown();
    Ok(())
}
