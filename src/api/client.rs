//! A client of the API over one keep-alive HTTP/1.1 connection (hyper), signing every
//! request with TC3-HMAC-SHA256 over a JSON body, over `x-tc-action` too (so it works with
//! servers that set `require_signed_action`), or with signature v1 over a form body, as the
//! Node.js SDK does by default. For the benches and the load generator: one client per task,
//! no pool to contend on.

use std::net::SocketAddr;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use super::sign::{self, sign_request, sign_v1, signing_key, utc_date, V1Method};
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
    /// The last v1 `Nonce` sent: any number will do, so a counter.
    nonce: u64,
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
            nonce: 0,
        })
    }

    /// Sends one request signed with signature v1, `params` (the action's) in a form body,
    /// and answers the raw response body, as [`ApiClient::call`] does.
    pub async fn call_v1(
        &mut self,
        action: &str,
        params: &[(&str, &str)],
        method: V1Method,
    ) -> anyhow::Result<Bytes> {
        let timestamp = unix_seconds()?.to_string();
        self.nonce = self.nonce.wrapping_add(1);
        let nonce = self.nonce.to_string();
        let mut all: Vec<(&str, &str)> = Vec::with_capacity(params.len() + 6);
        all.extend_from_slice(params);
        all.extend_from_slice(&[
            ("Action", action),
            ("Nonce", &nonce),
            ("SecretId", &self.secret_id),
            ("SignatureMethod", method.name()),
            ("Timestamp", &timestamp),
            ("Version", VERSION),
        ]);
        let body = sign_v1("POST", &self.host, &self.secret_key, method, &mut all);
        let request = hyper::Request::post("/")
            .header("host", &self.host)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(body)))?;
        self.send(request).await
    }

    /// Sends one request and answers the raw response body. A transport failure is an
    /// error; an API error is in the body (`Response.Error`).
    pub async fn call(&mut self, action: &str, body: Vec<u8>) -> anyhow::Result<Bytes> {
        let timestamp = unix_seconds()?;
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
        self.send(request).await
    }

    async fn send(&mut self, request: hyper::Request<Full<Bytes>>) -> anyhow::Result<Bytes> {
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        anyhow::ensure!(response.status().is_success(), "HTTP status {}", response.status());
        Ok(response.into_body().collect().await?.to_bytes())
    }
}

fn unix_seconds() -> anyhow::Result<i64> {
    Ok(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64)
}
