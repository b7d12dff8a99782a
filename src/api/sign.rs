//! The API 3.0 request signatures, TC3-HMAC-SHA256 and v1 (HmacSHA1, HmacSHA256): signing
//! (for our own clients) and the pieces the server verifies with. Pure functions of their
//! inputs.
//!
//! TC3: the string to sign is `TC3-HMAC-SHA256\n<timestamp>\n<date>/<service>/tc3_request\n`
//! followed by the hex SHA-256 of the canonical request:
//! `<METHOD>\n/\n<query>\n<name:value\n per signed header>\n<signed headers>\n<hex SHA-256 of the body>`,
//! where the query is the query string as sent (empty for a POST), and the body's hash is of
//! the empty body for a GET, of the literal `UNSIGNED-PAYLOAD` when the client sent
//! `X-TC-Content-SHA256: UNSIGNED-PAYLOAD`. The signing key is
//! `HMAC(HMAC(HMAC("TC3" + secret key, date), service), "tc3_request")`; it depends only on
//! the key and the day, so servers cache it.
//!
//! v1: the parameters (a form body or a query string) carry the signature. The string to sign
//! is `<METHOD><host></>?` followed by every parameter but `Signature`, sorted by name, as
//! `name=value` joined by `&`, names and values as decoded (not percent-encoded again); the
//! signature is the base64 of its HMAC-SHA1 or HMAC-SHA256 under the secret key, as
//! `SignatureMethod` says (HmacSHA1 when it says nothing).

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;
type HmacSha1 = Hmac<sha1::Sha1>;

pub const ALGORITHM: &str = "TC3-HMAC-SHA256";
pub const SERVICE: &str = "intlpartnersmgt";
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The key of one secret for one UTC day (`YYYY-MM-DD`) and service.
pub fn signing_key(secret_key: &str, date: &str, service: &str) -> [u8; 32] {
    let mut first = Vec::with_capacity(3 + secret_key.len());
    first.extend_from_slice(b"TC3");
    first.extend_from_slice(secret_key.as_bytes());
    let date_key = hmac(&first, date.as_bytes());
    let service_key = hmac(&date_key, service.as_bytes());
    hmac(&service_key, b"tc3_request")
}

/// The hex signature of `string_to_sign` under a signing key.
pub fn signature(signing_key: &[u8; 32], string_to_sign: &str) -> String {
    hex::encode(hmac(signing_key, string_to_sign.as_bytes()))
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The canonical request. `headers` are the signed headers' (lowercase name, value) in the
/// order of `signed_headers`; values are trimmed and lowercased, as the API 3.0 rules say.
pub fn canonical_request(
    method: &str,
    uri: &str,
    query: &str,
    headers: &[(&str, &str)],
    signed_headers: &str,
    payload_hash: &str,
) -> String {
    let mut canonical = String::with_capacity(256);
    canonical.push_str(method);
    canonical.push('\n');
    canonical.push_str(uri);
    canonical.push('\n');
    canonical.push_str(query);
    canonical.push('\n');
    for (name, value) in headers {
        canonical.push_str(name);
        canonical.push(':');
        canonical.push_str(&value.trim().to_ascii_lowercase());
        canonical.push('\n');
    }
    canonical.push('\n');
    canonical.push_str(signed_headers);
    canonical.push('\n');
    canonical.push_str(payload_hash);
    canonical
}

pub fn string_to_sign(timestamp: i64, date: &str, service: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{timestamp}\n{date}/{service}/tc3_request\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// The UTC day (`YYYY-MM-DD`) of a Unix timestamp in seconds.
pub fn utc_date(timestamp: i64) -> String {
    let (year, month, day) = crate::domain::ids::civil_from_days(timestamp.div_euclid(86_400));
    format!("{year:04}-{month:02}-{day:02}")
}

/// A v1 signature's hash (`SignatureMethod`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum V1Method {
    HmacSha1,
    HmacSha256,
}

impl V1Method {
    /// The method a `SignatureMethod` names; HmacSHA1 when there is none, as the API
    /// documents.
    pub fn from_name(name: Option<&str>) -> Option<V1Method> {
        match name {
            None | Some("HmacSHA1") => Some(V1Method::HmacSha1),
            Some("HmacSHA256") => Some(V1Method::HmacSha256),
            Some(_) => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            V1Method::HmacSha1 => "HmacSHA1",
            V1Method::HmacSha256 => "HmacSHA256",
        }
    }
}

/// The string a v1 signature signs. `params` are every parameter but `Signature`, sorted
/// by name, decoded.
pub fn v1_string_to_sign<'p>(
    method: &str,
    host: &str,
    path: &str,
    params: impl IntoIterator<Item = (&'p str, &'p str)>,
) -> String {
    let mut text = String::with_capacity(256);
    text.push_str(method);
    text.push_str(host);
    text.push_str(path);
    text.push('?');
    for (index, (name, value)) in params.into_iter().enumerate() {
        if index > 0 {
            text.push('&');
        }
        text.push_str(name);
        text.push('=');
        text.push_str(value);
    }
    text
}

/// The base64 v1 signature of `string_to_sign` under a secret key.
pub fn v1_signature(secret_key: &str, string_to_sign: &str, method: V1Method) -> String {
    let digest: Vec<u8> = match method {
        V1Method::HmacSha1 => {
            let mut mac =
                HmacSha1::new_from_slice(secret_key.as_bytes()).expect("HMAC takes keys of any length");
            mac.update(string_to_sign.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        V1Method::HmacSha256 => hmac(secret_key.as_bytes(), string_to_sign.as_bytes()).to_vec(),
    };
    base64::engine::general_purpose::STANDARD.encode(digest)
}

/// Signs a v1 request for our own clients: `params` (the action's and the public ones, but
/// not `Signature`; sorted here) with the signature added, written as a form body (or query
/// string).
pub fn sign_v1(
    method: &str,
    host: &str,
    secret_key: &str,
    signature_method: V1Method,
    params: &mut [(&str, &str)],
) -> String {
    params.sort_unstable_by(|(a, _), (b, _)| a.as_bytes().cmp(b.as_bytes()));
    let to_sign = v1_string_to_sign(method, host, "/", params.iter().copied());
    let signature = v1_signature(secret_key, &to_sign, signature_method);
    let mut form = String::with_capacity(to_sign.len() + 64);
    for (name, value) in params.iter().copied().chain([("Signature", signature.as_str())]) {
        if !form.is_empty() {
            form.push('&');
        }
        form.extend(percent_encoding::utf8_percent_encode(name, FORM_VALUE));
        form.push('=');
        form.extend(percent_encoding::utf8_percent_encode(value, FORM_VALUE));
    }
    form
}

/// What a form value escapes: everything but the unreserved characters of RFC 3986.
const FORM_VALUE: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// The parts of an `Authorization` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorization<'a> {
    pub secret_id: &'a str,
    pub date: &'a str,
    pub service: &'a str,
    /// Lowercase header names joined by `;`, as signed.
    pub signed_headers: &'a str,
    pub signature: &'a str,
}

/// Parses `TC3-HMAC-SHA256 Credential=<id>/<date>/<service>/tc3_request,
/// SignedHeaders=<a;b>, Signature=<hex>`.
pub fn parse_authorization(header: &str) -> Result<Authorization<'_>, &'static str> {
    let rest = header.strip_prefix(ALGORITHM).ok_or("the algorithm is not TC3-HMAC-SHA256")?;
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(value) = part.strip_prefix("Credential=") {
            credential = Some(value);
        } else if let Some(value) = part.strip_prefix("SignedHeaders=") {
            signed_headers = Some(value);
        } else if let Some(value) = part.strip_prefix("Signature=") {
            signature = Some(value);
        } else {
            return Err("a part is not Credential, SignedHeaders or Signature");
        }
    }
    let credential = credential.ok_or("no Credential")?;
    let mut scope = credential.split('/');
    let (Some(secret_id), Some(date), Some(service), Some("tc3_request"), None) =
        (scope.next(), scope.next(), scope.next(), scope.next(), scope.next())
    else {
        return Err("Credential is not <SecretId>/<date>/<service>/tc3_request");
    };
    let signed_headers = signed_headers.ok_or("no SignedHeaders")?;
    let signature = signature.ok_or("no Signature")?;
    if secret_id.is_empty() || signed_headers.is_empty() || signature.is_empty() {
        return Err("an empty SecretId, SignedHeaders or Signature");
    }
    Ok(Authorization { secret_id, date, service, signed_headers, signature })
}

/// The headers of a signed JSON request, as the official SDKs send it (signed headers
/// `content-type;host`).
#[derive(Clone, Debug)]
pub struct SignedRequest {
    pub authorization: String,
    pub timestamp: i64,
    pub content_type: &'static str,
}

/// Signs a JSON `POST /` to `host`: with `action` `None` the way the official Python SDK
/// does (signed headers `content-type;host`), with `Some(action)` also over `x-tc-action`
/// (as newer SDKs do), so that the body cannot be replayed under another action.
pub fn sign_request(
    secret_id: &str,
    signing_key: &[u8; 32],
    host: &str,
    action: Option<&str>,
    body: &[u8],
    timestamp: i64,
    date: &str,
) -> SignedRequest {
    let content_type = "application/json";
    let mut headers = vec![("content-type", content_type), ("host", host)];
    if let Some(action) = action {
        headers.push(("x-tc-action", action));
    }
    let signed_headers = if action.is_some() { "content-type;host;x-tc-action" } else { "content-type;host" };
    let canonical = canonical_request("POST", "/", "", &headers, signed_headers, &sha256_hex(body));
    let to_sign = string_to_sign(timestamp, date, SERVICE, &canonical);
    let authorization = format!(
        "{ALGORITHM} Credential={secret_id}/{date}/{SERVICE}/tc3_request, SignedHeaders={signed_headers}, Signature={}",
        signature(signing_key, &to_sign)
    );
    SignedRequest { authorization, timestamp, content_type }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        let cases = [
            (0, "1970-01-01"),
            (86_399, "1970-01-01"),
            (86_400, "1970-01-02"),
            (951_782_400, "2000-02-29"),
            (1_551_113_065, "2019-02-25"),
            (1_767_225_600, "2026-01-01"),
            (1_795_478_399, "2026-11-23"),
        ];
        for (timestamp, date) in cases {
            assert_eq!(utc_date(timestamp), date, "{timestamp}");
        }
    }

    /// The inputs of the API 3.0 signature documentation's example (CVM DescribeInstances,
    /// 2019-02-25); the expected hashes were computed by the official Python SDK's signer
    /// (`tencentcloud.common.sign.Sign.sign_tc3`, tencentcloud-sdk-python-intl-en 3.1.193).
    #[test]
    fn the_documented_example() {
        let body =
            r#"{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}"#;
        let canonical = canonical_request(
            "POST",
            "/",
            "",
            &[("content-type", "application/json; charset=utf-8"), ("host", "cvm.tencentcloudapi.com")],
            "content-type;host",
            &sha256_hex(body.as_bytes()),
        );
        assert_eq!(
            sha256_hex(canonical.as_bytes()),
            "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
        );
        let key = signing_key("Gu5t9xGARNpq86cd98joQYCN3Cozk1qA", "2019-02-25", "cvm");
        let to_sign = string_to_sign(1_551_113_065, "2019-02-25", "cvm", &canonical);
        assert_eq!(
            signature(&key, &to_sign),
            "8571a3fd5c5a24cb2b8e10509e02add887e49e59370eed066496522e687e8f6b"
        );
    }

    /// Signature v1: the documented example (CVM `DescribeInstances`, HmacSHA1, whose
    /// signature the API 3.0 "Signature" page gives), and requests as the Node.js SDK signs
    /// them. Every expected value was computed apart from this code, with Python's `hmac`
    /// and `base64` (`base64.b64encode(hmac.new(key, text.encode(), hashlib.sha1).digest())`).
    #[test]
    fn v1_worked_examples() {
        let params = [
            ("Action", "DescribeInstances"),
            ("InstanceIds.0", "ins-09dx96dg"),
            ("Limit", "20"),
            ("Nonce", "11886"),
            ("Offset", "0"),
            ("Region", "ap-guangzhou"),
            ("SecretId", "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE"),
            ("Timestamp", "1465185768"),
            ("Version", "2017-03-12"),
        ];
        let to_sign = v1_string_to_sign("GET", "cvm.tencentcloudapi.com", "/", params);
        assert_eq!(
            to_sign,
            "GETcvm.tencentcloudapi.com/?Action=DescribeInstances&InstanceIds.0=ins-09dx96dg&Limit=20\
             &Nonce=11886&Offset=0&Region=ap-guangzhou&SecretId=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE\
             &Timestamp=1465185768&Version=2017-03-12"
        );
        let key = "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE";
        assert_eq!(v1_signature(key, &to_sign, V1Method::HmacSha1), "EliP9YW3pW28FpsEdkXt/+WcGeI=");
        assert_eq!(
            v1_signature(key, &to_sign, V1Method::HmacSha256),
            "bR/zQ3QqOmcEYeRv71IzG/NxfisUDgy9cqRMQC+UB5g="
        );

        // A POST with a port in the host, and a value that is not ASCII and holds a space and
        // a slash: signed as decoded.
        let params = [
            ("Action", "CreatePurchase"),
            ("Amount", "1.5"),
            ("ClientUin", "2000001"),
            ("Language", "en-US"),
            ("Nonce", "4711"),
            ("PurchaseId", "order 1/\u{20ac}"),
            ("RequestClient", "SDK_NODEJS_INTL_EN3.0.1335"),
            ("SecretId", "AKIDtest"),
            ("SignatureMethod", "HmacSHA256"),
            ("Timestamp", "1767225600"),
            ("Version", "2022-09-28"),
        ];
        let to_sign = v1_string_to_sign("POST", "intlpartnersmgt.localhost:8080", "/", params);
        let key = "secret-key-of-test";
        assert_eq!(
            v1_signature(key, &to_sign, V1Method::HmacSha256),
            "0MlL3VUxKbo24eoirYy1LW6l97a9I4yaXblPu0wMjbU="
        );
        assert_eq!(v1_signature(key, &to_sign, V1Method::HmacSha1), "XRGnbJ0XYdLDPRZSeaGRcmMHhno=");

        // Our own signer sorts, signs and percent-encodes the same request alike.
        let mut unsorted: Vec<(&str, &str)> = params.iter().rev().copied().collect();
        let form =
            sign_v1("POST", "intlpartnersmgt.localhost:8080", key, V1Method::HmacSha256, &mut unsorted);
        assert!(form.starts_with("Action=CreatePurchase&Amount=1.5&"), "{form}");
        assert!(form.contains("&PurchaseId=order%201%2F%E2%82%AC&"), "{form}");
        assert!(form.ends_with("&Signature=0MlL3VUxKbo24eoirYy1LW6l97a9I4yaXblPu0wMjbU%3D"), "{form}");
    }

    #[test]
    fn v1_methods() {
        assert_eq!(V1Method::from_name(None), Some(V1Method::HmacSha1));
        assert_eq!(V1Method::from_name(Some("HmacSHA1")), Some(V1Method::HmacSha1));
        assert_eq!(V1Method::from_name(Some("HmacSHA256")), Some(V1Method::HmacSha256));
        for other in ["hmacsha256", "TC3-HMAC-SHA256", ""] {
            assert_eq!(V1Method::from_name(Some(other)), None, "{other}");
        }
    }

    #[test]
    fn authorization_headers() {
        let header = "TC3-HMAC-SHA256 Credential=AKID/2026-11-23/intlpartnersmgt/tc3_request, SignedHeaders=content-type;host, Signature=abc";
        let parsed = parse_authorization(header).unwrap();
        assert_eq!(
            parsed,
            Authorization {
                secret_id: "AKID",
                date: "2026-11-23",
                service: "intlpartnersmgt",
                signed_headers: "content-type;host",
                signature: "abc"
            }
        );
        let bad = [
            "",
            "HMAC-SHA1 Credential=a/b/c/tc3_request, SignedHeaders=host, Signature=x",
            "TC3-HMAC-SHA256 Credential=a/b/c, SignedHeaders=host, Signature=x",
            "TC3-HMAC-SHA256 Credential=a/b/c/tc3_request, Signature=x",
            "TC3-HMAC-SHA256 Credential=a/b/c/tc3_request, SignedHeaders=host",
            "TC3-HMAC-SHA256 Credential=/b/c/tc3_request, SignedHeaders=host, Signature=x",
            "TC3-HMAC-SHA256 Credential=a/b/c/tc3_request, SignedHeaders=host, Signature=x, Extra=1",
        ];
        for header in bad {
            assert!(parse_authorization(header).is_err(), "{header}");
        }
    }
}
