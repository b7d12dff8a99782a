//! The server as a test double, in process through the real handler: the fault actions'
//! validation and list shape, what an injected error leaves unchanged, `ResetState`, and
//! `GET /health` and `GET /metrics`. Every bad request gets its code and changes nothing.

mod common;

use actix_web::test::TestRequest;
use serde_json::{json, Value};

use common::http::{api, code, Call};
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

/// R (3) with a line of 500 and its customer C (10) with 200.
macro_rules! world {
    () => {{
        let (engine, _clock, api) = api(CONFIG);
        let app = app!(api);
        let now = engine.now().0;
        for (action, body) in [
            ("CreatePartner", json!({"Kind": "Reseller", "Uin": 3})),
            ("CreateClient", json!({"ParentUin": 3, "Uin": 10, "Name": "c"})),
            ("GrantPartnerCredit", json!({"PartnerUin": 3, "Credit": 500})),
        ] {
            assert_eq!(code(&send!(app, Call::new("op", action, &body).request(now))), "", "{action}");
        }
        let allocate = Call::new("r", "AllocateCustomerCredit", &json!({"ClientUin": 10, "AddedCredit": 200}));
        assert_eq!(send!(app, allocate.request(now))["RemainingCredit"], json!(200));
        (engine, api, app)
    }};
}

/// Calls `action` as `key` with `body`: the `Response` object.
macro_rules! call {
    ($app:expr, $api:expr, $key:expr, $action:expr, $body:expr) => {{
        let now = $api.engine().now().0;
        send!($app, Call::new($key, $action, &$body).request(now))
    }};
}

/// The answer without its RequestId.
fn fields(mut response: Value) -> Value {
    response.as_object_mut().unwrap().remove("RequestId");
    response
}

#[actix_web::test]
async fn set_faults_refuses_bad_faults_naming_the_field_and_keeps_the_list() {
    let (_engine, api, app) = world!();
    let good = json!({"Action": "CreatePurchase", "CallerUin": 10, "Probability": 0.3, "Code": "InternalError", "Seed": 7});
    assert_eq!(fields(call!(app, api, "op", "SetFaults", json!({"Faults": [good.clone()]}))), json!({}));
    let fault = |changes: Value| {
        let mut fault = good.clone();
        for (name, value) in changes.as_object().unwrap() {
            match value {
                Value::Null => fault.as_object_mut().unwrap().remove(name),
                value => fault.as_object_mut().unwrap().insert(name.clone(), value.clone()),
            };
        }
        json!({"Faults": [good.clone(), fault]})
    };
    let cases = [
        (
            fault(json!({"Action": "Fly"})),
            "InvalidParameterValue",
            "`Faults.1.Action`: \"Fly\" is not an action of this service, nor `*`",
        ),
        (
            fault(json!({"Action": "SetFaults"})),
            "InvalidParameterValue",
            "`Faults.1.Action`: SetFaults is never faulted",
        ),
        (
            fault(json!({"Probability": 1.5})),
            "InvalidParameterValue",
            "`Faults.1.Probability`: 1.5 is outside 0 to 1",
        ),
        (
            fault(json!({"Probability": -0.1})),
            "InvalidParameterValue",
            "`Faults.1.Probability`: -0.1 is outside 0 to 1",
        ),
        (
            fault(json!({"Probability": "half"})),
            "InvalidParameter",
            "`Faults.1.Probability` must be a number",
        ),
        (fault(json!({"Probability": null})), "MissingParameter", "`Faults.1.Probability`"),
        (
            fault(json!({"Code": "Oops"})),
            "InvalidParameterValue",
            "`Faults.1.Code`: \"Oops\" is not an error code this API answers",
        ),
        (
            fault(json!({"DelayMs": 300})),
            "InvalidParameter",
            "`Faults.1`: a fault has exactly one of Code, DelayMs and Drop (true), not 2",
        ),
        (fault(json!({"Code": null})), "InvalidParameter", "not 0"),
        (
            fault(json!({"Code": null, "DelayMs": 0})),
            "InvalidParameterValue",
            "`Faults.1.DelayMs`: 0 is outside 1 to 300000",
        ),
        (
            fault(json!({"Code": null, "DelayMs": -5})),
            "InvalidParameterValue",
            "`Faults.1.DelayMs`: -5 is outside 1 to 300000",
        ),
        (fault(json!({"Seed": -1})), "InvalidParameterValue", "`Faults.1.Seed`: -1 is negative"),
        (fault(json!({"CallerUin": 0})), "InvalidParameterValue", "Faults.1.CallerUin"),
        (fault(json!({"Colour": "red"})), "UnknownParameter", "`Faults.1.Colour`"),
        (json!({}), "MissingParameter", "`Faults`"),
        (json!({"Faults": {}}), "InvalidParameter", "`Faults` must be an array of objects"),
    ];
    for (body, expected_code, message) in cases {
        let answer = call!(app, api, "op", "SetFaults", body);
        assert_eq!(code(&answer), expected_code, "{body}: {answer}");
        let text = answer["Error"]["Message"].as_str().unwrap();
        assert!(text.contains(message), "{body}: {text}");
    }
    // Only the operator sets or reads faults, and a refused list changed nothing.
    for key in ["r", "c"] {
        let answer = call!(app, api, key, "SetFaults", json!({"Faults": []}));
        assert_eq!(code(&answer), "UnauthorizedOperation.UinNoAuth", "{answer}");
        let answer = call!(app, api, key, "DescribeFaults", json!({}));
        assert_eq!(code(&answer), "UnauthorizedOperation.UinNoAuth", "{answer}");
    }
    assert_eq!(fields(call!(app, api, "op", "DescribeFaults", json!({}))), json!({"Faults": [good]}));
}

#[actix_web::test]
async fn describe_faults_answers_the_list_in_the_shape_set_faults_reads() {
    let (_engine, api, app) = world!();
    assert_eq!(fields(call!(app, api, "op", "DescribeFaults", json!({}))), json!({"Faults": []}));
    let list = json!([
        {"Action": "CreatePurchase", "CallerUin": 10, "Probability": 0.3, "Code": "FailedOperation.InsufficientPartnerCredit", "Seed": 7},
        {"Action": "*", "Probability": 1.0, "DelayMs": 300, "Seed": 1},
        {"Action": "QueryPartnerCredit", "Probability": 0.5, "Drop": true, "Seed": 0},
    ]);
    call!(app, api, "op", "SetFaults", json!({"Faults": list.clone()}));
    let described = fields(call!(app, api, "op", "DescribeFaults", json!({})));
    assert_eq!(described, json!({"Faults": list}));
    // The description set again is the same list: it round-trips.
    call!(app, api, "op", "SetFaults", described.clone());
    assert_eq!(fields(call!(app, api, "op", "DescribeFaults", json!({}))), described);
    // A fault without a seed gets one, which the description tells.
    call!(app, api, "op", "SetFaults", json!({"Faults": [{"Action": "*", "Probability": 0, "Drop": true}]}));
    let seeded = call!(app, api, "op", "DescribeFaults", json!({}));
    assert!(seeded["Faults"][0]["Seed"].is_u64(), "{seeded}");
    // [] clears them.
    call!(app, api, "op", "SetFaults", json!({"Faults": []}));
    assert_eq!(fields(call!(app, api, "op", "DescribeFaults", json!({}))), json!({"Faults": []}));
}

#[actix_web::test]
async fn an_injected_error_is_answered_with_its_code_and_changes_nothing() {
    let (engine, api, app) = world!();
    let always =
        json!({"Action": "CreatePurchase", "CallerUin": 10, "Probability": 1, "Code": "InternalError"});
    call!(app, api, "op", "SetFaults", json!({"Faults": [always]}));
    let before = format!("{:?}", engine.account(OP, Uin(10)).await.unwrap());
    let purchase = json!({"PurchaseId": "p-1", "ClientUin": 10, "Amount": 5});
    let answer = call!(app, api, "c", "CreatePurchase", purchase.clone());
    assert_eq!(code(&answer), "InternalError", "{answer}");
    assert!(answer["Error"]["Message"].as_str().unwrap().contains("injected by a fault"), "{answer}");
    assert_eq!(format!("{:?}", engine.account(OP, Uin(10)).await.unwrap()), before);
    // Another caller is not faulted, and the purchase id was never taken: it buys once.
    let answer = call!(app, api, "op", "CreatePurchase", purchase);
    assert_eq!(answer["Status"], "Committed", "{answer}");
    assert_eq!(answer["ClientRemainingCredit"], json!(195));
}

#[actix_web::test]
async fn reset_state_empties_the_state_and_checks_its_target() {
    let (_engine, api, app) = world!();
    for (key, body, expected) in [
        ("op", json!({"To": "Yesterday"}), "InvalidParameterValue"),
        ("op", json!({}), "MissingParameter"),
        ("op", json!({"To": "Empty", "Also": 1}), "UnknownParameter"),
        ("r", json!({"To": "Empty"}), "UnauthorizedOperation.UinNoAuth"),
    ] {
        assert_eq!(code(&call!(app, api, key, "ResetState", body)), expected);
    }
    // Refused resets changed nothing.
    assert_eq!(call!(app, api, "r", "QueryPartnerCredit", json!({}))["TotalCredit"], json!(500));
    let old = api.engine();
    assert_eq!(fields(call!(app, api, "op", "ResetState", json!({"To": "Empty"}))), json!({"Accounts": 0}));
    assert!(!std::sync::Arc::ptr_eq(&old, &api.engine()), "a new engine");
    assert_eq!(code(&call!(app, api, "r", "QueryPartnerCredit", json!({}))), "ResourceNotFound.PartnerUin");
    // With no world file, the start world is the empty one.
    assert_eq!(
        fields(call!(app, api, "op", "ResetState", json!({"To": "StartWorld"}))),
        json!({"Accounts": 0})
    );
    // The new engine runs on the old one's clock.
    assert_eq!(api.engine().now(), old.now());
}

#[actix_web::test]
async fn health_and_metrics_answer_with_http_statuses() {
    let (_engine, api, app) = world!();
    let response = actix_web::test::call_service(&app, TestRequest::get().uri("/health").to_request()).await;
    assert_eq!(response.status(), 200);
    let body: Value = actix_web::test::read_body_json(response).await;
    assert_eq!(body["status"], "ready");
    api.set_readiness(partner_credit::api::server::Readiness::Starting);
    let response = actix_web::test::call_service(&app, TestRequest::get().uri("/health").to_request()).await;
    assert_eq!(response.status(), 503);
    // Before it is ready, an API request is refused, before its action is read, and changes
    // nothing.
    let answer = call!(app, api, "op", "GrantPartnerCredit", json!({"PartnerUin": 3, "Credit": 1}));
    assert_eq!(code(&answer), "ServiceUnavailable");
    api.set_readiness(partner_credit::api::server::Readiness::Ready);
    assert_eq!(call!(app, api, "r", "QueryPartnerCredit", json!({}))["TotalCredit"], json!(500));

    let response = actix_web::test::call_service(&app, TestRequest::get().uri("/metrics").to_request()).await;
    assert_eq!(response.status(), 200);
    let content_type = response.headers().get("content-type").unwrap().to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let text = String::from_utf8(actix_web::test::read_body(response).await.to_vec()).unwrap();
    for line in [
        "partner_credit_requests_total{action=\"CreatePartner\",code=\"Success\"} 1",
        "partner_credit_requests_total{action=\"(none)\",code=\"ServiceUnavailable\"} 1",
        "partner_credit_requests_total{action=\"QueryPartnerCredit\",code=\"Success\"} 1",
        "partner_credit_open_reservations 0",
    ] {
        assert!(text.lines().any(|written| written == line), "{line} not in:\n{text}");
    }
}
