//! `GET /health` and `GET /metrics`: the server's own endpoints for orchestrators, test
//! harnesses and Prometheus. They are not API actions, so they are not signed and answer
//! with real HTTP statuses, unlike every API answer (HTTP 200 with the error in the body).
//!
//! - `/health`: 200 `{"status": "ready", ...}` once the world is imported and the server
//!   serves, 503 `{"status": "starting"}` before and `{"status": "stopping"}` once told to
//!   stop;
//! - `/metrics`: the counters of [`super::metrics`] in the Prometheus text format; 404 when
//!   `[admin] metrics = false`.
//!
//! They are served beside the API, or on their own listener with `[admin] listen`.

use actix_web::http::header::CONTENT_TYPE;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::json;

use super::metrics::{gauge_of, Scraped, CONTENT_TYPE as METRICS_CONTENT_TYPE};
use super::server::{Api, Readiness};

/// Adds `GET /health` and `GET /metrics` to an app whose data holds the [`Api`].
pub fn routes(config: &mut web::ServiceConfig) {
    config.route("/health", web::get().to(health)).route("/metrics", web::get().to(metrics));
}

async fn health(api: web::Data<Api>) -> HttpResponse {
    let (status, text) = match api.readiness() {
        Readiness::Starting => (StatusCode::SERVICE_UNAVAILABLE, "starting"),
        Readiness::Ready => (StatusCode::OK, "ready"),
        Readiness::Stopping => (StatusCode::SERVICE_UNAVAILABLE, "stopping"),
    };
    HttpResponse::build(status).json(json!({
        "status": text,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": api.started.elapsed().as_secs(),
    }))
}

async fn metrics(api: web::Data<Api>) -> HttpResponse {
    let Some(metrics) = api.metrics() else {
        return HttpResponse::NotFound()
            .insert_header((CONTENT_TYPE, "text/plain; charset=utf-8"))
            .body("metrics are off: the configuration sets [admin] metrics = false\n");
    };
    // A stopped runtime has no count to give: the gauge is left out rather than made up.
    let open_reservations = api.engine().open_reservations().await.ok().map(gauge_of);
    let text = metrics.encode(Scraped { open_reservations, webhooks: api.webhook_stats() });
    HttpResponse::Ok().insert_header((CONTENT_TYPE, METRICS_CONTENT_TYPE)).body(text)
}
