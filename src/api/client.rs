//! A client of the API over one keep-alive HTTP/1.1 connection (hyper), signing every
//! request with TC3-HMAC-SHA256, over `x-tc-action` too (so it works with servers that set
//! `require_signed_action`). For the benches and the load
//! generator: one client per task, no pool to contend on.

use std::net::SocketAddr;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use super::sign::{self, sign_request, signing_key, utc_date};
use super::VERSION;

/// One connection and one key.
pub struct ApiClient {
    sender: SendRequest<Full<Bytes>>,
    host: String,
    secret_id: String,
    secret_key: String,
    /// The signing key of `day`: derived once a day, not per request.
    day: String,
    day_key: [u8; 32],
}

impl ApiClient {
    pub async fn connect(
        address: SocketAddr,
        secret_id: &str,
        secret_key: &str,
    ) -> anyhow::Result<ApiClient> {
        let stream = tokio::net::TcpStream::connect(address)
            .await
            .with_context(|| format!("connecting to {address}"))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "API connection closed");
            }
        });
        Ok(ApiClient {
            sender,
            host: address.to_string(),
            secret_id: secret_id.to_owned(),
            secret_key: secret_key.to_owned(),
            day: String::new(),
            day_key: [0; 32],
        })
    }

    /// Sends one request and answers the raw response body. A transport failure is an
    /// error; an API error is in the body (`Response.Error`).
    pub async fn call(&mut self, action: &str, body: Vec<u8>) -> anyhow::Result<Bytes> {
        let timestamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
        let date = utc_date(timestamp);
        if date != self.day {
            self.day_key = signing_key(&self.secret_key, &date, sign::SERVICE);
            self.day = date;
        }
        let signed = sign_request(
            &self.secret_id,
            &self.day_key,
            &self.host,
            Some(action),
            &body,
            timestamp,
            &self.day,
        );
        let request = hyper::Request::post("/")
            .header("host", &self.host)
            .header("content-type", signed.content_type)
            .header("x-tc-action", action)
            .header("x-tc-version", VERSION)
            .header("x-tc-timestamp", timestamp.to_string())
            .header("authorization", signed.authorization)
            .body(Full::new(Bytes::from(body)))?;
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        anyhow::ensure!(response.status().is_success(), "HTTP status {}", response.status());
        Ok(response.into_body().collect().await?.to_bytes())
    }
}
