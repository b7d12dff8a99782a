//! The HTTP server: API 3.0 over actix-web. One route, `POST /`; everything else answers in
//! the same JSON error shape, because the SDKs read errors only from a 200 body.
//!
//! A request goes: read the body (bounded), authenticate (TC3 signature, timestamp within
//! the skew, known SecretId), read the action and version, then hand the parameters to the
//! action's handler, which calls the engine (where the rate limit is counted first).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix_web::http::header::{HeaderMap, CONTENT_TYPE};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use futures::StreamExt;
use parking_lot::Mutex;
use serde_json::{Map, Value};

use super::actions::{self, Context};
use super::config::{HttpSettings, ServerConfig};
use super::errors::ApiError;
use super::params::Params;
use super::sign::{
    self, canonical_request, parse_authorization, sha256_hex, signature, signing_key, string_to_sign,
    Authorization,
};
use super::VERSION;
use crate::clock::OffsetClock;
use crate::domain::{Action, Caller, Uin};
use crate::engine::Engine;
use crate::world::World;

/// What every request needs: the engine, the keys and the HTTP settings.
pub struct Api {
    pub engine: Arc<Engine>,
    keys: HashMap<String, KeyEntry>,
    settings: HttpSettings,
    /// Bytes of request bodies being read or held, on all connections.
    buffered: AtomicUsize,
    /// The engine's clock when the configuration sets `[engine] adjustable_clock`: what
    /// `AdvanceClock` moves. Signature timestamps are checked against the real time (the
    /// engine's less the offset), since clients sign with theirs.
    adjustable_clock: Option<OffsetClock>,
}

struct KeyEntry {
    secret_key: String,
    caller: Caller,
    /// The signing key of the last day seen: deriving it costs four HMACs.
    day_key: Mutex<Option<(String, [u8; 32])>>,
}

impl Api {
    pub fn new(engine: Arc<Engine>, config: &ServerConfig) -> Api {
        let entry = |secret_key: &str, caller| KeyEntry {
            secret_key: secret_key.to_owned(),
            caller,
            day_key: Mutex::new(None),
        };
        let mut keys = HashMap::new();
        keys.insert(config.operator.secret_id.clone(), entry(&config.operator.secret_key, Caller::Operator));
        for key in &config.keys {
            keys.insert(key.secret_id.clone(), entry(&key.secret_key, Caller::Uin(Uin(key.uin))));
        }
        Api {
            engine,
            keys,
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

    /// Answers a request that passed [`Api::before_body`], with its credentials and body:
    /// the `Response` object's fields, or an error.
    async fn answer(
        &self,
        credentials: Credentials<'_>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Answer, ApiError> {
        let caller = self.authenticate(credentials, headers, body)?;
        let action_name = header(headers, "x-tc-action").ok_or_else(|| ApiError::missing("X-TC-Action"))?;
        let action = Action::from_name(action_name).ok_or_else(|| {
            ApiError::new("InvalidAction", format!("{action_name} is not an action of this service"))
        })?;
        match header(headers, "x-tc-version") {
            None => return Err(ApiError::missing("X-TC-Version")),
            Some(VERSION) => {}
            Some(other) => {
                return Err(ApiError::new("NoSuchVersion", format!("version {other} is not {VERSION}")))
            }
        }
        if let Some(answer) = actions::fast::answer(&self.engine, caller, action, body).await {
            return answer.map(Answer::Json);
        }
        let params = Params::parse(body)?;
        let context = Context { engine: &self.engine, action, clock: self.adjustable_clock.as_ref() };
        actions::row(action).answer(&context, caller, params).await.map(Answer::Fields)
    }

    /// The checks that need only the headers (Authorization well formed, timestamp within
    /// the skew, a known SecretId, our service), made before the body is read.
    fn credentials<'h>(&'h self, headers: &'h HeaderMap) -> Result<Credentials<'h>, ApiError> {
        let invalid = |message: &str| ApiError::new("AuthFailure.InvalidAuthorization", message.to_owned());
        let authorization = header(headers, "authorization")
            .ok_or_else(|| invalid("the request has no Authorization header"))?;
        let parsed = parse_authorization(authorization)
            .map_err(|reason| invalid(&format!("Authorization: {reason}")))?;
        let timestamp =
            header(headers, "x-tc-timestamp").ok_or_else(|| ApiError::missing("X-TC-Timestamp"))?;
        let timestamp: i64 =
            timestamp.parse().map_err(|_| ApiError::wrong_type("X-TC-Timestamp", "Unix seconds"))?;
        // Signatures are checked against real time, also when the engine's clock was moved
        // forward (one read of the system clock: no AdvanceClock can land in between).
        let now = match self.adjustable_clock {
            Some(_) => crate::clock::Clock::now(&crate::clock::SystemClock).0,
            None => self.engine.now().0,
        };
        let now = now.div_euclid(1000);
        if now.abs_diff(timestamp) > self.settings.timestamp_skew_secs.unsigned_abs() {
            return Err(ApiError::new(
                "AuthFailure.SignatureExpire",
                format!(
                    "the request's timestamp {timestamp} is more than {} s from the server's {now}",
                    self.settings.timestamp_skew_secs
                ),
            ));
        }
        let key = self.keys.get(parsed.secret_id).ok_or_else(|| {
            ApiError::new(
                "AuthFailure.SecretIdNotFound",
                format!("no key has the SecretId {}", parsed.secret_id),
            )
        })?;
        if parsed.service != sign::SERVICE {
            return Err(invalid(&format!(
                "the credential's service is {}, not {}",
                parsed.service,
                sign::SERVICE
            )));
        }
        Ok(Credentials { parsed, timestamp, key })
    }

    /// The caller a correctly signed request comes from: the signature over the headers it
    /// names and the body.
    fn authenticate(
        &self,
        credentials: Credentials<'_>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Caller, ApiError> {
        let invalid = |message: &str| ApiError::new("AuthFailure.InvalidAuthorization", message.to_owned());
        let Credentials { parsed, timestamp, key } = credentials;
        let signature_failure = |message: String| ApiError::new("AuthFailure.SignatureFailure", message);
        if parsed.date != sign::utc_date(timestamp) {
            return Err(signature_failure(format!(
                "the credential's date {} is not the UTC date of X-TC-Timestamp",
                parsed.date
            )));
        }
        let names: Vec<&str> = parsed.signed_headers.split(';').collect();
        if !names.contains(&"content-type") || !names.contains(&"host") {
            return Err(invalid("SignedHeaders must include content-type and host"));
        }
        if self.settings.require_signed_action && !names.contains(&"x-tc-action") {
            return Err(invalid("this server requires x-tc-action among the SignedHeaders"));
        }
        let mut signed = Vec::with_capacity(names.len());
        for name in &names {
            if name.is_empty() || name.bytes().any(|byte| byte.is_ascii_uppercase()) {
                return Err(invalid("SignedHeaders are lowercase header names separated by ;"));
            }
            let value = header(headers, name).ok_or_else(|| {
                signature_failure(format!("the signed header {name} is not in the request"))
            })?;
            signed.push((*name, value));
        }
        let payload_hash = if header(headers, "x-tc-content-sha256") == Some(sign::UNSIGNED_PAYLOAD) {
            sha256_hex(sign::UNSIGNED_PAYLOAD.as_bytes())
        } else {
            sha256_hex(body)
        };
        let canonical = canonical_request("POST", "/", "", &signed, parsed.signed_headers, &payload_hash);
        let to_sign = string_to_sign(timestamp, parsed.date, parsed.service, &canonical);
        let day_key = {
            let mut cached = key.day_key.lock();
            match &*cached {
                Some((date, day_key)) if date == parsed.date => *day_key,
                _ => {
                    let day_key = signing_key(&key.secret_key, parsed.date, parsed.service);
                    *cached = Some((parsed.date.to_owned(), day_key));
                    day_key
                }
            }
        };
        if !constant_time_eq(signature(&day_key, &to_sign).as_bytes(), parsed.signature.as_bytes()) {
            return Err(signature_failure("the signature does not match the request".into()));
        }
        Ok(key.caller)
    }

    /// What can be refused before the body is read: the method and path, a declared length
    /// over the limit, and credentials that cannot be right whatever the body.
    fn before_body<'h>(&'h self, request: &'h HttpRequest) -> Result<Credentials<'h>, ApiError> {
        if request.method() != actix_web::http::Method::POST || request.path() != "/" {
            return Err(ApiError::new(
                "UnsupportedOperation",
                format!("the API takes POST / with a JSON body, not {} {}", request.method(), request.path()),
            ));
        }
        let declared =
            header(request.headers(), "content-length").and_then(|length| length.parse::<usize>().ok());
        if declared.is_some_and(|length| length > self.settings.body_limit) {
            return Err(too_large(self.settings.body_limit));
        }
        self.credentials(request.headers())
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

/// What [`Api::credentials`] found, for the signature check once the body is read.
struct Credentials<'h> {
    parsed: Authorization<'h>,
    timestamp: i64,
    key: &'h KeyEntry,
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

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
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
        Ok(credentials) => match api.read_body(payload).await {
            Err(error) => Err(error),
            Ok(body) => {
                read_whole_body = true;
                api.answer(credentials, request.headers(), &body.bytes).await
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
