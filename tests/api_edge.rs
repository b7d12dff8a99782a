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
    // Anything but POST / and GET / answers in the same JSON shape.
    assert_eq!(code(&send!(app, TestRequest::put().uri("/"))), "UnsupportedOperation");
    assert_eq!(code(&send!(app, TestRequest::get().uri("/v2"))), "UnsupportedOperation");
    assert_eq!(code(&send!(app, TestRequest::post().uri("/v2").set_payload("{}"))), "UnsupportedOperation");
    // A GET / signed neither way is not authenticated.
    assert_eq!(code(&send!(app, TestRequest::get().uri("/"))), "AuthFailure.InvalidAuthorization");
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

    // A batch answers each purchase in order; refusals do not stop the others. The purchases
    // of one customer run in the batch's order (its shard takes them one after another), so
    // k2 sees what k1 charged.
    let batch = json!({"Purchases": [
        {"PurchaseId": "k1", "ClientUin": 10, "Amount": 1},
        {"PurchaseId": "k2", "ClientUin": 10, "Amount": 10000},
        {"PurchaseId": "k3", "ClientUin": 10, "Amount": 2, "ProductCode": "cvm"},
    ]});
    let results = send!(app, Call::new("op", "CreatePurchases", &batch).request(now()))["Results"].clone();
    assert_eq!(
        results,
        json!([
            {"PurchaseId": "k1", "Status": "Committed", "ClientVoucherDeduction": 0,
             "PartnerVoucherDeduction": 0, "ClientCharge": 1, "PartnerCharge": 1},
            {"PurchaseId": "k2", "Status": "Refused", "ErrorCode": "FailedOperation.InsufficientClientCredit",
             "ErrorMessage": "customer 10 has 176.5 available, the purchase needs 10000"},
            {"PurchaseId": "k3", "Status": "Committed", "ClientVoucherDeduction": 0,
             "PartnerVoucherDeduction": 0, "ClientCharge": 2, "PartnerCharge": 2},
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

/// The books of R, C and R2 with their vouchers, bills, frozen credit and thresholds.
async fn all_books(engine: &partner_credit::Engine) -> Vec<String> {
    let mut books = vec![format!("{:?}", books(engine).await)];
    for uin in [3, 4, 10] {
        let details = engine.account_details(OP, Uin(uin)).await.unwrap();
        books.push(format!("{:?} {details:?}", engine.account(OP, Uin(uin)).await.unwrap().role));
    }
    books
}

/// Every parameter error of the voucher, postpaid, bill, warning and clock actions has its
/// code and names what is wrong, and changes nothing.
#[actix_web::test]
async fn voucher_bill_warning_and_clock_parameters() {
    let (engine, _clock, app) = world!();
    let before = all_books(&engine).await;
    let now = engine.now().0;
    let expire = "2026-12-31 23:59:59";
    let issue = |fields: Value| {
        let mut body = json!({"CustomerUin": 10, "Amount": 1, "ExpireTime": expire});
        for (name, value) in fields.as_object().unwrap() {
            if value.is_null() {
                body.as_object_mut().unwrap().remove(name);
            } else {
                body[name] = value.clone();
            }
        }
        Call::new("r", "IssueCustomerVoucher", &body)
    };
    let apply = |key, fields: Value| {
        let mut body = json!({"Type": "General", "Amount": 1, "ExpireTime": expire});
        for (name, value) in fields.as_object().unwrap() {
            if value.is_null() {
                body.as_object_mut().unwrap().remove(name);
            } else {
                body[name] = value.clone();
            }
        }
        Call::new(key, "ApplyPartnerVoucher", &body)
    };
    let codes: Vec<String> = (0..51).map(|index| format!("p{index}")).collect();
    let cases = [
        // GrantVoucherQuota
        (Call::new("op", "GrantVoucherQuota", &json!({"Quota": 5})), "MissingParameter", "PartnerUin"),
        (
            Call::new("op", "GrantVoucherQuota", &json!({"PartnerUin": 3, "Quota": "5"})),
            "InvalidParameter",
            "Quota",
        ),
        (
            Call::new("op", "GrantVoucherQuota", &json!({"PartnerUin": 3, "Quota": 0})),
            "InvalidParameterValue.Amount",
            "changes nothing",
        ),
        (
            Call::new("op", "GrantVoucherQuota", &json!({"PartnerUin": 3, "Quota": -1})),
            "FailedOperation.InsufficientVoucherQuota",
            "voucher quota left",
        ),
        (
            Call::new("op", "GrantVoucherQuota", &json!({"PartnerUin": 99, "Quota": 5})),
            "ResourceNotFound.PartnerUin",
            "99",
        ),
        (
            Call::new("r", "GrantVoucherQuota", &json!({"PartnerUin": 3, "Quota": 5})),
            "UnauthorizedOperation.UinNoAuth",
            "operator",
        ),
        // IssueCustomerVoucher
        (issue(json!({"CustomerUin": null})), "MissingParameter", "CustomerUin"),
        (issue(json!({"CustomerUin": "10"})), "InvalidParameter", "CustomerUin"),
        (issue(json!({"Amount": null})), "MissingParameter", "Amount"),
        (issue(json!({"Amount": 1000000.01})), "InvalidParameterValue.VoucherAmountOutOfRange", "1000000"),
        (issue(json!({"Amount": -1})), "InvalidParameterValue.VoucherAmountOutOfRange", "-1"),
        (issue(json!({"Amount": -0.01})), "InvalidParameterValue.VoucherAmountOutOfRange", "from 0"),
        (issue(json!({"Amount": 0.000000001})), "InvalidParameterValue", "decimal places"),
        (issue(json!({"ExpireTime": null})), "MissingParameter", "ExpireTime"),
        (issue(json!({"ExpireTime": 1798761599})), "InvalidParameter", "ExpireTime"),
        (
            issue(json!({"ExpireTime": "2026-12-31T23:59:59Z"})),
            "InvalidParameterValue",
            "YYYY-MM-DD hh:mm:ss",
        ),
        (issue(json!({"ExpireTime": "2026-13-01 00:00:00"})), "InvalidParameterValue", "no month 13"),
        (issue(json!({"ExpireTime": "2026-02-29 00:00:00"})), "InvalidParameterValue", "no day 29"),
        (issue(json!({"EffectiveTime": "2026-01-01 25:00:00"})), "InvalidParameterValue", "EffectiveTime"),
        (
            issue(json!({"EffectiveTime": "2027-01-01 00:00:00"})),
            "InvalidParameterValue",
            "must be after the effective time",
        ),
        (issue(json!({"ProductScope": "Everything"})), "InvalidParameterValue", "ProductScope"),
        (issue(json!({"ProductScope": "SpecifyProducts"})), "MissingParameter", "ProductCodes"),
        (
            issue(json!({"ProductScope": "SpecifyProductsBlacklist", "ProductCodes": []})),
            "InvalidParameterValue",
            "1 to 50 product codes",
        ),
        (
            issue(json!({"ProductCodes": ["cvm"]})),
            "InvalidParameterValue",
            "AllProducts takes no product codes",
        ),
        (
            issue(json!({"ProductScope": "SpecifyProducts", "ProductCodes": "cvm"})),
            "InvalidParameter",
            "ProductCodes",
        ),
        (
            issue(json!({"ProductScope": "SpecifyProducts", "ProductCodes": ["cvm", 7]})),
            "InvalidParameter",
            "ProductCodes.1",
        ),
        (
            issue(json!({"ProductScope": "SpecifyProducts", "ProductCodes": codes})),
            "InvalidParameterValue",
            "got 51",
        ),
        (
            issue(json!({"ProductScope": "SpecifyProducts", "ProductCodes": ["cvm", "cvm"]})),
            "InvalidParameterValue",
            "listed twice",
        ),
        (issue(json!({"PaymentMode": "Credit"})), "InvalidParameterValue", "AllPayment, Prepaid or Postpaid"),
        (issue(json!({"Usage": "CustomerOffer"})), "UnknownParameter", "Usage"),
        (
            Call::new(
                "r2",
                "IssueCustomerVoucher",
                &json!({"CustomerUin": 10, "Amount": 1, "ExpireTime": expire}),
            ),
            "UnauthorizedOperation.NotCustomerUin",
            "may not act",
        ),
        (issue(json!({})), "FailedOperation.InsufficientVoucherQuota", "0 of voucher quota left"),
        // ApplyPartnerVoucher
        (apply("r", json!({"Type": null})), "MissingParameter", "Type"),
        (apply("r", json!({"Type": "Trial"})), "InvalidParameterValue", "General or ProductTrial"),
        (apply("r", json!({"CustomerUin": 10})), "InvalidParameterValue", "only a ProductTrial"),
        (apply("r", json!({"Type": "ProductTrial"})), "MissingParameter", "CustomerUin"),
        (apply("op", json!({})), "MissingParameter", "PartnerUin"),
        (apply("r", json!({"Amount": 2000000})), "InvalidParameterValue.VoucherAmountOutOfRange", "2000000"),
        (apply("r", json!({"ExpireTime": "2025-12-31 00:00:00"})), "InvalidParameterValue", "after now"),
        (apply("r", json!({"ExpireTime": "31/12/2026"})), "InvalidParameterValue", "YYYY-MM-DD hh:mm:ss"),
        (apply("r", json!({"EffectiveTime": expire})), "UnknownParameter", "EffectiveTime"),
        (apply("r", json!({"PartnerUin": 4})), "UnauthorizedOperation.UinNoAuth", "may not act"),
        (apply("c", json!({})), "FailedOperation.UinNotAgent", "distributor or reseller"),
        (
            apply("r2", json!({"Type": "ProductTrial", "CustomerUin": 10})),
            "InvalidParameterValue",
            "charge 3, not 4",
        ),
        // ApprovePartnerVoucher, WithdrawCustomerVoucher, InvalidatePartnerVoucher
        (Call::new("op", "ApprovePartnerVoucher", &json!({})), "MissingParameter", "VoucherId"),
        (
            Call::new("op", "ApprovePartnerVoucher", &json!({"VoucherId": "1"})),
            "InvalidParameter",
            "VoucherId",
        ),
        (
            Call::new("op", "ApprovePartnerVoucher", &json!({"VoucherId": 0})),
            "InvalidParameterValue",
            "VoucherId",
        ),
        (
            Call::new("op", "ApprovePartnerVoucher", &json!({"VoucherId": 99})),
            "ResourceNotFound.VoucherId",
            "99",
        ),
        (
            Call::new("r", "ApprovePartnerVoucher", &json!({"VoucherId": 99})),
            "UnauthorizedOperation.UinNoAuth",
            "operator",
        ),
        (Call::new("r", "WithdrawCustomerVoucher", &json!({})), "MissingParameter", "VoucherId"),
        (
            Call::new("r", "WithdrawCustomerVoucher", &json!({"VoucherId": 99})),
            "ResourceNotFound.VoucherId",
            "99",
        ),
        (
            Call::new("r", "InvalidatePartnerVoucher", &json!({"VoucherId": -2})),
            "InvalidParameterValue",
            "VoucherId",
        ),
        (
            Call::new("r", "InvalidatePartnerVoucher", &json!({"VoucherId": 99})),
            "ResourceNotFound.VoucherId",
            "99",
        ),
        // SetTrialVoucherPriority
        (Call::new("r", "SetTrialVoucherPriority", &json!({})), "MissingParameter", "Enabled"),
        (
            Call::new("r", "SetTrialVoucherPriority", &json!({"Enabled": "no"})),
            "InvalidParameter",
            "true or false",
        ),
        (
            Call::new("op", "SetTrialVoucherPriority", &json!({"Enabled": true})),
            "MissingParameter",
            "PartnerUin",
        ),
        (
            Call::new("r", "SetTrialVoucherPriority", &json!({"Enabled": false, "PartnerUin": 4})),
            "UnauthorizedOperation.UinNoAuth",
            "may not act",
        ),
        (
            Call::new("c", "SetTrialVoucherPriority", &json!({"Enabled": false})),
            "FailedOperation.UinNotAgent",
            "10",
        ),
        // ActivatePostpaid, TerminatePostpaid
        (
            Call::new("c", "ActivatePostpaid", &json!({"ClientUin": 10, "Amount": 1})),
            "MissingParameter",
            "ResourceId",
        ),
        (
            Call::new("c", "ActivatePostpaid", &json!({"ResourceId": "", "ClientUin": 10, "Amount": 1})),
            "InvalidParameterValue",
            "ResourceId",
        ),
        (
            Call::new(
                "c",
                "ActivatePostpaid",
                &json!({"ResourceId": "x".repeat(65), "ClientUin": 10, "Amount": 1}),
            ),
            "InvalidParameterValue",
            "1 to 64 characters",
        ),
        (
            Call::new(
                "c",
                "ActivatePostpaid",
                &json!({"ResourceId": "vm", "ClientUin": 10, "Amount": 1, "FreezingCoefficient": 1.5}),
            ),
            "InvalidParameterValue",
            "outside 0 to 1",
        ),
        (
            Call::new(
                "c",
                "ActivatePostpaid",
                &json!({"ResourceId": "vm", "ClientUin": 10, "Amount": 1, "FreezingCoefficient": "0.5"}),
            ),
            "InvalidParameter",
            "FreezingCoefficient",
        ),
        (
            Call::new("c", "ActivatePostpaid", &json!({"ResourceId": "vm", "ClientUin": 10, "Amount": 0})),
            "InvalidParameterValue.Amount",
            "0",
        ),
        (
            Call::new(
                "c",
                "ActivatePostpaid",
                &json!({"ResourceId": "vm", "ClientUin": 10, "Amount": 200.01}),
            ),
            "FailedOperation.InsufficientClientCredit",
            "needs 200.01",
        ),
        (
            Call::new("r2", "ActivatePostpaid", &json!({"ResourceId": "vm", "ClientUin": 10, "Amount": 1})),
            "UnauthorizedOperation.NotCustomerUin",
            "may not act",
        ),
        (
            Call::new("c", "TerminatePostpaid", &json!({"ResourceId": "vm"})),
            "ResourceNotFound.ResourceId",
            "vm",
        ),
        (Call::new("c", "TerminatePostpaid", &json!({"ResourceId": 5})), "InvalidParameter", "ResourceId"),
        // ConfirmBill, SettlePartnerBill
        (Call::new("r", "ConfirmBill", &json!({"ClientUin": 10})), "MissingParameter", "Month"),
        (
            Call::new("r", "ConfirmBill", &json!({"ClientUin": 10, "Month": "2026-1"})),
            "InvalidParameterValue",
            "YYYY-MM",
        ),
        (
            Call::new("r", "ConfirmBill", &json!({"ClientUin": 10, "Month": "2026-13"})),
            "InvalidParameterValue",
            "2026-13",
        ),
        (
            Call::new("r", "ConfirmBill", &json!({"ClientUin": 10, "Month": 202601})),
            "InvalidParameter",
            "Month",
        ),
        (
            Call::new("r", "ConfirmBill", &json!({"ClientUin": 10, "Month": "2026-01"})),
            "FailedOperation.BillNotFinal",
            "not final",
        ),
        (
            Call::new("r", "ConfirmBill", &json!({"ClientUin": 10, "Month": "2025-11"})),
            "ResourceNotFound.Bill",
            "2025-11",
        ),
        (
            Call::new("r2", "ConfirmBill", &json!({"ClientUin": 10, "Month": "2025-11"})),
            "UnauthorizedOperation.NotCustomerUin",
            "may not act",
        ),
        (
            Call::new("r", "SettlePartnerBill", &json!({"PartnerUin": 3, "Month": "2025-11"})),
            "UnauthorizedOperation.UinNoAuth",
            "operator",
        ),
        (
            Call::new("op", "SettlePartnerBill", &json!({"PartnerUin": 10, "Month": "2025-11"})),
            "FailedOperation.UinNotAgent",
            "10",
        ),
        (
            Call::new("op", "SettlePartnerBill", &json!({"PartnerUin": 99, "Month": "2025-11"})),
            "ResourceNotFound.PartnerUin",
            "99",
        ),
        (
            Call::new("op", "SettlePartnerBill", &json!({"PartnerUin": 3, "Month": "Jan"})),
            "InvalidParameterValue",
            "YYYY-MM",
        ),
        // SetCreditWarning
        (
            Call::new("r", "SetCreditWarning", &json!({"RemainingPercent": 10})),
            "MissingParameter",
            "ClientUin",
        ),
        (
            Call::new(
                "r",
                "SetCreditWarning",
                &json!({"ClientUin": 10, "RemainingPercent": 10, "RemainingAmount": 5}),
            ),
            "InvalidParameterValue",
            "not both",
        ),
        (
            Call::new("r", "SetCreditWarning", &json!({"ClientUin": 10, "RemainingPercent": 100.5})),
            "InvalidParameterValue",
            "between 0 and 100",
        ),
        (
            Call::new("r", "SetCreditWarning", &json!({"ClientUin": 10, "RemainingPercent": 10.555})),
            "InvalidParameterValue",
            "2 decimal places",
        ),
        (
            Call::new("r", "SetCreditWarning", &json!({"ClientUin": 10, "RemainingPercent": "10"})),
            "InvalidParameter",
            "RemainingPercent",
        ),
        (
            Call::new("r", "SetCreditWarning", &json!({"ClientUin": 10, "RemainingAmount": -1})),
            "InvalidParameterValue",
            "RemainingAmount",
        ),
        (
            Call::new("r2", "SetCreditWarning", &json!({"ClientUin": 10, "RemainingAmount": 1})),
            "UnauthorizedOperation.NotCustomerUin",
            "may not act",
        ),
        // AdvanceClock, on a server without the setting
        (
            Call::new("op", "AdvanceClock", &json!({"Seconds": 60})),
            "UnsupportedOperation",
            "adjustable_clock = true",
        ),
        (Call::new("op", "AdvanceClock", &json!({})), "MissingParameter", "Seconds"),
        (
            Call::new("op", "AdvanceClock", &json!({"Seconds": 0})),
            "InvalidParameterValue",
            "outside 1 to 31536000",
        ),
        (Call::new("op", "AdvanceClock", &json!({"Seconds": 31536001})), "InvalidParameterValue", "one year"),
        (Call::new("op", "AdvanceClock", &json!({"Seconds": 1.5})), "InvalidParameter", "Seconds"),
        (
            Call::new("r", "AdvanceClock", &json!({"Seconds": 60})),
            "UnauthorizedOperation.UinNoAuth",
            "operator",
        ),
    ];
    for (call, expected, mentions) in cases {
        let response = send!(app, call.request(now));
        let message = response["Error"]["Message"].as_str().unwrap_or_default();
        assert_eq!(
            code(&response),
            expected,
            "{} {}: {message}",
            call.action,
            String::from_utf8_lossy(&call.body)
        );
        assert!(message.contains(mentions), "{expected}: {message:?} does not mention {mentions:?}");
    }
    assert_eq!(engine.now().0, now, "the clock did not move");
    assert_eq!(all_books(&engine).await, before);
}

/// With `[engine] adjustable_clock`, the operator moves the engine's clock forward, and
/// requests are still signed and checked with the real time.
#[actix_web::test]
async fn the_adjustable_clock_moves_forward_and_signatures_keep_real_time() {
    let (engine, clock, api) =
        common::http::adjustable_api(&format!("{CONFIG}[engine]\nadjustable_clock = true\n"));
    let app = app!(api);
    let real = || partner_credit::SystemClock.now().0;
    use partner_credit::Clock;
    let before = engine.now().0;
    let answer = send!(app, Call::new("op", "AdvanceClock", &json!({"Seconds": 86_400})).request(real()));
    assert_eq!(code(&answer), "");
    assert_eq!(clock.offset_ms(), 86_400_000);
    let now = partner_credit::api::parse_time(answer["Now"].as_str().unwrap()).unwrap();
    assert!((now.0 - before - 86_400_000).abs() < 5_000, "{answer}");
    assert!(engine.now().0 - real() >= 86_399_000);
    // Signed with the real time: accepted. Signed with the engine's time: a day off.
    assert_eq!(code(&send!(app, Call::new("op", "Ping", &json!({})).request(real()))), "");
    let ahead = Call::new("op", "Ping", &json!({})).request(engine.now().0);
    assert_eq!(code(&send!(app, ahead)), "AuthFailure.SignatureExpire");
    // Only the operator, and only forward, at most a year at once.
    let refused = send!(app, Call::new("r", "AdvanceClock", &json!({"Seconds": 1})).request(real()));
    assert_eq!(code(&refused), "UnauthorizedOperation.UinNoAuth");
    let refused = send!(app, Call::new("op", "AdvanceClock", &json!({"Seconds": -5})).request(real()));
    assert_eq!(code(&refused), "InvalidParameterValue");
    assert_eq!(clock.offset_ms(), 86_400_000);
}
