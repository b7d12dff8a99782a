//! The API server in process: actix-web's test service around the real handler, and
//! requests signed as the official SDKs sign them: TC3-HMAC-SHA256 over a JSON body
//! ([`Call`]) or a query string ([`Tc3Get`]), and signature v1 over a form body or a query
//! string ([`V1`]).

use std::sync::Arc;

use actix_web::test::TestRequest;
use actix_web::web;
use serde_json::Value;

use partner_credit::api::config::ServerConfig;
use partner_credit::api::server::Api;
use partner_credit::api::sign::{
    canonical_request, sha256_hex, sign_request, sign_v1, signature, signing_key, string_to_sign, utc_date,
    V1Method, SERVICE,
};
use partner_credit::clock::OffsetClock;
use partner_credit::{Engine, EngineConfig, ManualClock, RuntimeKind};

pub const HOST: &str = "intlpartnersmgt.tencentcloudapi.com";

/// A request before signing; tests bend any part of it.
pub struct Call<'a> {
    pub secret_id: &'a str,
    pub secret_key: &'a str,
    pub action: &'a str,
    pub body: Vec<u8>,
    /// Seconds from the engine's clock.
    pub skew_secs: i64,
    pub version: &'a str,
    /// The host signed, and the `Host` header sent.
    pub signed_host: &'a str,
    pub host: &'a str,
}

impl<'a> Call<'a> {
    /// `key` is a secret id whose secret key is `<id>-key`, as in the configurations here.
    pub fn new(key: &'a str, action: &'a str, body: &Value) -> Call<'a> {
        let secret_key: &'static str = Box::leak(format!("{key}-key").into_boxed_str());
        Call {
            secret_id: key,
            secret_key,
            action,
            body: serde_json::to_vec(body).unwrap(),
            skew_secs: 0,
            version: "2022-09-28",
            signed_host: HOST,
            host: HOST,
        }
    }

    /// The signed request.
    pub fn request(&self, now_ms: i64) -> TestRequest {
        let timestamp = now_ms.div_euclid(1000) + self.skew_secs;
        let date = utc_date(timestamp);
        let key = signing_key(self.secret_key, &date, SERVICE);
        let signed = sign_request(self.secret_id, &key, self.signed_host, None, &self.body, timestamp, &date);
        TestRequest::post()
            .uri("/")
            .insert_header(("Host", self.host))
            .insert_header(("Content-Type", signed.content_type))
            .insert_header(("X-TC-Action", self.action))
            .insert_header(("X-TC-Version", self.version))
            .insert_header(("X-TC-Timestamp", timestamp.to_string()))
            .insert_header(("Authorization", signed.authorization))
            .set_payload(self.body.clone())
    }
}

/// A request signed with signature v1, its parameters in a form body (POST) or the query
/// string (GET). Tests bend any part of it.
pub struct V1<'a> {
    /// `GET` or `POST`.
    pub method: &'a str,
    pub secret_id: &'a str,
    pub secret_key: &'a str,
    /// `SignatureMethod`; none sends no such parameter (which means HmacSHA1).
    pub signature_method: Option<&'a str>,
    /// The host signed, and the `Host` header sent.
    pub signed_host: &'a str,
    pub host: &'a str,
    /// The action's parameters and any of the public ones (`Action`, `Version`, `Nonce`,
    /// `Timestamp` and `SecretId` are added unless given).
    pub params: Vec<(String, String)>,
    /// Parameters added after signing (to tamper), or names removed.
    pub unsigned: Vec<(String, String)>,
    /// Seconds from the engine's clock.
    pub skew_secs: i64,
}

impl<'a> V1<'a> {
    /// `key` is a secret id whose secret key is `<id>-key`; `params` are the action's.
    pub fn new(method: &'a str, key: &'a str, action: &str, params: &[(&str, &str)]) -> V1<'a> {
        let secret_key: &'static str = Box::leak(format!("{key}-key").into_boxed_str());
        let mut all = vec![("Action".to_owned(), action.to_owned())];
        all.extend(params.iter().map(|(name, value)| (name.to_string(), value.to_string())));
        V1 {
            method,
            secret_id: key,
            secret_key,
            signature_method: Some("HmacSHA256"),
            signed_host: HOST,
            host: HOST,
            params: all,
            unsigned: Vec::new(),
            skew_secs: 0,
        }
    }

    /// The signed request.
    pub fn request(&self, now_ms: i64) -> TestRequest {
        let mut params = self.params.clone();
        let mut add = |name: &str, value: String| {
            if !params.iter().any(|(given, _)| given == name) {
                params.push((name.to_owned(), value));
            }
        };
        add("Version", "2022-09-28".into());
        add("Nonce", "4711".into());
        add("Timestamp", (now_ms.div_euclid(1000) + self.skew_secs).to_string());
        add("SecretId", self.secret_id.into());
        if let Some(method) = self.signature_method {
            add("SignatureMethod", method.into());
        }
        let method = V1Method::from_name(self.signature_method).unwrap_or(V1Method::HmacSha256);
        let mut refs: Vec<(&str, &str)> =
            params.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
        let mut encoded = sign_v1(self.method, self.signed_host, self.secret_key, method, &mut refs);
        for (name, value) in &self.unsigned {
            encoded.push_str(&format!("&{name}={value}"));
        }
        let request = match self.method {
            "GET" => TestRequest::get().uri(&format!("/?{encoded}")),
            _ => TestRequest::post()
                .uri("/")
                .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
                .set_payload(encoded),
        };
        request.insert_header(("Host", self.host))
    }
}

/// A GET signed with TC3-HMAC-SHA256 over its query string, as the SDKs sign one: the
/// parameters flattened into the query, `content-type` and `host` signed, the empty body's
/// hash.
pub struct Tc3Get<'a> {
    pub secret_id: &'a str,
    pub secret_key: &'a str,
    pub action: &'a str,
    /// The query string, as sent and signed.
    pub query: String,
    /// The host signed, and the `Host` header sent.
    pub signed_host: &'a str,
    pub host: &'a str,
}

impl<'a> Tc3Get<'a> {
    pub fn new(key: &'a str, action: &'a str, query: &str) -> Tc3Get<'a> {
        let secret_key: &'static str = Box::leak(format!("{key}-key").into_boxed_str());
        Tc3Get { secret_id: key, secret_key, action, query: query.into(), signed_host: HOST, host: HOST }
    }

    pub fn request(&self, now_ms: i64) -> TestRequest {
        let timestamp = now_ms.div_euclid(1000);
        let date = utc_date(timestamp);
        let content_type = "application/x-www-form-urlencoded";
        let headers = [("content-type", content_type), ("host", self.signed_host)];
        let canonical =
            canonical_request("GET", "/", &self.query, &headers, "content-type;host", &sha256_hex(b""));
        let to_sign = string_to_sign(timestamp, &date, SERVICE, &canonical);
        let key = signing_key(self.secret_key, &date, SERVICE);
        let authorization = format!(
            "TC3-HMAC-SHA256 Credential={}/{date}/{SERVICE}/tc3_request, SignedHeaders=content-type;host, Signature={}",
            self.secret_id,
            signature(&key, &to_sign)
        );
        TestRequest::get()
            .uri(&format!("/?{}", self.query))
            .insert_header(("Host", self.host))
            .insert_header(("Content-Type", content_type))
            .insert_header(("X-TC-Action", self.action))
            .insert_header(("X-TC-Version", "2022-09-28"))
            .insert_header(("X-TC-Timestamp", timestamp.to_string()))
            .insert_header(("Authorization", authorization))
    }
}

/// An engine on a manual clock and the API around it, from a TOML configuration (its
/// `[engine]` and `[quotas]` apply). Serve it with [`app!`].
pub fn api(toml: &str) -> (Arc<Engine>, ManualClock, web::Data<Api>) {
    let config = ServerConfig::parse(toml).unwrap();
    config.validate().unwrap();
    let clock = ManualClock::new(super::START);
    let engine_config =
        EngineConfig { runtime: RuntimeKind::Sharded, workers: 2, ..config.engine_config().unwrap() };
    let engine = Arc::new(Engine::start_with_clock(engine_config, Arc::new(clock.clone())));
    (engine.clone(), clock, web::Data::new(Api::new(engine, &config)))
}

/// An engine on an adjustable clock (the real time moved forward by `AdvanceClock`) and the
/// API around it, as `partner-credit serve` makes them with `[engine] adjustable_clock`.
pub fn adjustable_api(toml: &str) -> (Arc<Engine>, OffsetClock, web::Data<Api>) {
    let config = ServerConfig::parse(toml).unwrap();
    config.validate().unwrap();
    let clock = OffsetClock::new();
    let engine_config =
        EngineConfig { runtime: RuntimeKind::Sharded, workers: 2, ..config.engine_config().unwrap() };
    let engine = Arc::new(Engine::start_with_clock(engine_config, Arc::new(clock.clone())));
    let api = Api::new(engine.clone(), &config).with_adjustable_clock(clock.clone());
    (engine, clock, web::Data::new(api))
}

/// The test service of an [`api`].
#[macro_export]
macro_rules! app {
    ($api:expr) => {
        actix_web::test::init_service(
            actix_web::App::new().configure(partner_credit::api::server::configure($api.clone())),
        )
        .await
    };
}

/// Sends a `TestRequest`; answers the `Response` object, after checking that the answer
/// is HTTP 200 JSON with a RequestId, as every answer must be.
#[macro_export]
macro_rules! send {
    ($app:expr, $request:expr) => {{
        let response = actix_web::test::call_service(&$app, $request.to_request()).await;
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = actix_web::test::read_body_json(response).await;
        let inner = body["Response"].clone();
        assert!(inner["RequestId"].as_str().is_some_and(|id| id.len() == 36), "{body}");
        inner
    }};
}

/// The error code of an answer, or "" for a success.
pub fn code(response: &Value) -> &str {
    response["Error"]["Code"].as_str().unwrap_or("")
}
