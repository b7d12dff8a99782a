//! Who a request comes from: its signature, checked against the server's keys (each maps a
//! SecretId to a UIN; one is the operator's).
//!
//! Two signatures, as the official SDKs send them:
//! - TC3-HMAC-SHA256 in the `Authorization` header, over a JSON or form body (POST) or the
//!   query string (GET, with the empty body's hash); the timestamp in `X-TC-Timestamp`;
//! - v1 among the parameters (a form body or a query string): `SecretId`, `Timestamp`,
//!   `Nonce`, `SignatureMethod` (`HmacSHA1` or `HmacSHA256`; HmacSHA1 when absent) and
//!   `Signature`.
//!
//! Both give the same answers for the same faults: a malformed signature (no
//! `Authorization`, no `Signature`, an unknown method, a service that is not ours) is
//! `AuthFailure.InvalidAuthorization`; a timestamp more than the configured skew from the
//! server's clock `AuthFailure.SignatureExpire`; an unknown SecretId
//! `AuthFailure.SecretIdNotFound`; a signature that does not match `AuthFailure.SignatureFailure`.
//!
//! The host a signature covers: the `Host` header as sent, and, where it carries a port,
//! the same host without it. The Python SDK and every v1 signer sign the endpoint as
//! configured (with its port), the Node.js SDK signs TC3 with the host name alone; both are
//! the client's own view of the server it called, so both are accepted. Nothing else is: a
//! signature for another host fails.
//!
//! Invariant: the signing key of a secret for TC3 is derived once per UTC day and cached;
//! comparisons of signatures take the same time whatever they hold in common.

use std::collections::HashMap;

use actix_web::http::header::HeaderMap;
use parking_lot::Mutex;

use super::config::ServerConfig;
use super::decode::FlatParams;
use super::errors::ApiError;
use super::sign::{
    self, canonical_request, parse_authorization, sha256_hex, signature, signing_key, string_to_sign,
    v1_signature, v1_string_to_sign, Authorization, V1Method,
};
use crate::domain::{Caller, Uin};

/// The server's keys.
pub struct Keys {
    keys: HashMap<String, KeyEntry>,
}

struct KeyEntry {
    secret_key: String,
    caller: Caller,
    /// The TC3 signing key of the last day seen: deriving it costs four HMACs.
    day_key: Mutex<Option<(String, [u8; 32])>>,
}

/// The parameters of signature v1 and of the API's common parameters: never an action's.
pub const V1_PARAMETERS: [&str; 11] = [
    "Action",
    "Language",
    "Nonce",
    "Region",
    "RequestClient",
    "SecretId",
    "Signature",
    "SignatureMethod",
    "Timestamp",
    "Token",
    "Version",
];

/// What the signature of a request covers besides its parameters or body.
pub struct Signed<'r> {
    /// `GET` or `POST`.
    pub method: &'r str,
    /// The `Host` header as sent.
    pub host: Option<&'r str>,
    /// The query string as sent.
    pub query: &'r str,
    pub headers: &'r HeaderMap,
}

/// The window a request's timestamp must fall in.
#[derive(Clone, Copy)]
pub struct Window {
    /// The server's time, in Unix seconds.
    pub now: i64,
    pub skew_secs: i64,
}

impl Window {
    fn check(self, timestamp: i64) -> Result<(), ApiError> {
        if self.now.abs_diff(timestamp) > self.skew_secs.unsigned_abs() {
            return Err(ApiError::new(
                "AuthFailure.SignatureExpire",
                format!(
                    "the request's timestamp {timestamp} is more than {} s from the server's {}",
                    self.skew_secs, self.now
                ),
            ));
        }
        Ok(())
    }
}

/// What [`Keys::tc3_credentials`] found in the headers, for the signature check once the
/// body is read.
pub struct Tc3Credentials<'h> {
    parsed: Authorization<'h>,
    timestamp: i64,
    key: &'h KeyEntry,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new("AuthFailure.InvalidAuthorization", message)
}

fn signature_failure(message: impl Into<String>) -> ApiError {
    ApiError::new("AuthFailure.SignatureFailure", message)
}

impl Keys {
    pub fn new(config: &ServerConfig) -> Keys {
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
        Keys { keys }
    }

    fn get(&self, secret_id: &str) -> Result<&KeyEntry, ApiError> {
        self.keys.get(secret_id).ok_or_else(|| {
            ApiError::new("AuthFailure.SecretIdNotFound", format!("no key has the SecretId {secret_id}"))
        })
    }

    /// The TC3 checks that need only the headers (Authorization well formed, timestamp
    /// within the window, a known SecretId, our service), made before the body is read.
    pub fn tc3_credentials<'h>(
        &'h self,
        headers: &'h HeaderMap,
        window: Window,
    ) -> Result<Tc3Credentials<'h>, ApiError> {
        let authorization = header(headers, "authorization")
            .ok_or_else(|| invalid("the request has no Authorization header"))?;
        let parsed = parse_authorization(authorization)
            .map_err(|reason| invalid(format!("Authorization: {reason}")))?;
        let timestamp =
            header(headers, "x-tc-timestamp").ok_or_else(|| ApiError::missing("X-TC-Timestamp"))?;
        let timestamp: i64 =
            timestamp.parse().map_err(|_| ApiError::wrong_type("X-TC-Timestamp", "Unix seconds"))?;
        window.check(timestamp)?;
        let key = self.get(parsed.secret_id)?;
        if parsed.service != sign::SERVICE {
            return Err(invalid(format!(
                "the credential's service is {}, not {}",
                parsed.service,
                sign::SERVICE
            )));
        }
        Ok(Tc3Credentials { parsed, timestamp, key })
    }

    /// The caller a correctly TC3-signed request comes from: the signature over the headers
    /// it names, the query string and the body.
    pub fn tc3_caller(
        &self,
        credentials: Tc3Credentials<'_>,
        signed: &Signed<'_>,
        body: &[u8],
        require_signed_action: bool,
    ) -> Result<Caller, ApiError> {
        let Tc3Credentials { parsed, timestamp, key } = credentials;
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
        if require_signed_action && !names.contains(&"x-tc-action") {
            return Err(invalid("this server requires x-tc-action among the SignedHeaders"));
        }
        let mut headers = Vec::with_capacity(names.len());
        for name in &names {
            if name.is_empty() || name.bytes().any(|byte| byte.is_ascii_uppercase()) {
                return Err(invalid("SignedHeaders are lowercase header names separated by ;"));
            }
            let value = header(signed.headers, name).ok_or_else(|| {
                signature_failure(format!("the signed header {name} is not in the request"))
            })?;
            headers.push((*name, value));
        }
        let payload_hash = if header(signed.headers, "x-tc-content-sha256") == Some(sign::UNSIGNED_PAYLOAD) {
            sha256_hex(sign::UNSIGNED_PAYLOAD.as_bytes())
        } else {
            sha256_hex(body)
        };
        let day_key = key.day_key(parsed.date, parsed.service);
        let host = headers.iter().position(|(name, _)| *name == "host").expect("host is signed");
        let sent = headers[host].1;
        for form in host_forms(sent) {
            headers[host].1 = form;
            let canonical = canonical_request(
                signed.method,
                "/",
                signed.query,
                &headers,
                parsed.signed_headers,
                &payload_hash,
            );
            let to_sign = string_to_sign(timestamp, parsed.date, parsed.service, &canonical);
            if constant_time_eq(signature(&day_key, &to_sign).as_bytes(), parsed.signature.as_bytes()) {
                return Ok(key.caller);
            }
        }
        Err(signature_failure("the signature does not match the request"))
    }

    /// The caller a correctly v1-signed request comes from, from its parameters (all of
    /// them, the v1 ones included, as received, sorted by [`FlatParams::sort`]).
    pub fn v1_caller(
        &self,
        params: &FlatParams<'_>,
        signed: &Signed<'_>,
        window: Window,
    ) -> Result<Caller, ApiError> {
        let given = params
            .get("Signature")
            .ok_or_else(|| invalid("the request has no Authorization header and no Signature parameter"))?;
        let method = params.get("SignatureMethod");
        let method = V1Method::from_name(method).ok_or_else(|| {
            invalid(format!("SignatureMethod {:?} is not HmacSHA1 or HmacSHA256", method.unwrap_or_default()))
        })?;
        let secret_id = params
            .get("SecretId")
            .filter(|id| !id.is_empty())
            .ok_or_else(|| invalid("the request has a Signature but no SecretId"))?;
        let timestamp = params.get("Timestamp").ok_or_else(|| ApiError::missing("Timestamp"))?;
        let timestamp: i64 =
            timestamp.parse().map_err(|_| ApiError::wrong_type("Timestamp", "Unix seconds"))?;
        window.check(timestamp)?;
        let key = self.get(secret_id)?;
        let nonce = params.get("Nonce").ok_or_else(|| ApiError::missing("Nonce"))?;
        nonce.parse::<u64>().map_err(|_| ApiError::wrong_type("Nonce", "an unsigned integer"))?;
        let host = signed.host.ok_or_else(|| signature_failure("the request has no Host header"))?;
        for form in host_forms(host) {
            let signed_params = params
                .pairs()
                .iter()
                .filter(|(name, _)| name != "Signature")
                .map(|(n, v)| (n.as_ref(), v.as_ref()));
            let to_sign = v1_string_to_sign(signed.method, form, "/", signed_params);
            if constant_time_eq(v1_signature(&key.secret_key, &to_sign, method).as_bytes(), given.as_bytes())
            {
                return Ok(key.caller);
            }
        }
        Err(signature_failure("the signature does not match the request"))
    }
}

impl KeyEntry {
    fn day_key(&self, date: &str, service: &str) -> [u8; 32] {
        let mut cached = self.day_key.lock();
        match &*cached {
            Some((day, day_key)) if day == date => *day_key,
            _ => {
                let day_key = signing_key(&self.secret_key, date, service);
                *cached = Some((date.to_owned(), day_key));
                day_key
            }
        }
    }
}

/// The forms of a `Host` a client may have signed: as sent, then without its port if it
/// carries one (`host:8080`, `[::1]:8080`; a bare IPv6 address has none).
pub fn host_forms(host: &str) -> impl Iterator<Item = &str> {
    std::iter::once(host).chain(without_port(host))
}

fn without_port(host: &str) -> Option<&str> {
    let (name, port) = host.rsplit_once(':')?;
    let bracketed = name.starts_with('[') && name.ends_with(']');
    if port.is_empty()
        || !port.bytes().all(|byte| byte.is_ascii_digit())
        || (name.contains(':') && !bracketed)
    {
        return None;
    }
    Some(name)
}

pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_with_and_without_their_port() {
        let forms = |host| host_forms(host).collect::<Vec<_>>();
        assert_eq!(
            forms("intlpartnersmgt.localhost:8080"),
            ["intlpartnersmgt.localhost:8080", "intlpartnersmgt.localhost"]
        );
        assert_eq!(forms("127.0.0.1:443"), ["127.0.0.1:443", "127.0.0.1"]);
        assert_eq!(forms("[::1]:8080"), ["[::1]:8080", "[::1]"]);
        for alone in ["intlpartnersmgt.tencentcloudapi.com", "[::1]", "::1", "host:", "host:80a"] {
            assert_eq!(forms(alone), [alone], "{alone}");
        }
    }
}
