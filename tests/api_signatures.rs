//! Every way the official SDKs sign and send a request, through the real handler in process:
//! signature v1 (HmacSHA1, HmacSHA256, and none named) over a form body and a query string,
//! TC3 over a query string, the `Host` with and without its port, and the one rule of every
//! encoding that a request names each parameter once. Each refusal gets its code and changes
//! nothing.

mod common;

use actix_web::test::TestRequest;
use serde_json::{json, Value};

use common::http::{api, code, Call, Tc3Get, V1};
use common::OP;
use partner_credit::Uin;

const CONFIG: &str = r#"
listen = "127.0.0.1:0"
[operator]
secret_id = "op"
secret_key = "op-key"
[[keys]]
secret_id = "r"
secret_key = "r-key"
uin = 3
[[keys]]
secret_id = "c"
secret_key = "c-key"
uin = 10
"#;

/// A host with a port, as a client configured with `intlpartnersmgt.localhost:8080` sends it.
const HOST_WITH_PORT: &str = "intlpartnersmgt.localhost:8080";

/// R (3) with a line of 500 and its customer C (10) with 200.
macro_rules! world {
    () => {{
        let (engine, clock, api) = api(CONFIG);
        let app = app!(api);
        for call in [
            Call::new("op", "CreatePartner", &json!({"Kind": "Reseller", "Uin": 3})),
            Call::new("op", "CreateClient", &json!({"ParentUin": 3, "Uin": 10, "Name": "c"})),
            Call::new("op", "GrantPartnerCredit", &json!({"PartnerUin": 3, "Credit": 500})),
            Call::new("r", "AllocateCustomerCredit", &json!({"ClientUin": 10, "AddedCredit": 200})),
        ] {
            assert_eq!(code(&send!(app, call.request(engine.now().0))), "");
        }
        (engine, clock, app)
    }};
}

/// The books of R and C, to check that nothing changed.
async fn books(engine: &partner_credit::Engine) -> (String, String) {
    let r = engine.account(OP, Uin(3)).await.unwrap();
    let c = engine.account(OP, Uin(10)).await.unwrap();
    (format!("{:?}", r.role), format!("{:?}", c.role))
}

/// The customer's remaining credit, through the API.
macro_rules! remaining {
    ($app:expr, $now:expr) => {{
        let query = Call::new("r", "QueryCreditByUinList", &json!({"UinList": [10]}));
        send!($app, query.request($now))["Data"][0]["RemainingCredit"].clone()
    }};
}

/// A number as the API writes it.
fn number(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

#[actix_web::test]
async fn v1_by_post_and_get_with_every_signature_method() {
    let (engine, _clock, app) = world!();
    let now = engine.now().0;
    let mut spent = 0;
    for method in ["POST", "GET"] {
        for signature_method in [Some("HmacSHA256"), Some("HmacSHA1"), None] {
            spent += 2;
            let id = format!("v1-{method}-{}", signature_method.unwrap_or("default"));
            let mut call = V1::new(
                method,
                "c",
                "CreatePurchase",
                &[("PurchaseId", &id), ("ClientUin", "10"), ("Amount", "2.00")],
            );
            call.signature_method = signature_method;
            let answer = send!(app, call.request(now));
            assert_eq!(answer["Status"], "Committed", "{method} {signature_method:?}: {answer}");
            assert_eq!(answer["PurchaseId"], id.as_str());
            assert_eq!(answer["ClientRemainingCredit"], json!(200 - spent));
            assert_eq!(answer["ClientCharge"], number("2"));
        }
    }
    // The general path reads flattened lists and objects as it reads JSON ones.
    let batch = V1::new(
        "POST",
        "c",
        "CreatePurchases",
        &[
            ("Purchases.0.PurchaseId", "b-0"),
            ("Purchases.0.ClientUin", "10"),
            ("Purchases.0.Amount", "1"),
            ("Purchases.1.PurchaseId", "b-1"),
            ("Purchases.1.ClientUin", "10"),
            ("Purchases.1.Amount", "0"),
        ],
    );
    let results = send!(app, batch.request(now))["Results"].clone();
    assert_eq!(results[0]["Status"], "Committed", "{results}");
    assert_eq!(
        (results[1]["Status"].clone(), results[1]["ErrorCode"].clone()),
        (json!("Refused"), json!("InvalidParameterValue.Amount"))
    );
    let listed = send!(app, V1::new("GET", "r", "QueryCreditByUinList", &[("UinList.0", "10")]).request(now));
    assert_eq!(listed["Data"], json!([{"Uin": 10, "TotalCredit": 200, "RemainingCredit": 187}]));
    // A boolean as either SDK writes it.
    for enabled in ["true", "False"] {
        let priority = V1::new("POST", "r", "SetTrialVoucherPriority", &[("Enabled", enabled)]);
        assert_eq!(code(&send!(app, priority.request(now))), "", "{enabled}");
    }
    assert_eq!(remaining!(app, now), json!(187));
}

#[actix_web::test]
async fn v1_refusals_change_nothing() {
    let (engine, _clock, app) = world!();
    let before = books(&engine).await;
    let now = engine.now().0;
    let purchase = [("PurchaseId", "p"), ("ClientUin", "10"), ("Amount", "1")];
    let call = |method| V1::new(method, "c", "CreatePurchase", &purchase);
    let cases: Vec<(V1, &str)> = vec![
        (V1 { secret_key: "not-the-key", ..call("POST") }, "AuthFailure.SignatureFailure"),
        (V1 { secret_id: "nobody", ..call("GET") }, "AuthFailure.SecretIdNotFound"),
        (V1 { skew_secs: 301, ..call("POST") }, "AuthFailure.SignatureExpire"),
        (V1 { skew_secs: -301, ..call("GET") }, "AuthFailure.SignatureExpire"),
        (V1 { signature_method: Some("HmacMD5"), ..call("POST") }, "AuthFailure.InvalidAuthorization"),
        // Signed for another host, or signed and then changed.
        (V1 { signed_host: "elsewhere.example.com", ..call("POST") }, "AuthFailure.SignatureFailure"),
        (
            V1 { unsigned: vec![("ProductCode".into(), "cvm".into())], ..call("POST") },
            "AuthFailure.SignatureFailure",
        ),
        (V1::new("POST", "c", "NoSuchThing", &purchase), "InvalidAction"),
        (
            V1::new(
                "POST",
                "c",
                "CreatePurchase",
                &[("PurchaseId", "p"), ("ClientUin", "10"), ("Amount", "1"), ("Version", "2017-03-12")],
            ),
            "NoSuchVersion",
        ),
        (
            V1::new(
                "POST",
                "c",
                "CreatePurchase",
                &[("PurchaseId", "p"), ("ClientUin", "10"), ("Amount", "1"), ("Nonce", "x")],
            ),
            "InvalidParameter",
        ),
        (
            V1::new(
                "POST",
                "c",
                "CreatePurchase",
                &[("PurchaseId", "p"), ("ClientUin", "10"), ("Amount", "1"), ("Timestamp", "soon")],
            ),
            "InvalidParameter",
        ),
        // The action's own refusals, as in JSON.
        (
            V1::new(
                "POST",
                "c",
                "CreatePurchase",
                &[("PurchaseId", "p"), ("ClientUin", "10"), ("Amount", "1000")],
            ),
            "FailedOperation.InsufficientClientCredit",
        ),
        (
            V1::new(
                "GET",
                "c",
                "CreatePurchase",
                &[("PurchaseId", "p"), ("ClientUin", "ten"), ("Amount", "1")],
            ),
            "InvalidParameter",
        ),
        (
            V1::new(
                "GET",
                "c",
                "CreatePurchase",
                &[("PurchaseId", "p"), ("ClientUin", "10"), ("Amount", "1"), ("Colour", "red")],
            ),
            "UnknownParameter",
        ),
        (
            V1::new("POST", "c", "CreatePurchase", &[("PurchaseId", "p"), ("ClientUin", "10")]),
            "MissingParameter",
        ),
    ];
    for (call, expected) in &cases {
        let answer = send!(app, call.request(now));
        assert_eq!(code(&answer), *expected, "{} {:?}: {answer}", call.method, call.params);
    }
    // A form body without a signature, and a query string without one.
    let bare = TestRequest::post()
        .uri("/")
        .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
        .set_payload("Action=Ping&Version=2022-09-28");
    let answer = send!(app, bare);
    assert_eq!(
        (code(&answer), answer["Error"]["Message"].as_str().unwrap()),
        (
            "AuthFailure.InvalidAuthorization",
            "the request has no Authorization header and no Signature parameter"
        )
    );
    let no_nonce =
        format!("/?Action=Ping&Signature=x&SecretId=op&Timestamp={}&Version=2022-09-28", now / 1000);
    assert_eq!(code(&send!(app, TestRequest::get().uri(&no_nonce))), "MissingParameter");
    let expired = "/?Action=Ping&Signature=x&SecretId=op&Timestamp=1&Nonce=1&Version=2022-09-28";
    assert_eq!(code(&send!(app, TestRequest::get().uri(expired))), "AuthFailure.SignatureExpire");
    assert_eq!(books(&engine).await, before);
}

#[actix_web::test]
async fn hosts_with_and_without_their_port() {
    let (engine, _clock, app) = world!();
    let now = engine.now().0;
    // TC3 as the Node.js SDK signs it (the host name alone) and as the Python SDK does (the
    // endpoint as configured), with the port in the Host header either way.
    for signed_host in ["intlpartnersmgt.localhost", HOST_WITH_PORT] {
        let post = Call { signed_host, host: HOST_WITH_PORT, ..Call::new("op", "Ping", &json!({})) };
        assert_eq!(code(&send!(app, post.request(now))), "", "TC3 POST signed for {signed_host}");
        let get = Tc3Get {
            signed_host,
            host: HOST_WITH_PORT,
            ..Tc3Get::new("r", "QueryCreditByUinList", "UinList.0=10")
        };
        let answer = send!(app, get.request(now));
        assert_eq!(answer["Data"][0]["Uin"], 10, "TC3 GET signed for {signed_host}: {answer}");
        let v1 = V1 { signed_host, host: HOST_WITH_PORT, ..V1::new("POST", "op", "Ping", &[]) };
        assert_eq!(code(&send!(app, v1.request(now))), "", "v1 signed for {signed_host}");
    }
    // Not another host, nor another port, nor the port added to a host sent without one.
    for (signed_host, host) in [
        ("intlpartnersmgt.localhost:9090", HOST_WITH_PORT),
        ("elsewhere:8080", HOST_WITH_PORT),
        (HOST_WITH_PORT, "intlpartnersmgt.localhost"),
    ] {
        let post = Call { signed_host, host, ..Call::new("op", "Ping", &json!({})) };
        assert_eq!(
            code(&send!(app, post.request(now))),
            "AuthFailure.SignatureFailure",
            "TC3 {signed_host} as {host}"
        );
        let v1 = V1 { signed_host, host, ..V1::new("GET", "op", "Ping", &[]) };
        assert_eq!(
            code(&send!(app, v1.request(now))),
            "AuthFailure.SignatureFailure",
            "v1 {signed_host} as {host}"
        );
    }
}

#[actix_web::test]
async fn tc3_over_a_query_string() {
    let (engine, _clock, app) = world!();
    let before = books(&engine).await;
    let now = engine.now().0;
    let get =
        Tc3Get::new("c", "CreatePurchase", "PurchaseId=g-1&ClientUin=10&Amount=3.5&ProductCode=cvm%20x");
    let answer = send!(app, get.request(now));
    assert_eq!(
        (answer["Status"].clone(), answer["ClientRemainingCredit"].clone()),
        (json!("Committed"), json!(196.5)),
        "{answer}"
    );
    // The query string is signed: another one fails.
    let signed = Tc3Get::new("c", "CreatePurchase", "PurchaseId=g-2&ClientUin=10&Amount=1").request(now);
    let changed = signed.uri("/?PurchaseId=g-2&ClientUin=10&Amount=100");
    assert_eq!(code(&send!(app, changed)), "AuthFailure.SignatureFailure");
    // A GET carries its parameters in its query string, a POST in its body, never both.
    let with_body = Tc3Get::new("c", "Ping", "").request(now).set_payload("{}");
    assert_eq!(code(&send!(app, with_body)), "InvalidParameter");
    let with_query = Call::new("op", "Ping", &json!({})).request(now).uri("/?Extra=1");
    assert_eq!(code(&send!(app, with_query)), "InvalidParameter");
    assert_eq!(remaining!(app, now), json!(196.5));
    let after = books(&engine).await;
    assert_ne!(after, before, "the one purchase made");
}

#[actix_web::test]
async fn a_name_given_twice_is_refused_in_every_encoding() {
    let (engine, _clock, app) = world!();
    let before = books(&engine).await;
    let now = engine.now().0;
    let raw = |key: &'static str, action: &'static str, body: &str| Call {
        body: body.as_bytes().to_vec(),
        ..Call::new(key, action, &json!({}))
    };
    let message = |answer: &Value| answer["Error"]["Message"].as_str().unwrap_or_default().to_owned();
    let cases: Vec<(TestRequest, &str)> = vec![
        // JSON, where the fast path's typed parsing sees a repeated field and gives way to
        // the general path, which names it.
        (
            raw("c", "CreatePurchase", r#"{"PurchaseId": "d", "ClientUin": 10, "Amount": 1, "Amount": 150}"#)
                .request(now),
            "Amount",
        ),
        (
            raw(
                "c",
                "CreatePurchases",
                r#"{"Purchases": [{"PurchaseId": "d", "ClientUin": 10, "Amount": 1, "PurchaseId": "e"}]}"#,
            )
            .request(now),
            "Purchases.0.PurchaseId",
        ),
        (raw("r", "QueryCreditByUinList", r#"{"UinList": [10], "UinList": [11]}"#).request(now), "UinList"),
        // A form body and a query string (v1 and TC3).
        (
            V1::new(
                "POST",
                "c",
                "CreatePurchase",
                &[("PurchaseId", "d"), ("ClientUin", "10"), ("Amount", "1"), ("Amount", "150")],
            )
            .request(now),
            "Amount",
        ),
        (
            V1::new("GET", "r", "QueryCreditByUinList", &[("UinList.0", "10"), ("UinList.0", "11")])
                .request(now),
            "UinList.0",
        ),
        (
            Tc3Get::new("c", "CreatePurchase", "PurchaseId=d&ClientUin=10&Amount=1&Amount=150").request(now),
            "Amount",
        ),
    ];
    for (request, name) in cases {
        let answer = send!(app, request);
        assert_eq!(code(&answer), "InvalidParameter", "{name}: {answer}");
        assert!(message(&answer).starts_with(&format!("`{name}` is given more than once")), "{answer}");
    }
    // A malformed flattened name is named too.
    let gap = V1::new("GET", "r", "QueryCreditByUinList", &[("UinList.0", "10"), ("UinList.2", "11")]);
    let answer = send!(app, gap.request(now));
    assert_eq!(code(&answer), "InvalidParameter");
    assert_eq!(
        message(&answer),
        "`UinList.2` is not a parameter name this API reads: a list's elements are numbered from 0 without \
         gaps, and this request has too few to reach it"
    );
    assert_eq!(books(&engine).await, before);
}
