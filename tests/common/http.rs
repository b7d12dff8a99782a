//! The API server in process: actix-web's test service around the real handler, and
//! requests signed with TC3-HMAC-SHA256 as the official SDKs sign them.

use std::sync::Arc;

use actix_web::test::TestRequest;
use actix_web::web;
use serde_json::Value;

use partner_credit::api::config::ServerConfig;
use partner_credit::api::server::Api;
use partner_credit::api::sign::{sign_request, signing_key, utc_date, SERVICE};
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
        }
    }

    /// The signed request.
    pub fn request(&self, now_ms: i64) -> TestRequest {
        let timestamp = now_ms.div_euclid(1000) + self.skew_secs;
        let date = utc_date(timestamp);
        let key = signing_key(self.secret_key, &date, SERVICE);
        let signed = sign_request(self.secret_id, &key, HOST, None, &self.body, timestamp, &date);
        TestRequest::post()
            .uri("/")
            .insert_header(("Host", HOST))
            .insert_header(("Content-Type", signed.content_type))
            .insert_header(("X-TC-Action", self.action))
            .insert_header(("X-TC-Version", self.version))
            .insert_header(("X-TC-Timestamp", timestamp.to_string()))
            .insert_header(("Authorization", signed.authorization))
            .set_payload(self.body.clone())
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
