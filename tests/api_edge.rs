//! The server's edge in process: authentication, the protocol's headers, bad bodies and
//! parameters, sizes, rate limits and the engine's own actions, through the real handler.
//! Every bad request gets its code and changes nothing.

mod common;

use actix_web::test::TestRequest;
use serde_json::{json, Value};

use common::http::{api, code, Call, HOST};
use common::{m, OP};
use partner_credit::api::sign::{
    self, canonical_request, sha256_hex, signature, signing_key, string_to_sign,
};
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
secret_id = "r2"
secret_key = "r2-key"
uin = 4
[[keys]]
secret_id = "c"
secret_key = "c-key"
uin = 10
[http]
body_limit = 40000
"#;

/// R (3) with a line of 500 and its customer C (10) with 200; R2 (4) with a line of 100.
macro_rules! world {
    () => {{
        let (engine, clock, api) = api(CONFIG);
        let app = app!(api);
        for (call, expect) in [
            (Call::new("op", "CreatePartner", &json!({"Kind": "Reseller", "Uin": 3})), json!(3)),
            (Call::new("op", "CreatePartner", &json!({"Kind": "Reseller", "Uin": 4})), json!(4)),
            (Call::new("op", "CreateClient", &json!({"ParentUin": 3, "Uin": 10, "Name": "c"})), json!(10)),
        ] {
            assert_eq!(send!(app, call.request(engine.now().0))["Uin"], expect);
        }
        for (partner, credit) in [(3, 500), (4, 100)] {
            let grant = Call::new("op", "GrantPartnerCredit", &json!({"PartnerUin": partner, "Credit": credit}));
            assert_eq!(send!(app, grant.request(engine.now().0))["TotalCredit"], json!(credit));
        }
        let allocate = Call::new("r", "AllocateCustomerCredit", &json!({"ClientUin": 10, "AddedCredit": 200}));
        assert_eq!(send!(app, allocate.request(engine.now().0))["RemainingCredit"], json!(200));
        (engine, clock, app)
    }};
}

/// The books of R and C, to check that nothing changed.
async fn books(engine: &partner_credit::Engine) -> (String, String) {
    let r = engine.account(OP, Uin(3)).await.unwrap();
    let c = engine.account(OP, Uin(10)).await.unwrap();
    (format!("{:?}", r.role), format!("{:?}", c.role))
}

#[actix_web::test]
async fn authentication() {
    let (engine, _clock, app) = world!();
    let before = books(&engine).await;
    let now = engine.now().0;
    let purchase = json!({"PurchaseId": "p", "ClientUin": 10, "Amount": 1});

    let mut wrong_key = Call::new("op", "CreatePurchase", &purchase);
    wrong_key.secret_key = "not-the-key";
    assert_eq!(code(&send!(app, wrong_key.request(now))), "AuthFailure.SignatureFailure");

    let unknown = Call::new("nobody", "CreatePurchase", &purchase);
    assert_eq!(code(&send!(app, unknown.request(now))), "AuthFailure.SecretIdNotFound");

    for skew in [-301, 301, -100_000] {
        let mut late = Call::new("op", "CreatePurchase", &purchase);
        late.skew_secs = skew;
        assert_eq!(code(&send!(app, late.request(now))), "AuthFailure.SignatureExpire", "{skew}");
    }
    let mut within = Call::new("op", "Ping", &json!({}));
    within.skew_secs = -299;
    assert_eq!(code(&send!(app, within.request(now))), "");

    // The body is signed: a changed body fails, even by one byte.
    let signed = Call::new("op", "CreatePurchase", &purchase).request(now);
    let tampered = signed.set_payload(r#"{"PurchaseId": "p", "ClientUin": 10, "Amount": 9}"#);
    assert_eq!(code(&send!(app, tampered)), "AuthFailure.SignatureFailure");
    // So is the Host.
    let moved =
        Call::new("op", "CreatePurchase", &purchase).request(now).insert_header(("Host", "elsewhere"));
    assert_eq!(code(&send!(app, moved)), "AuthFailure.SignatureFailure");

    let bare = TestRequest::post().uri("/").insert_header(("X-TC-Action", "Ping")).set_payload("{}");
    assert_eq!(code(&send!(app, bare)), "AuthFailure.InvalidAuthorization");
    let garbled =
        Call::new("op", "Ping", &json!({})).request(now).insert_header(("Authorization", "Basic b3A6b3A="));
    assert_eq!(code(&send!(app, garbled)), "AuthFailure.InvalidAuthorization");
    assert_eq!(books(&engine).await, before);
}

/// A request signed by hand: any signed-header set, and optionally `UNSIGNED-PAYLOAD`.
fn hand_signed(now_ms: i64, action: &str, body: &str, extra: &[(&str, &str)], unsigned: bool) -> TestRequest {
    let timestamp = now_ms / 1000;
    let date = sign::utc_date(timestamp);
    let mut headers = vec![("content-type", "application/json; charset=utf-8"), ("host", HOST)];
    headers.extend_from_slice(extra);
    let names: Vec<&str> = headers.iter().map(|(name, _)| *name).collect();
    let signed_headers = names.join(";");
    let payload_hash = sha256_hex(if unsigned { sign::UNSIGNED_PAYLOAD.as_bytes() } else { body.as_bytes() });
    let canonical = canonical_request("POST", "/", "", &headers, &signed_headers, &payload_hash);
    let key = signing_key("op-key", &date, sign::SERVICE);
    let to_sign = string_to_sign(timestamp, &date, sign::SERVICE, &canonical);
    let authorization = format!(
        "TC3-HMAC-SHA256 Credential=op/{date}/{}/tc3_request, SignedHeaders={signed_headers}, Signature={}",
        sign::SERVICE,
        signature(&key, &to_sign)
    );
    let mut request = TestRequest::post()
        .uri("/")
        .insert_header(("X-TC-Version", "2022-09-28"))
        .insert_header(("X-TC-Timestamp", timestamp.to_string()))
        .insert_header(("Authorization", authorization))
        .set_payload(body.to_owned());
    for (name, value) in headers {
        request = request.insert_header((name, value));
    }
    if !extra.iter().any(|(name, _)| *name == "x-tc-action") {
        request = request.insert_header(("X-TC-Action", action));
    }
    if unsigned {
        request = request.insert_header(("X-TC-Content-SHA256", sign::UNSIGNED_PAYLOAD));
    }
    request
}

#[actix_web::test]
async fn signed_header_sets_and_unsigned_payload() {
    let (engine, _clock, app) = world!();
    let now = engine.now().0;
    // Newer SDKs also sign x-tc-action (its value lowercased in the canonical form).
    let with_action = hand_signed(now, "Ping", "{}", &[("x-tc-action", "Ping")], false);
    assert_eq!(code(&send!(app, with_action)), "");
    // With UNSIGNED-PAYLOAD the body is not part of the signature.
    // An exponent takes the general path rather than the fast one: the same answer.
    let body = r#"{"PurchaseId": "u1", "ClientUin": 10, "Amount": 2e0}"#;
    let unsigned = hand_signed(now, "CreatePurchase", body, &[], true);
    assert_eq!(send!(app, unsigned)["ClientRemainingCredit"], json!(198));
    // Signed headers must include content-type and host.
    let request = hand_signed(now, "Ping", "{}", &[], false);
    let only_host = request.insert_header((
        "Authorization",
        "TC3-HMAC-SHA256 Credential=op/2026-01-01/intlpartnersmgt/tc3_request, SignedHeaders=host, Signature=00",
    ));
    assert_eq!(code(&send!(app, only_host)), "AuthFailure.InvalidAuthorization");
}

#[actix_web::test]
async fn the_action_can_be_required_in_the_signature() {
    let (engine, _clock, api) = api(&format!("{CONFIG}require_signed_action = true\n"));
    let app = app!(api);
    let now = engine.now().0;
    // As the Python SDK signs: content-type;host only.
    let plain = Call::new("op", "Ping", &json!({})).request(now);
    let response = send!(app, plain);
    assert_eq!(code(&response), "AuthFailure.InvalidAuthorization");
    assert!(response["Error"]["Message"].as_str().unwrap().contains("x-tc-action"));
    let with_action = hand_signed(now, "Ping", "{}", &[("x-tc-action", "Ping")], false);
    assert_eq!(code(&send!(app, with_action)), "");
}

#[actix_web::test]
async fn protocol_headers_and_bodies() {
    let (engine, _clock, app) = world!();
    let before = books(&engine).await;
    let now = engine.now().0;
    let cases: Vec<(Call, &str)> = vec![
        (Call::new("op", "Fly", &json!({})), "InvalidAction"),
        (Call { version: "2017-03-12", ..Call::new("op", "Ping", &json!({})) }, "NoSuchVersion"),
        (
            Call { body: b"{\"Purchase".to_vec(), ..Call::new("op", "CreatePurchase", &json!({})) },
            "InvalidParameter",
        ),
        (
            Call { body: b"[1, 2]".to_vec(), ..Call::new("op", "CreatePurchase", &json!({})) },
            "InvalidParameter",
        ),
        (Call { body: vec![b' '; 50000], ..Call::new("op", "Ping", &json!({})) }, "RequestSizeLimitExceeded"),
    ];
    for (call, expected) in cases {
        assert_eq!(
            code(&send!(app, call.request(now))),
            expected,
            "{}",
            String::from_utf8_lossy(&call.body[..20.min(call.body.len())])
        );
    }
    // A declared length over the limit is refused before the body is read.
    let declared =
        Call::new("op", "Ping", &json!({})).request(now).insert_header(("Content-Length", "999999999"));
    assert_eq!(code(&send!(app, declared)), "RequestSizeLimitExceeded");
    // Timestamps at the ends of i64 are refused, not overflowed.
    for extreme in [i64::MIN, i64::MAX] {
        let request = Call::new("op", "Ping", &json!({}))
            .request(now)
            .insert_header(("X-TC-Timestamp", extreme.to_string()));
        assert_eq!(code(&send!(app, request)), "AuthFailure.SignatureExpire");
    }
    // Anything but POST / answers in the same JSON shape.
    assert_eq!(code(&send!(app, TestRequest::get().uri("/"))), "UnsupportedOperation");
    assert_eq!(code(&send!(app, TestRequest::post().uri("/v2").set_payload("{}"))), "UnsupportedOperation");
    assert_eq!(books(&engine).await, before);
}

#[actix_web::test]
async fn parameters() {
    let (engine, _clock, app) = world!();
    let before = books(&engine).await;
    let now = engine.now().0;
    let purchase = |fields: Value| Call::new("op", "CreatePurchase", &fields);
    let cases = [
        (purchase(json!({"ClientUin": 10, "Amount": 1})), "MissingParameter", "PurchaseId"),
        (
            purchase(json!({"PurchaseId": "a", "ClientUin": 10, "Amount": 1, "Colour": "red"})),
            "UnknownParameter",
            "Colour",
        ),
        (
            purchase(json!({"PurchaseId": "a", "ClientUin": "10", "Amount": 1})),
            "InvalidParameter",
            "ClientUin",
        ),
        (purchase(json!({"PurchaseId": "a", "ClientUin": 10, "Amount": "1"})), "InvalidParameter", "Amount"),
        (
            purchase(json!({"PurchaseId": "a", "ClientUin": 10, "Amount": 0.123456789})),
            "InvalidParameterValue",
            "Amount",
        ),
        (
            purchase(json!({"PurchaseId": "a", "ClientUin": 10, "Amount": -1})),
            "InvalidParameterValue.Amount",
            "amount",
        ),
        // Past rust_decimal's 28 digits: refused, not rounded to 1.
        (
            Call {
                body: br#"{"PurchaseId": "a", "ClientUin": 10, "Amount": 1.000000000000000000000000000001}"#
                    .to_vec(),
                ..purchase(json!({}))
            },
            "InvalidParameterValue",
            "decimal places",
        ),
        (
            Call {
                body:
                    br#"{"PurchaseId": "a", "ClientUin": 10, "Amount": 1.000000000000000000000000000001e0}"#
                        .to_vec(),
                ..purchase(json!({}))
            },
            "InvalidParameterValue",
            "more digits",
        ),
        (
            Call::new("op", "CreatePurchases", &json!({"Purchases": vec![json!({}); 8190]})),
            "InvalidParameterValue.Purchases",
            "got 8190",
        ),
        (
            Call::new("op", "CreatePurchases", &json!({"Purchases": []})),
            "InvalidParameterValue.Purchases",
            "got 0",
        ),
        (
            purchase(json!({"PurchaseId": "", "ClientUin": 10, "Amount": 1})),
            "InvalidParameterValue",
            "PurchaseId",
        ),
        (
            purchase(json!({"PurchaseId": "x".repeat(65), "ClientUin": 10, "Amount": 1})),
            "InvalidParameterValue",
            "PurchaseId",
        ),
        // A refused purchase keeps its id (a repeat gets the same refusal): new ids from here.
        (
            purchase(json!({"PurchaseId": "b", "ClientUin": 99, "Amount": 1})),
            "ResourceNotFound.ClientUin",
            "99",
        ),
        (
            purchase(json!({"PurchaseId": "c", "ClientUin": 10, "Amount": 1000})),
            "FailedOperation.InsufficientClientCredit",
            "needs 1000",
        ),
        (
            Call::new("r", "AllocateCustomerCredit", &json!({"ClientUin": 10, "AddedCredit": 300.01})),
            "InvalidParameterValue.CreditAmountOutOfRange",
            "300.01",
        ),
        (
            Call::new("r2", "AllocateCustomerCredit", &json!({"ClientUin": 10, "AddedCredit": 1})),
            "UnauthorizedOperation.NotCustomerUin",
            "may not act",
        ),
        (
            Call::new("c", "CreatePartner", &json!({"Kind": "Reseller"})),
            "UnauthorizedOperation.UinNoAuth",
            "operator",
        ),
        (Call::new("op", "CreatePartner", &json!({"Kind": "Shop"})), "InvalidParameterValue", "Kind"),
        (Call::new("op", "Ping", &json!({"Anything": 1})), "UnknownParameter", "Anything"),
    ];
    for (call, expected, mentions) in cases {
        let response = send!(app, call.request(now));
        let message = response["Error"]["Message"].as_str().unwrap_or_default();
        assert_eq!(code(&response), expected, "{message}");
        assert!(message.contains(mentions), "{expected}: {message:?} does not mention {mentions:?}");
    }
    assert_eq!(books(&engine).await, before);
}

#[actix_web::test]
async fn purchase_protocol() {
    let (engine, clock, app) = world!();
    let now = || engine.now().0;
    let buy = Call::new("c", "CreatePurchase", &json!({"PurchaseId": "b1", "ClientUin": 10, "Amount": 12.5}));
    let first = send!(app, buy.request(now()));
    assert_eq!(
        (
            &first["Status"],
            &first["ChargedUin"],
            &first["ClientRemainingCredit"],
            &first["PartnerRemainingCredit"]
        ),
        (&json!("Committed"), &json!(3), &json!(187.5), &json!(487.5))
    );
    // A repeat with the same content is the same purchase; with other content a conflict.
    assert_eq!(send!(app, buy.request(now()))["ClientRemainingCredit"], json!(187.5));
    let conflict =
        Call::new("c", "CreatePurchase", &json!({"PurchaseId": "b1", "ClientUin": 10, "Amount": 1}));
    assert_eq!(code(&send!(app, conflict.request(now()))), "FailedOperation.PurchaseIdConflict");

    let reserve = |id: &str| {
        Call::new(
            "c",
            "ReservePurchase",
            &json!({"PurchaseId": id, "ClientUin": 10, "Amount": 10, "TimeoutSeconds": 30}),
        )
    };
    // Without TimeoutSeconds, the engine's default (60 s).
    let plain = Call::new("c", "ReservePurchase", &json!({"PurchaseId": "r0", "ClientUin": 10, "Amount": 1}));
    assert_eq!(send!(app, plain.request(now()))["ExpireTime"], json!("2026-01-01 00:01:00"));
    let cancel = Call::new("c", "CancelPurchase", &json!({"PurchaseId": "r0"}));
    assert_eq!(send!(app, cancel.request(now()))["Status"], json!("Cancelled"));
    let reserved = send!(app, reserve("r1").request(now()));
    assert_eq!(
        (&reserved["Status"], &reserved["ExpireTime"]),
        (&json!("Reserved"), &json!("2026-01-01 00:00:30"))
    );
    let commit = Call::new("c", "CommitPurchase", &json!({"PurchaseId": "r1"}));
    assert_eq!(send!(app, commit.request(now()))["Status"], json!("Committed"));
    let cancel = Call::new("c", "CancelPurchase", &json!({"PurchaseId": "r1"}));
    assert_eq!(code(&send!(app, cancel.request(now()))), "FailedOperation.PurchaseCommitted");
    send!(app, reserve("r2").request(now()));
    let cancel = Call::new("c", "CancelPurchase", &json!({"PurchaseId": "r2"}));
    assert_eq!(send!(app, cancel.request(now()))["Status"], json!("Cancelled"));
    send!(app, reserve("r3").request(now()));
    clock.advance_ms(31_000);
    engine.expire_due().await.unwrap();
    let late = Call::new("c", "CommitPurchase", &json!({"PurchaseId": "r3"}));
    assert_eq!(code(&send!(app, late.request(now()))), "FailedOperation.ReservationExpired");
    let never = Call::new("c", "CommitPurchase", &json!({"PurchaseId": "never"}));
    assert_eq!(code(&send!(app, never.request(now()))), "ResourceNotFound.PurchaseId");

    // A batch answers each purchase in order; refusals do not stop the others.
    let batch = json!({"Purchases": [
        {"PurchaseId": "k1", "ClientUin": 10, "Amount": 1},
        {"PurchaseId": "k2", "ClientUin": 10, "Amount": 10000},
        {"PurchaseId": "k3", "ClientUin": 10, "Amount": 2, "ProductCode": "cvm"},
    ]});
    let results = send!(app, Call::new("op", "CreatePurchases", &batch).request(now()))["Results"].clone();
    assert_eq!(
        results,
        json!([
            {"PurchaseId": "k1", "Status": "Committed"},
            {"PurchaseId": "k2", "Status": "Refused", "ErrorCode": "FailedOperation.InsufficientClientCredit",
             "ErrorMessage": "customer 10 has 177.5 available, the purchase needs 10000"},
            {"PurchaseId": "k3", "Status": "Committed"},
        ])
    );
    // One bad element refuses the whole batch, naming it.
    let bad = json!({"Purchases": [{"PurchaseId": "k4", "ClientUin": 10, "Amount": 1}, {"PurchaseId": "k5", "ClientUin": 10}]});
    let response = send!(app, Call::new("op", "CreatePurchases", &bad).request(now()));
    assert_eq!(
        (code(&response), &response["Error"]["Message"]),
        ("MissingParameter", &json!("the request is missing the required parameter `Purchases.1.Amount`"))
    );
    assert_eq!(engine.account(OP, Uin(10)).await.unwrap().available(), m("174.5"));
    let audit = engine.audit().await.unwrap();
    assert!(audit.ok(), "{:?}", audit.violations);
}

#[actix_web::test]
async fn rate_limits_and_unsupported_actions() {
    let (engine, clock, app) = world!();
    clock.advance_ms(1_000);
    let now = || engine.now().0;
    let allocate =
        |key| Call::new(key, "AllocateCustomerCredit", &json!({"ClientUin": 10, "AddedCredit": 1}));
    for _ in 0..5 {
        assert_eq!(code(&send!(app, allocate("r").request(now()))), "");
    }
    let before = books(&engine).await;
    let response = send!(app, allocate("r").request(now()));
    assert_eq!(code(&response), "RequestLimitExceeded");
    assert!(response["Error"]["Message"]
        .as_str()
        .unwrap()
        .contains("AllocateCustomerCredit admits 5 requests per second"));
    assert_eq!(books(&engine).await, before);
    // Another caller has its own budget (refused here for authorization, not for quota).
    assert_eq!(code(&send!(app, allocate("r2").request(now()))), "UnauthorizedOperation.NotCustomerUin");

    // Upstream actions the engine does not offer: authenticated, counted, then refused.
    let bill = Call::new("r", "DescribeBillSummary", &json!({"Month": "2026-01"}));
    let response = send!(app, bill.request(now()));
    assert_eq!(code(&response), "UnsupportedOperation");
    assert!(response["Error"]["Message"].as_str().unwrap().contains("does not offer"));
    assert_eq!(
        code(&send!(app, bill.request(now()))),
        "RequestLimitExceeded",
        "DescribeBillSummary admits 1 a second"
    );
    let mut forged = Call::new("r", "DescribeBillSummary", &json!({}));
    forged.secret_key = "guess";
    assert_eq!(code(&send!(app, forged.request(now()))), "AuthFailure.SignatureFailure");
}
