//! The upstream credit and customer actions through the real HTTP handler (actix-web's test
//! service, signed requests), on a small hierarchy built with the engine's API: for each
//! action a success with exact fields, a refusal for a partner reaching beyond its own
//! accounts, and bad input; for the actions that write, that a refusal changed nothing.

mod common;

use std::sync::Arc;

use actix_web::test::{self, TestRequest};
use actix_web::{web, App};
use serde_json::{json, Value};

use common::http::Call;
use common::{m, request, tree, Tree, OP};
use partner_credit::api::config::ServerConfig;
use partner_credit::api::server::{configure, Api};
use partner_credit::engine::{NewCustomer, NewPartner, PartnerKind, SubAgentQuery};
use partner_credit::{Caller, Engine, EngineConfig, ManualClock, Rejection, Uin};

/// One key per account the tests call as; each key's secret is `<id>-key`.
const CONFIG: &str = r#"
listen = "127.0.0.1:0"

[operator]
secret_id = "op"
secret_key = "op-key"

[[keys]]
secret_id = "d"
secret_key = "d-key"
uin = 1

[[keys]]
secret_id = "s"
secret_key = "s-key"
uin = 2

[[keys]]
secret_id = "r"
secret_key = "r-key"
uin = 3

[[keys]]
secret_id = "r2"
secret_key = "r2-key"
uin = 4

[[keys]]
secret_id = "d2"
secret_key = "d2-key"
uin = 5

[[keys]]
secret_id = "c"
secret_key = "c-key"
uin = 10

[[keys]]
secret_id = "late"
secret_key = "late-key"
uin = 13
"#;

/// [`common::tree`] (all created at 2026-01-01 00:00:00 UTC) and, later:
/// - 00:01:00: `late` (13), a customer of R named "late", remark "vip late", given 40 by R
///   and 10 by the operator (remark "top-up"), then buying 19.9;
/// - R2 (4), a reseller with a line of 100, and its customer C2 (12) given 30;
/// - D2 (5), a distributor with nothing;
/// - 00:02:00: S3 (7), a second-level reseller of D named "second sub", and its customer
///   CS3 (14);
/// - 00:03:00: CS4 (15), a second customer of S, with no credit.
struct Fixture {
    engine: Arc<Engine>,
    clock: ManualClock,
    api: web::Data<Api>,
    t: Tree,
    late: Uin,
    r2: Uin,
    c2: Uin,
    s3: Uin,
    cs3: Uin,
    cs4: Uin,
}

fn customer(uin: u64, parent: Uin, name: &str) -> NewCustomer {
    NewCustomer {
        uin: Some(Uin(uin)),
        parent,
        name: Some(name.to_owned()),
        email: Some(format!("{name}@example.com")),
    }
}

async fn fixture() -> Fixture {
    let config = ServerConfig::parse(CONFIG).unwrap();
    config.validate().unwrap();
    let clock = ManualClock::new(common::START);
    let engine_config = EngineConfig { workers: 2, ..config.engine_config().unwrap() };
    let engine = Arc::new(Engine::start_with_clock(engine_config, Arc::new(clock.clone())));
    let t = tree(&engine).await;

    clock.advance_ms(60_000);
    let late = engine.create_customer(OP, customer(13, t.r, "late")).await.unwrap();
    engine.allocate_customer_credit(Caller::Uin(t.r), late, m("40"), None).await.unwrap();
    engine.allocate_customer_credit(OP, late, m("10"), Some("top-up".into())).await.unwrap();
    engine.set_remark(Caller::Uin(t.r), late, "vip late".into()).await.unwrap();
    engine.purchase(Caller::Uin(late), request("p-1", late, "19.9")).await.unwrap();
    let partner = |uin, name: Option<&str>| NewPartner {
        uin: Some(Uin(uin)),
        name: name.map(str::to_owned),
        ..NewPartner::default()
    };
    let r2 = engine.create_partner(OP, PartnerKind::Reseller, partner(4, None)).await.unwrap();
    engine.grant_credit(OP, r2, m("100")).await.unwrap();
    let c2 = engine.create_customer(OP, customer(12, r2, "other")).await.unwrap();
    engine.allocate_customer_credit(Caller::Uin(r2), c2, m("30"), None).await.unwrap();
    engine.create_partner(OP, PartnerKind::Distributor, partner(5, None)).await.unwrap();

    clock.advance_ms(60_000);
    let s3 = engine
        .create_partner(
            OP,
            PartnerKind::SecondLevelReseller,
            NewPartner { parent: Some(t.d), ..partner(7, Some("second sub")) },
        )
        .await
        .unwrap();
    let cs3 = engine.create_customer(OP, customer(14, s3, "third")).await.unwrap();
    clock.advance_ms(60_000);
    let cs4 = engine.create_customer(OP, customer(15, t.s, "fourth")).await.unwrap();

    let api = web::Data::new(Api::new(engine.clone(), &config));
    Fixture { engine, clock, api, t, late, r2, c2, s3, cs3, cs4 }
}

impl Fixture {
    /// A request signed with `key`'s secret, as the official SDKs sign. The clock moves one
    /// second first, so that the per-second quotas never get in the way of these tests.
    fn request(&self, key: &str, action: &str, body: &Value) -> TestRequest {
        self.clock.advance_ms(1000);
        Call::new(key, action, body).request(self.engine.now().0)
    }

    /// The same, with the body's bytes exactly as given.
    fn raw_request(&self, key: &str, action: &str, body: &str) -> TestRequest {
        self.clock.advance_ms(1000);
        Call { body: body.as_bytes().to_vec(), ..Call::new(key, action, &json!({})) }
            .request(self.engine.now().0)
    }

    async fn view(&self, uin: Uin) -> partner_credit::domain::AccountView {
        self.engine.account(OP, uin).await.unwrap()
    }
}

/// The app, from a fixture.
macro_rules! app {
    ($fx:expr) => {
        test::init_service(App::new().configure(configure($fx.api.clone()))).await
    };
}

/// The `Response` object of one request.
macro_rules! call {
    ($app:expr, $fx:expr, $key:expr, $action:expr, $body:expr) => {{
        let request = $fx.request($key, $action, &$body).to_request();
        let answer: Value = test::call_and_read_body_json(&$app, request).await;
        let response = answer["Response"].clone();
        assert!(response["RequestId"].is_string(), "{response}");
        response
    }};
}

/// The fields of a success, without `RequestId`.
fn ok(mut response: Value) -> Value {
    assert!(response.get("Error").is_none(), "expected a success, got {response}");
    response.as_object_mut().unwrap().remove("RequestId");
    response
}

/// The error code of a refusal.
fn code(response: &Value) -> &str {
    response["Error"]["Code"].as_str().unwrap_or_else(|| panic!("expected an error, got {response}"))
}

fn number(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

#[actix_web::test]
async fn query_credit_by_uin_list() {
    let fx = fixture().await;
    let app = app!(fx);
    let (c, late) = (fx.t.c.0, fx.late.0);
    let answer = ok(call!(app, fx, "r", "QueryCreditByUinList", json!({ "UinList": [late, c] })));
    assert_eq!(
        answer,
        json!({ "Data": [
            { "Uin": 13, "TotalCredit": 50, "RemainingCredit": number("30.1") },
            { "Uin": 10, "TotalCredit": 200, "RemainingCredit": 200 },
        ] })
    );
    // A distributor asks about its second-level reseller's pool.
    let answer = ok(call!(app, fx, "d", "QueryCreditByUinList", json!({ "UinList": [fx.t.s.0] })));
    assert_eq!(answer, json!({ "Data": [{ "Uin": 2, "TotalCredit": 300, "RemainingCredit": 200 }] }));

    // Another partner's customer, alone or among one's own.
    let own = ok(call!(app, fx, "r2", "QueryCreditByUinList", json!({ "UinList": [fx.c2.0] })));
    assert_eq!(own, json!({ "Data": [{ "Uin": 12, "TotalCredit": 30, "RemainingCredit": 30 }] }));
    assert_eq!(fx.view(fx.c2).await.parent(), Some(fx.r2));
    for list in [json!([c]), json!([fx.c2.0, c])] {
        let refused = call!(app, fx, "r2", "QueryCreditByUinList", json!({ "UinList": list }));
        assert_eq!(code(&refused), "UnauthorizedOperation.NotCustomerUin", "{list}");
    }
    let cases = [
        (json!({}), "MissingParameter"),
        (json!({ "UinList": [] }), "InvalidParameterValue.UinList"),
        (json!({ "UinList": vec![c; 51] }), "InvalidParameterValue.UinList"),
        (json!({ "UinList": [c], "Page": 1 }), "UnknownParameter"),
        (json!({ "UinList": ["10"] }), "InvalidParameter"),
        (json!({ "UinList": [999] }), "ResourceNotFound.ClientUin"),
    ];
    for (body, expected) in cases {
        assert_eq!(code(&call!(app, fx, "r", "QueryCreditByUinList", body)), expected, "{body}");
    }
    assert_eq!(
        ok(call!(app, fx, "r", "QueryCreditByUinList", json!({ "UinList": vec![c; 50] })))["Data"]
            .as_array()
            .unwrap()
            .len(),
        50
    );
}

#[actix_web::test]
async fn query_customers_credit() {
    let fx = fixture().await;
    let app = app!(fx);
    let late = json!({
        "ClientUin": 13,
        "Name": "late",
        "Type": "",
        "Mobile": "",
        "Email": "late@example.com",
        "Arrears": "-",
        "AssociationTime": "2026-01-01 00:01:00",
        "RecentExpiry": "",
        "Credit": 50,
        "RemainingCredit": number("30.1"),
        "IdentifyType": 0,
        "Remark": "vip late",
        "Force": 0,
    });
    fx.engine.set_suspension(Caller::Uin(fx.t.r), fx.t.c, true).await.unwrap();
    let c = json!({
        "ClientUin": 10,
        "Name": "customer-10",
        "Type": "",
        "Mobile": "",
        "Email": "c10@example.com",
        "Arrears": "-",
        "AssociationTime": "2026-01-01 00:00:00",
        "RecentExpiry": "",
        "Credit": 200,
        "RemainingCredit": 200,
        "IdentifyType": 0,
        "Remark": "",
        "Force": 2,
    });
    // Newest association first by default.
    let answer = ok(call!(app, fx, "r", "QueryCustomersCredit", json!({})));
    assert_eq!(answer, json!({ "Total": 2, "Data": [late.clone(), c.clone()] }));
    let cases = [
        (json!({ "Order": "asc" }), json!([c.clone(), late.clone()])),
        (json!({ "Order": "asc", "Page": 2, "PageSize": 1 }), json!([late.clone()])),
        (json!({ "Page": 2, "PageSize": 1 }), json!([c.clone()])),
        (json!({ "Page": 3, "PageSize": 1 }), json!([])),
    ];
    for (body, data) in cases {
        let answer = ok(call!(app, fx, "r", "QueryCustomersCredit", body));
        assert_eq!(answer, json!({ "Total": 2, "Data": data }), "{body}");
    }
    let filters = [
        ("Name", "lat", json!([late.clone()])),
        ("ClientUin", "10", json!([c.clone()])),
        ("Remark", "vip", json!([late.clone()])),
        ("Email", "c10@", json!([c.clone()])),
        ("Name", "nobody", json!([])),
    ];
    for (field, filter, data) in filters {
        let body = json!({ "FilterType": field, "Filter": filter });
        let answer = ok(call!(app, fx, "r", "QueryCustomersCredit", body));
        let total = data.as_array().unwrap().len();
        assert_eq!(answer, json!({ "Total": total, "Data": data }), "{body}");
    }

    // A partner sees only its own customers; customers and the operator have none.
    let answer = ok(call!(app, fx, "r2", "QueryCustomersCredit", json!({})));
    assert_eq!(answer["Total"], 1);
    assert_eq!(answer["Data"][0]["ClientUin"], 12);
    assert_eq!(code(&call!(app, fx, "c", "QueryCustomersCredit", json!({}))), "FailedOperation.UinNotAgent");
    assert_eq!(
        code(&call!(app, fx, "op", "QueryCustomersCredit", json!({}))),
        "UnauthorizedOperation.UinNoAuth"
    );

    let cases = [
        (json!({ "Page": 0 }), "InvalidParameter.Page"),
        (json!({ "Page": -1 }), "InvalidParameter.Page"),
        (json!({ "PageSize": 0 }), "InvalidParameter.Page"),
        (json!({ "PageSize": 1001 }), "InvalidParameter.Page"),
        (json!({ "Page": "1" }), "InvalidParameter"),
        (json!({ "FilterType": "Mobile", "Filter": "1" }), "InvalidParameterValue"),
        (json!({ "Filter": "late" }), "MissingParameter"),
        (json!({ "Order": "up" }), "InvalidParameterValue"),
        (json!({ "Offset": 0 }), "UnknownParameter"),
    ];
    for (body, expected) in cases {
        assert_eq!(code(&call!(app, fx, "r", "QueryCustomersCredit", body)), expected, "{body}");
    }
}

#[actix_web::test]
async fn query_direct_customers_credit() {
    let fx = fixture().await;
    let app = app!(fx);
    let answer = ok(call!(app, fx, "r", "QueryDirectCustomersCredit", json!({})));
    assert_eq!(
        answer,
        json!({ "Data": [
            { "Uin": 10, "TotalCredit": 200, "RemainingCredit": 200 },
            { "Uin": 13, "TotalCredit": 50, "RemainingCredit": number("30.1") },
        ] })
    );
    // A distributor's children are second-level resellers, not direct customers.
    assert_eq!(ok(call!(app, fx, "d", "QueryDirectCustomersCredit", json!({}))), json!({ "Data": [] }));
    // Only one's own customers.
    assert_eq!(
        ok(call!(app, fx, "r2", "QueryDirectCustomersCredit", json!({}))),
        json!({ "Data": [{ "Uin": 12, "TotalCredit": 30, "RemainingCredit": 30 }] })
    );
    assert_eq!(
        code(&call!(app, fx, "c", "QueryDirectCustomersCredit", json!({}))),
        "FailedOperation.UinNotAgent"
    );
    assert_eq!(
        code(&call!(app, fx, "op", "QueryDirectCustomersCredit", json!({}))),
        "UnauthorizedOperation.UinNoAuth"
    );
    let refused = call!(app, fx, "r", "QueryDirectCustomersCredit", json!({ "PartnerUin": 4 }));
    assert_eq!(code(&refused), "UnknownParameter");
}

#[actix_web::test]
async fn query_partner_credit() {
    let fx = fixture().await;
    let app = app!(fx);
    let cases = [
        // R: line 500, 200 + 50 allocated, 19.9 used by late's purchase; customers hold
        // 200 + 50 of which 200 + 30.1 is available.
        (
            "r",
            json!({
                "TotalCredit": 500, "AllocatedCredit": 250, "RemainingCredit": number("480.1"),
                "CustomerTotalCredit": 250, "CustomerRemainingCredit": number("230.1"),
            }),
        ),
        // D: its 300 went to S's pool; it has no customers of its own.
        (
            "d",
            json!({
                "TotalCredit": 1000, "AllocatedCredit": 300, "RemainingCredit": 1000,
                "CustomerTotalCredit": 0, "CustomerRemainingCredit": 0,
            }),
        ),
        // S: a pool of 300, 100 of it given to CS; CS4 has nothing.
        (
            "s",
            json!({
                "TotalCredit": 300, "AllocatedCredit": 100, "RemainingCredit": 200,
                "CustomerTotalCredit": 100, "CustomerRemainingCredit": 100,
            }),
        ),
        (
            "r2",
            json!({
                "TotalCredit": 100, "AllocatedCredit": 30, "RemainingCredit": 100,
                "CustomerTotalCredit": 30, "CustomerRemainingCredit": 30,
            }),
        ),
    ];
    for (key, expected) in cases {
        assert_eq!(ok(call!(app, fx, key, "QueryPartnerCredit", json!({}))), expected, "{key}");
    }
    assert_eq!(code(&call!(app, fx, "c", "QueryPartnerCredit", json!({}))), "FailedOperation.UinNotAgent");
    assert_eq!(
        code(&call!(app, fx, "op", "QueryPartnerCredit", json!({}))),
        "UnauthorizedOperation.UinNoAuth"
    );
    // No way to name another partner.
    let refused = call!(app, fx, "r2", "QueryPartnerCredit", json!({ "PartnerUin": 3 }));
    assert_eq!(code(&refused), "UnknownParameter");
}

#[actix_web::test]
async fn query_credit_allocation_history() {
    let fx = fixture().await;
    let app = app!(fx);
    let top_up = json!({
        "AllocatedTime": "2026-01-01 00:01:00", "Operator": "operator", "Credit": 10,
        "AllocatedCredit": 50, "ClientCreditAfter": 50, "Remark": "top-up",
    });
    let first = json!({
        "AllocatedTime": "2026-01-01 00:01:00", "Operator": "3", "Credit": 40,
        "AllocatedCredit": 40, "ClientCreditAfter": 40, "Remark": "",
    });
    let late = fx.late.0;
    let cases = [
        (json!({ "ClientUin": late }), json!([top_up.clone(), first.clone()])),
        (json!({ "ClientUin": late, "Page": 1, "PageSize": 1 }), json!([top_up.clone()])),
        (json!({ "ClientUin": late, "Page": 2, "PageSize": 1 }), json!([first.clone()])),
        (json!({ "ClientUin": late, "Page": 3, "PageSize": 1 }), json!([])),
    ];
    for (body, history) in cases {
        let answer = ok(call!(app, fx, "r", "QueryCreditAllocationHistory", body));
        assert_eq!(answer, json!({ "Total": 2, "History": history }), "{body}");
    }
    // A repossession shows as a negative credit.
    fx.engine.allocate_customer_credit(Caller::Uin(fx.t.r), fx.t.c, m("-0.5"), None).await.unwrap();
    let answer =
        ok(call!(app, fx, "r", "QueryCreditAllocationHistory", json!({ "ClientUin": 10, "PageSize": 1 })));
    assert_eq!(answer["Total"], 2);
    assert_eq!(answer["History"][0]["Credit"], number("-0.5"));
    assert_eq!(answer["History"][0]["AllocatedCredit"], number("199.5"));
    // A second-level reseller's pool, for its distributor.
    let answer = ok(call!(app, fx, "d", "QueryCreditAllocationHistory", json!({ "ClientUin": fx.t.s.0 })));
    assert_eq!(
        answer,
        json!({ "Total": 1, "History": [{
            "AllocatedTime": "2026-01-01 00:00:00", "Operator": "1", "Credit": 300,
            "AllocatedCredit": 300, "ClientCreditAfter": 300, "Remark": "",
        }] })
    );

    for key in ["r2", "c", "d"] {
        let refused = call!(app, fx, key, "QueryCreditAllocationHistory", json!({ "ClientUin": 10 }));
        assert_eq!(code(&refused), "UnauthorizedOperation.NotCustomerUin", "{key}");
    }
    let cases = [
        (json!({}), "MissingParameter"),
        (json!({ "ClientUin": "13" }), "InvalidParameter"),
        (json!({ "ClientUin": late, "Page": 0 }), "InvalidParameter.Page"),
        (json!({ "ClientUin": late, "PageSize": 0 }), "InvalidParameter.Page"),
        (json!({ "ClientUin": late, "PageSize": -5 }), "InvalidParameter.Page"),
        (json!({ "ClientUin": late, "PageSize": 1001 }), "InvalidParameter.Page"),
        (json!({ "ClientUin": late, "Limit": 1 }), "UnknownParameter"),
        (json!({ "ClientUin": 999 }), "ResourceNotFound.ClientUin"),
    ];
    for (body, expected) in cases {
        assert_eq!(code(&call!(app, fx, "r", "QueryCreditAllocationHistory", body)), expected, "{body}");
    }
}

#[actix_web::test]
async fn query_customer_billing_quota() {
    let fx = fixture().await;
    let app = app!(fx);
    let body = json!({ "EventId": 237427342, "ComponentName": "console" });
    let answer = ok(call!(app, fx, "late", "QueryCustomerBillingQuota", body));
    assert_eq!(
        answer,
        json!({ "Data": {
            "TotalCredit": 50, "RemainingCredit": number("30.1"), "RemainingVoucher": 0,
            "Force": 0, "PrepayFrozen": 0, "PostpayFrozen": 0,
        } })
    );
    fx.engine.set_suspension(Caller::Uin(fx.t.r), fx.t.c, true).await.unwrap();
    let answer = ok(call!(app, fx, "c", "QueryCustomerBillingQuota", json!({})));
    assert_eq!(answer["Data"]["Force"], 2);
    assert_eq!(answer["Data"]["TotalCredit"], 200);

    // Only a customer has a billing quota; nobody names another's.
    assert_eq!(
        code(&call!(app, fx, "r", "QueryCustomerBillingQuota", json!({}))),
        "InvalidParameterValue.InvalidUin"
    );
    assert_eq!(
        code(&call!(app, fx, "op", "QueryCustomerBillingQuota", json!({}))),
        "UnauthorizedOperation.UinNoAuth"
    );
    let cases = [
        (json!({ "ClientUin": 13 }), "UnknownParameter"),
        (json!({ "EventId": "x" }), "InvalidParameter"),
        (json!({ "ComponentName": 1 }), "InvalidParameter"),
    ];
    for (body, expected) in cases {
        assert_eq!(code(&call!(app, fx, "c", "QueryCustomerBillingQuota", body)), expected, "{body}");
    }
}

#[actix_web::test]
async fn force_qn() {
    let fx = fixture().await;
    let app = app!(fx);
    let suspended = |view: partner_credit::domain::AccountView| {
        matches!(view.role, partner_credit::domain::Role::Customer { suspended: true, .. })
    };
    let c = fx.t.c.0;
    let answer = ok(call!(app, fx, "r", "ForceQN", json!({ "ClientUin": c, "Type": 2 })));
    assert_eq!(answer, json!({ "C": 0, "M": "success" }));
    assert!(suspended(fx.view(fx.t.c).await));
    // A suspended customer cannot buy.
    let refused = fx.engine.purchase(Caller::Uin(fx.t.c), request("p-2", fx.t.c, "1")).await;
    assert!(matches!(refused, Err(partner_credit::Error::Rejected(Rejection::Suspended(_)))));

    // Refusals leave the suspension as it is.
    for key in ["r2", "d", "c"] {
        let refused = call!(app, fx, key, "ForceQN", json!({ "ClientUin": c, "Type": 0 }));
        assert_eq!(code(&refused), "UnauthorizedOperation.NotCustomerUin", "{key}");
        assert!(suspended(fx.view(fx.t.c).await), "{key}");
    }
    let cases = [
        (json!({ "ClientUin": c }), "MissingParameter"),
        (json!({ "Type": 0 }), "MissingParameter"),
        (json!({ "ClientUin": c, "Type": 1 }), "InvalidParameterValue"),
        (json!({ "ClientUin": c, "Type": -2 }), "InvalidParameterValue"),
        (json!({ "ClientUin": c, "Type": "0" }), "InvalidParameter"),
        (json!({ "ClientUin": c, "Type": 0, "Remark": "x" }), "UnknownParameter"),
        (json!({ "ClientUin": 999, "Type": 0 }), "ResourceNotFound.ClientUin"),
    ];
    for (body, expected) in cases {
        assert_eq!(code(&call!(app, fx, "r", "ForceQN", body)), expected, "{body}");
        assert!(suspended(fx.view(fx.t.c).await), "{body}");
    }
    let refused = call!(app, fx, "op", "ForceQN", json!({ "ClientUin": fx.t.r.0, "Type": 2 }));
    assert_eq!(code(&refused), "InvalidParameterValue.InvalidUin");

    let answer = ok(call!(app, fx, "r", "ForceQN", json!({ "ClientUin": c, "Type": 0 })));
    assert_eq!(answer, json!({ "C": 0, "M": "success" }));
    assert!(!suspended(fx.view(fx.t.c).await));
    // The operator acts on every customer.
    ok(call!(app, fx, "op", "ForceQN", json!({ "ClientUin": fx.c2.0, "Type": 2 })));
    assert!(suspended(fx.view(fx.c2).await));
    assert!(!suspended(fx.view(fx.t.c).await));
}

#[actix_web::test]
async fn modify_client_remark() {
    let fx = fixture().await;
    let app = app!(fx);
    let remark = |view: partner_credit::domain::AccountView| view.profile.remark.map(String::from);
    let answer = ok(call!(app, fx, "r", "ModifyClientRemark", json!({ "ClientUin": "10", "Remark": "vip" })));
    assert_eq!(answer, json!({ "ClientRemark": "vip" }));
    assert_eq!(remark(fx.view(fx.t.c).await).as_deref(), Some("vip"));
    let answer =
        ok(call!(app, fx, "r", "QueryCustomersCredit", json!({ "FilterType": "Remark", "Filter": "vip" })));
    assert_eq!(answer["Total"], 2);

    for key in ["r2", "d", "c"] {
        let refused =
            call!(app, fx, key, "ModifyClientRemark", json!({ "ClientUin": "10", "Remark": "mine" }));
        assert_eq!(code(&refused), "UnauthorizedOperation.NotCustomerUin", "{key}");
    }
    let cases = [
        (json!({ "ClientUin": 10, "Remark": "x" }), "InvalidParameter"),
        (json!({ "ClientUin": "ten", "Remark": "x" }), "InvalidParameterValue"),
        (json!({ "ClientUin": "0", "Remark": "x" }), "InvalidParameterValue"),
        (json!({ "ClientUin": "10" }), "MissingParameter"),
        (json!({ "Remark": "x" }), "MissingParameter"),
        (json!({ "ClientUin": "10", "Remark": "x".repeat(257) }), "InvalidParameterValue"),
        (json!({ "ClientUin": "10", "Remark": "x", "Name": "y" }), "UnknownParameter"),
        (json!({ "ClientUin": "999", "Remark": "x" }), "ResourceNotFound.ClientUin"),
        (json!({ "ClientUin": "3", "Remark": "x" }), "InvalidParameterValue.InvalidUin"),
    ];
    for (body, expected) in cases {
        let key = if expected == "InvalidParameterValue.InvalidUin" { "op" } else { "r" };
        assert_eq!(code(&call!(app, fx, key, "ModifyClientRemark", body)), expected, "{body}");
    }
    assert_eq!(remark(fx.view(fx.t.c).await).as_deref(), Some("vip"));
    assert_eq!(remark(fx.view(fx.t.r).await), None);

    // The operator, and an empty remark.
    let answer = ok(call!(app, fx, "op", "ModifyClientRemark", json!({ "ClientUin": "12", "Remark": "" })));
    assert_eq!(answer, json!({ "ClientRemark": "" }));
    assert_eq!(remark(fx.view(fx.c2).await).as_deref(), Some(""));
}

#[actix_web::test]
async fn describe_customer_uin() {
    let fx = fixture().await;
    let app = app!(fx);
    let cases = [
        (1, 10, json!([{ "CustomerUin": "13" }, { "CustomerUin": "10" }])),
        (1, 1, json!([{ "CustomerUin": "13" }])),
        (2, 1, json!([{ "CustomerUin": "10" }])),
        (3, 1, json!([])),
    ];
    for (page, size, data) in cases {
        let answer =
            ok(call!(app, fx, "r", "DescribeCustomerUin", json!({ "Page": page, "PageSize": size })));
        assert_eq!(answer, json!({ "Data": data, "Total": "2" }), "{page} {size}");
    }
    let answer = ok(call!(app, fx, "s", "DescribeCustomerUin", json!({ "Page": 1, "PageSize": 10 })));
    assert_eq!(answer, json!({ "Data": [{ "CustomerUin": "15" }, { "CustomerUin": "11" }], "Total": "2" }));
    // One's own customers only.
    let answer = ok(call!(app, fx, "r2", "DescribeCustomerUin", json!({ "Page": 1, "PageSize": 10 })));
    assert_eq!(answer, json!({ "Data": [{ "CustomerUin": "12" }], "Total": "1" }));
    let body = json!({ "Page": 1, "PageSize": 10 });
    assert_eq!(code(&call!(app, fx, "c", "DescribeCustomerUin", body)), "FailedOperation.UinNotAgent");
    assert_eq!(code(&call!(app, fx, "op", "DescribeCustomerUin", body)), "UnauthorizedOperation.UinNoAuth");

    let cases = [
        (json!({ "PageSize": 10 }), "MissingParameter"),
        (json!({ "Page": 1 }), "MissingParameter"),
        (json!({ "Page": 0, "PageSize": 10 }), "InvalidParameter.Page"),
        (json!({ "Page": 1, "PageSize": 0 }), "InvalidParameter.Page"),
        (json!({ "Page": 1, "PageSize": -1 }), "InvalidParameter.Page"),
        (json!({ "Page": 1, "PageSize": 1001 }), "InvalidParameter.Page"),
        (json!({ "Page": 1, "PageSize": 10, "ClientUin": 10 }), "UnknownParameter"),
    ];
    for (body, expected) in cases {
        assert_eq!(code(&call!(app, fx, "r", "DescribeCustomerUin", body)), expected, "{body}");
    }
}

#[actix_web::test]
async fn describe_customer_info() {
    let fx = fixture().await;
    let app = app!(fx);
    fx.engine.set_suspension(Caller::Uin(fx.t.r), fx.t.c, true).await.unwrap();
    let answer =
        ok(call!(app, fx, "r", "DescribeCustomerInfo", json!({ "CustomerUin": [fx.late.0, fx.t.c.0] })));
    let neutral = |fields: Value| {
        let mut fields = fields;
        let neutral = json!({
            "Phone": "", "AuthStatus": "-1", "AuthType": -1,
            "CidRegisterTime": "", "UinRegisterTime": "", "AuthPassTime": "",
        });
        fields.as_object_mut().unwrap().extend(neutral.as_object().unwrap().clone());
        fields
    };
    assert_eq!(
        answer,
        json!({ "Data": [
            neutral(json!({
                "CustomerUin": "13", "Email": "late@example.com", "Mark": "vip late", "Name": "late",
                "BindTime": "2026-01-01 00:01:00", "AccountStatus": "0", "HasExpense": 1,
            })),
            neutral(json!({
                "CustomerUin": "10", "Email": "c10@example.com", "Mark": "", "Name": "customer-10",
                "BindTime": "2026-01-01 00:00:00", "AccountStatus": "1", "HasExpense": 0,
            })),
        ] })
    );
    // The operator reads any customer.
    let answer = ok(call!(app, fx, "op", "DescribeCustomerInfo", json!({ "CustomerUin": [fx.c2.0] })));
    assert_eq!(answer["Data"][0]["Name"], "other");

    // Another partner's customer, alone or among one's own.
    for list in [json!([10]), json!([12, 10])] {
        let refused = call!(app, fx, "r2", "DescribeCustomerInfo", json!({ "CustomerUin": list }));
        assert_eq!(code(&refused), "UnauthorizedOperation.NotCustomerUin", "{list}");
    }
    // A distributor's second-level reseller is not a customer.
    let refused = call!(app, fx, "d", "DescribeCustomerInfo", json!({ "CustomerUin": [fx.t.s.0] }));
    assert_eq!(code(&refused), "InvalidParameterValue.InvalidUin");
    let cases = [
        (json!({}), "MissingParameter"),
        (json!({ "CustomerUin": [] }), "InvalidParameterValue"),
        (json!({ "CustomerUin": vec![10; 21] }), "InvalidParameterValue"),
        (json!({ "CustomerUin": 10 }), "InvalidParameter"),
        (json!({ "CustomerUin": [10], "Page": 1 }), "UnknownParameter"),
        (json!({ "CustomerUin": [999] }), "ResourceNotFound.ClientUin"),
    ];
    for (body, expected) in cases {
        assert_eq!(code(&call!(app, fx, "r", "DescribeCustomerInfo", body)), expected, "{body}");
    }
    let answer = ok(call!(app, fx, "r", "DescribeCustomerInfo", json!({ "CustomerUin": vec![10; 20] })));
    assert_eq!(answer["Data"].as_array().unwrap().len(), 20);
}

#[actix_web::test]
async fn query_sub_agents_detail_v2() {
    let fx = fixture().await;
    let app = app!(fx);
    let s = json!({
        "SubAgentUin": 2, "Name": "", "Remark": "", "Mobile": "", "Email": "",
        "CountOfCustomers": 2, "BindTime": "2026-01-01 00:00:00",
        "Credit": 300, "RemainingCredit": 200, "Voucher": 0, "RemainingVoucher": 0,
    });
    let s3 = json!({
        "SubAgentUin": 7, "Name": "second sub", "Remark": "", "Mobile": "", "Email": "",
        "CountOfCustomers": 1, "BindTime": "2026-01-01 00:02:00",
        "Credit": 0, "RemainingCredit": 0, "Voucher": 0, "RemainingVoucher": 0,
    });
    let page = |extra: Value| {
        let mut body = json!({ "Page": 1, "PageSize": 10 });
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };
    let cases = [
        (page(json!({})), 2, json!([s3.clone(), s.clone()])),
        (page(json!({ "Order": "asc" })), 2, json!([s.clone(), s3.clone()])),
        (json!({ "Page": 2, "PageSize": 1 }), 2, json!([s.clone()])),
        (json!({ "Page": 2, "PageSize": 1, "Order": "acs" }), 2, json!([s3.clone()])),
        (page(json!({ "FilterType": "Name", "Filter": "second" })), 1, json!([s3.clone()])),
        (page(json!({ "FilterType": "SubAgentUin", "Filter": "2" })), 1, json!([s.clone()])),
        (page(json!({ "FilterType": "ClientUin", "Filter": "11" })), 1, json!([s.clone()])),
        (page(json!({ "FilterType": "ClientUin", "Filter": fx.cs3.0.to_string() })), 1, json!([s3.clone()])),
        // R's customer, an unknown UIN, not a UIN, no mobile numbers.
        (page(json!({ "FilterType": "ClientUin", "Filter": "10" })), 0, json!([])),
        (page(json!({ "FilterType": "ClientUin", "Filter": "999" })), 0, json!([])),
        (page(json!({ "FilterType": "ClientUin", "Filter": "abc" })), 0, json!([])),
        (page(json!({ "FilterType": "Mobile", "Filter": "151" })), 0, json!([])),
    ];
    for (body, total, data) in cases {
        let answer = ok(call!(app, fx, "d", "QuerySubAgentsDetailV2", body));
        assert_eq!(answer, json!({ "Total": total, "Data": data }), "{body}");
    }
    // Another distributor sees none of D's; a reseller has no second-level resellers.
    assert_eq!(
        ok(call!(app, fx, "d2", "QuerySubAgentsDetailV2", page(json!({})))),
        json!({ "Total": 0, "Data": [] })
    );
    assert_eq!(
        code(&call!(app, fx, "r", "QuerySubAgentsDetailV2", page(json!({})))),
        "FailedOperation.UinNotAgent"
    );
    assert_eq!(
        code(&call!(app, fx, "op", "QuerySubAgentsDetailV2", page(json!({})))),
        "UnauthorizedOperation.UinNoAuth"
    );

    let cases = [
        (json!({ "PageSize": 10 }), "MissingParameter"),
        (json!({ "Page": 1 }), "MissingParameter"),
        (json!({ "Page": 0, "PageSize": 10 }), "InvalidParameter.Page"),
        (json!({ "Page": 1, "PageSize": 101 }), "InvalidParameter.Page"),
        (json!({ "Page": 1, "PageSize": 0 }), "InvalidParameter.Page"),
        (page(json!({ "FilterType": "Phone", "Filter": "1" })), "InvalidParameterValue"),
        (page(json!({ "Order": "sideways" })), "InvalidParameterValue"),
        (page(json!({ "SubAgentUin": 2 })), "UnknownParameter"),
    ];
    for (body, expected) in cases {
        assert_eq!(code(&call!(app, fx, "d", "QuerySubAgentsDetailV2", body)), expected, "{body}");
    }
    let answer = ok(call!(app, fx, "d", "QuerySubAgentsDetailV2", json!({ "Page": 1, "PageSize": 100 })));
    assert_eq!(answer["Total"], 2);
}

#[actix_web::test]
async fn query_t1_indirect_customers_detail() {
    let fx = fixture().await;
    let app = app!(fx);
    let body = |sub_agent: Uin, page: i64, size: i64| json!({ "SubAgentUin": sub_agent.0, "Page": page, "PageSize": size });
    // Bind times are written in UTC+08:00, as the reference says of this field.
    let cs4 =
        json!({ "ClientUin": fx.cs4.0, "ClientName": "fourth", "ClientBindTime": "2026-01-01 08:03:00" });
    let cs = json!({ "ClientUin": 11, "ClientName": "customer-11", "ClientBindTime": "2026-01-01 08:00:00" });
    let cases = [
        (body(fx.t.s, 1, 10), json!([cs4.clone(), cs.clone()])),
        (body(fx.t.s, 1, 1), json!([cs4.clone()])),
        (body(fx.t.s, 2, 1), json!([cs.clone()])),
        (body(fx.t.s, 3, 1), json!([])),
    ];
    for (request, data) in cases {
        let answer = ok(call!(app, fx, "d", "QueryT1IndirectCustomersDetail", request));
        assert_eq!(
            answer,
            json!({ "Total": 2, "SubAgentUin": 2, "SubAgentName": "", "Data": data }),
            "{request}"
        );
    }
    let answer = ok(call!(app, fx, "op", "QueryT1IndirectCustomersDetail", body(fx.s3, 1, 100)));
    assert_eq!(
        answer,
        json!({ "Total": 1, "SubAgentUin": 7, "SubAgentName": "second sub", "Data": [
            { "ClientUin": 14, "ClientName": "third", "ClientBindTime": "2026-01-01 08:02:00" },
        ] })
    );

    // Another distributor's second-level reseller; a reseller; the second-level reseller
    // itself (its parent is the one that may ask).
    for key in ["d2", "r", "s"] {
        let refused = call!(app, fx, key, "QueryT1IndirectCustomersDetail", body(fx.t.s, 1, 10));
        assert_eq!(code(&refused), "UnauthorizedOperation.UinNoAuth", "{key}");
    }
    let refused = call!(app, fx, "op", "QueryT1IndirectCustomersDetail", body(fx.t.r, 1, 10));
    assert_eq!(code(&refused), "FailedOperation.InvalidSubAgentUin");
    let cases = [
        (json!({ "Page": 1, "PageSize": 10 }), "MissingParameter"),
        (json!({ "SubAgentUin": 2, "PageSize": 10 }), "MissingParameter"),
        (body(fx.t.s, 0, 10), "InvalidParameter.Page"),
        (body(fx.t.s, 1, 101), "InvalidParameter.Page"),
        (body(fx.t.s, 1, 0), "InvalidParameter.Page"),
        (body(fx.t.s, -1, 10), "InvalidParameter.Page"),
        (body(Uin(999), 1, 10), "ResourceNotFound.SubAgentUin"),
        (json!({ "SubAgentUin": 2, "Page": 1, "PageSize": 10, "Order": "asc" }), "UnknownParameter"),
    ];
    for (request, expected) in cases {
        assert_eq!(
            code(&call!(app, fx, "d", "QueryT1IndirectCustomersDetail", request)),
            expected,
            "{request}"
        );
    }
}

/// The actions the engine does not offer still answer UnsupportedOperation, after the quota.
#[actix_web::test]
async fn other_upstream_actions_are_unsupported() {
    let fx = fixture().await;
    let app = app!(fx);
    for action in ["DescribeBillSummary", "QueryAccountVerificationStatus", "GetCountryCodes"] {
        assert_eq!(code(&call!(app, fx, "r", action, json!({}))), "UnsupportedOperation", "{action}");
    }
}

/// The new engine queries count exactly one call against their quota: with the clock
/// stopped, a burst of the documented quota passes and one more is refused.
#[actix_web::test]
async fn each_new_query_is_admitted_once() {
    let fx = fixture().await;
    let (d, r) = (Caller::Uin(fx.t.d), Caller::Uin(fx.t.r));
    let limited = |result: Result<(), partner_credit::Error>| {
        matches!(result, Err(partner_credit::Error::Rejected(Rejection::RateLimited { .. })))
    };
    let query = SubAgentQuery { filter: None, page: 1, page_size: 10, ascending: false };
    // DescribeCustomerUin, DescribeCustomerInfo, QuerySubAgentsDetailV2 and
    // QueryT1IndirectCustomersDetail all have a documented quota of 20.
    for round in 0..21 {
        let results = [
            fx.engine.describe_customer_uins(r, fx.t.r, 1, 10).await.map(drop),
            fx.engine.describe_customer_info(r, &[fx.t.c]).await.map(drop),
            fx.engine.query_sub_agents_detail(d, fx.t.d, &query).await.map(drop),
            fx.engine.query_t1_indirect_customers(d, fx.t.s, 1, 10).await.map(drop),
        ];
        for (index, result) in results.into_iter().enumerate() {
            if round < 20 {
                result.unwrap_or_else(|error| panic!("query {index}, call {round}: {error}"));
            } else {
                assert!(limited(result), "query {index}: call 21 should be over the quota");
            }
        }
    }
}

/// A time as the API writes it.
fn at(time: partner_credit::Timestamp) -> Value {
    partner_credit::api::time(time)
}

/// The voucher actions end to end with exact fields: the operator grants R a voucher quota,
/// R issues two customer vouchers to C and applies for a General and a ProductTrial partner
/// voucher, the operator approves them; purchases deduct them in order (trial first, then
/// the earliest expiry) on both sides; the upstream queries show them; withdraw and
/// invalidate end them.
#[actix_web::test]
async fn vouchers() {
    let fx = fixture().await;
    let app = app!(fx);
    let expire = "2026-12-31 23:59:59";
    let grant = json!({ "PartnerUin": 3, "Quota": 100 });
    assert_eq!(ok(call!(app, fx, "op", "GrantVoucherQuota", grant)), json!({ "TotalQuota": 100 }));
    let pool = |total: u32, remaining: u32, issued: u32| json!({ "AgentName": "", "AccountType": 1, "TotalQuota": total, "RemainingQuota": remaining, "IssuedNum": issued });
    assert_eq!(ok(call!(app, fx, "r", "QueryVoucherPool", json!({}))), pool(100, 100, 0));
    let distributor = ok(call!(app, fx, "d", "QueryVoucherPool", json!({})));
    assert_eq!((&distributor["AccountType"], &distributor["TotalQuota"]), (&json!(2), &json!(0)));
    assert_eq!(ok(call!(app, fx, "s", "QueryVoucherPool", json!({})))["AccountType"], 3);
    assert_eq!(code(&call!(app, fx, "c", "QueryVoucherPool", json!({}))), "FailedOperation.UinNotAgent");
    assert_eq!(code(&call!(app, fx, "op", "QueryVoucherPool", json!({}))), "UnauthorizedOperation.UinNoAuth");

    // Customer vouchers 1 (cvm only, from the start of the year) and 2 (postpaid only).
    let body = json!({
        "CustomerUin": 10, "Amount": 10, "ProductScope": "SpecifyProducts", "ProductCodes": ["cvm"],
        "EffectiveTime": "2026-01-01 00:00:00", "ExpireTime": expire,
    });
    assert_eq!(ok(call!(app, fx, "r", "IssueCustomerVoucher", body)), json!({ "VoucherId": 1 }));
    let body = json!({ "CustomerUin": 10, "Amount": 5, "PaymentMode": "Postpaid", "ExpireTime": "2026-06-30 00:00:00" });
    assert_eq!(ok(call!(app, fx, "r", "IssueCustomerVoucher", body)), json!({ "VoucherId": 2 }));
    let issued_2 = fx.engine.now();
    assert_eq!(ok(call!(app, fx, "r", "QueryVoucherPool", json!({}))), pool(100, 85, 2));

    // Partner vouchers 3 (General) and 4 (ProductTrial for C, cvm only): pending, then
    // approved; 4 comes with customer voucher 5 (created pending with it), approved with it.
    let body = json!({ "Type": "General", "Amount": 5, "ExpireTime": expire });
    let general = ok(call!(app, fx, "r", "ApplyPartnerVoucher", body));
    assert_eq!(general, json!({ "VoucherId": 3, "VoucherStatus": "PendingApproval" }));
    let body = json!({
        "Type": "ProductTrial", "CustomerUin": 10, "Amount": 4, "ProductScope": "SpecifyProducts",
        "ProductCodes": ["cvm"], "ExpireTime": expire,
    });
    let trial = ok(call!(app, fx, "r", "ApplyPartnerVoucher", body));
    assert_eq!(trial, json!({ "VoucherId": 4, "VoucherStatus": "PendingApproval" }));
    assert_eq!(
        code(&call!(app, fx, "r", "ApprovePartnerVoucher", json!({ "VoucherId": 3 }))),
        "UnauthorizedOperation.UinNoAuth"
    );
    let approved = ok(call!(app, fx, "op", "ApprovePartnerVoucher", json!({ "VoucherId": 3 })));
    assert_eq!(approved, json!({ "VoucherId": 3, "AssociatedVoucherId": null }));
    let approved = ok(call!(app, fx, "op", "ApprovePartnerVoucher", json!({ "VoucherId": 4 })));
    assert_eq!(approved, json!({ "VoucherId": 4, "AssociatedVoucherId": 5 }));
    let approved_4 = fx.engine.now();
    assert_eq!(
        code(&call!(app, fx, "op", "ApprovePartnerVoucher", json!({ "VoucherId": 4 }))),
        "FailedOperation.VoucherStatus"
    );

    // The customer's own list, newest first, and its partner's, with Usage.
    let item = |id: u64,
                status: &str,
                remaining: &str,
                total: u32,
                payment: &str,
                scope: &str,
                effective,
                expire: &str| {
        json!({
            "VoucherId": id, "CustomerUin": 10, "VoucherStatus": status, "RemainingAmount": number(remaining),
            "TotalAmount": total, "PaymentMode": payment, "ProductScope": scope, "EffectiveTime": effective,
            "ExpireTime": expire,
        })
    };
    let five = item(5, "Issued", "4", 4, "AllPayment", "SpecifyProducts", at(approved_4), expire);
    let two = item(2, "Issued", "5", 5, "Postpaid", "AllProducts", at(issued_2), "2026-06-30 00:00:00");
    let one =
        item(1, "Issued", "10", 10, "AllPayment", "SpecifyProducts", json!("2026-01-01 00:00:00"), expire);
    let page = json!({ "Page": 1, "PageSize": 10 });
    let own = ok(call!(app, fx, "c", "DescribeCustomerOwnVoucherList", page));
    assert_eq!(own, json!({ "TotalCount": 3, "Data": [five, two, one] }));
    let with_usage = |mut item: Value, usage: &str| {
        item["Usage"] = json!(usage);
        item["ApplyReason"] = json!("");
        item
    };
    let listed = ok(call!(app, fx, "r", "DescribeCustomerVoucherList", page));
    assert_eq!(
        listed,
        json!({ "TotalCount": 3, "Data": [
            with_usage(five.clone(), "ProductTrial"),
            with_usage(two.clone(), "CustomerOffer"),
            with_usage(one.clone(), "CustomerOffer"),
        ] })
    );
    let body = json!({ "Page": 1, "PageSize": 10, "CustomerUin": 10, "Usage": "ProductTrial" });
    let trials = ok(call!(app, fx, "r", "DescribeCustomerVoucherList", body));
    assert_eq!(trials, json!({ "TotalCount": 1, "Data": [with_usage(five.clone(), "ProductTrial")] }));
    let body =
        json!({ "Page": 2, "PageSize": 2, "PaymentMode": "AllPayment", "ProductScope": "SpecifyProducts" });
    let second_page = ok(call!(app, fx, "c", "DescribeCustomerOwnVoucherList", body));
    assert_eq!(second_page, json!({ "TotalCount": 2, "Data": [] }));
    let amounts = json!({ "ClientUins": [10, 13] });
    assert_eq!(
        ok(call!(app, fx, "r", "QueryVoucherAmountByUin", amounts)),
        json!({ "Data": [
            { "ClientUin": 10, "TotalAmount": 19, "RemainAmount": 19 },
            { "ClientUin": 13, "TotalAmount": 0, "RemainAmount": 0 },
        ] })
    );

    // Not in any voucher's scope on the customer's side; the General voucher on R's side.
    let body = json!({ "PurchaseId": "v-0", "ClientUin": 10, "Amount": 3, "ProductCode": "cos" });
    assert_eq!(
        ok(call!(app, fx, "c", "CreatePurchase", body)),
        json!({
            "PurchaseId": "v-0", "Status": "Committed", "ChargedUin": 3, "ClientRemainingCredit": 197,
            "PartnerRemainingCredit": number("480.1"), "ClientVoucherDeduction": 0,
            "PartnerVoucherDeduction": 3, "ClientCharge": 3, "PartnerCharge": 0,
        })
    );
    // Trial vouchers first on both sides (5 and 4), then the rest (1; 3's last 2). The
    // exponent sends it down the general path, which answers the same fields.
    let body = r#"{"PurchaseId": "v-1", "ClientUin": 10, "Amount": 2e1, "ProductCode": "cvm"}"#;
    let request = fx.raw_request("c", "CreatePurchase", body).to_request();
    let answer: Value = test::call_and_read_body_json(&app, request).await;
    let bought_at = fx.engine.now();
    assert_eq!(
        ok(answer["Response"].clone()),
        json!({
            "PurchaseId": "v-1", "Status": "Committed", "ChargedUin": 3, "ClientRemainingCredit": 191,
            "PartnerRemainingCredit": number("466.1"), "ClientVoucherDeduction": 14,
            "PartnerVoucherDeduction": 6, "ClientCharge": 6, "PartnerCharge": 14,
        })
    );
    // A reservation holds deductions; the cancel gives them back.
    let body = json!({
        "PurchaseId": "v-2", "ClientUin": 10, "Amount": 1.5, "PaymentMode": "Postpaid", "TimeoutSeconds": 30,
    });
    let reserved = ok(call!(app, fx, "c", "ReservePurchase", body));
    assert_eq!(
        reserved,
        json!({
            "PurchaseId": "v-2", "Status": "Reserved", "ExpireTime": at(fx.engine.now().plus_ms(30_000)),
            "ClientVoucherDeduction": number("1.5"), "PartnerVoucherDeduction": 0, "ClientCharge": 0,
            "PartnerCharge": number("1.5"),
        })
    );
    let cancelled = ok(call!(app, fx, "c", "CancelPurchase", json!({ "PurchaseId": "v-2" })));
    assert_eq!(cancelled["Status"], "Cancelled");
    // A batch answers each committed purchase's charges.
    let batch = json!({ "Purchases": [
        { "PurchaseId": "v-3", "ClientUin": 10, "Amount": 2, "PaymentMode": "Postpaid" },
        { "PurchaseId": "v-4", "ClientUin": 10, "Amount": 100000 },
    ] });
    let results = ok(call!(app, fx, "c", "CreatePurchases", batch))["Results"].clone();
    let paid_at = fx.engine.now();
    assert_eq!(
        results,
        json!([
            { "PurchaseId": "v-3", "Status": "Committed", "ClientVoucherDeduction": 2,
              "PartnerVoucherDeduction": 0, "ClientCharge": 0, "PartnerCharge": 2 },
            { "PurchaseId": "v-4", "Status": "Refused", "ErrorCode": "FailedOperation.InsufficientClientCredit",
              "ErrorMessage": "customer 10 has 191 available, the purchase needs 100000" },
        ])
    );

    // Usage details: by the partner for voucher 1, by the customer for voucher 2.
    let detail = |id: u64, voucher: &str, purchase: &str, amount: u32, pay: &str, product: &str, time| {
        json!({
            "Id": id, "VoucherId": voucher, "DealName": purchase, "BillId": purchase, "Amount": amount,
            "PayMode": pay, "ProductCode": product, "SubProductCode": "", "ProductCodeName": product,
            "SubProductCodeName": "", "PayTime": time, "CompletionTime": time, "OwnerUin": 10,
        })
    };
    let body = json!({ "Page": 1, "PageSize": 10, "CustomerUin": 10, "VoucherId": 1 });
    assert_eq!(
        ok(call!(app, fx, "r", "DescribeCustomerVoucherUsageDetails", body)),
        json!({
            "Data": [detail(2, "1", "v-1", 10, "Prepaid", "cvm", at(bought_at))], "CustomerUin": 10,
            "VoucherId": 1, "TotalAmount": 10, "RemainAmount": 0, "TotalRecordsCount": 1, "Month": "",
            "RecordsCountByMonth": 1,
        })
    );
    let body = json!({ "Page": 1, "PageSize": 10, "CustomerUin": 10, "VoucherId": 1, "Month": "2026-02" });
    let february = ok(call!(app, fx, "r", "DescribeCustomerVoucherUsageDetails", body));
    assert_eq!(
        (
            &february["Data"],
            &february["Month"],
            &february["RecordsCountByMonth"],
            &february["TotalRecordsCount"]
        ),
        (&json!([]), &json!("2026-02"), &json!(0), &json!(1))
    );
    let body = json!({ "Page": 1, "PageSize": 10, "VoucherId": 2, "Month": "2026-01" });
    assert_eq!(
        ok(call!(app, fx, "c", "DescribeCustomerOwnVoucherUsageDetails", body)),
        json!({
            "Data": [detail(3, "2", "v-3", 2, "Postpaid", "", at(paid_at))], "VoucherId": 2, "TotalAmount": 5,
            "RemainAmount": 3, "TotalRecordsCount": 1, "Month": "2026-01", "RecordsCountByMonth": 1,
        })
    );
    let body = json!({ "Page": 1, "PageSize": 10, "VoucherId": 3 });
    assert_eq!(
        code(&call!(app, fx, "c", "DescribeCustomerOwnVoucherUsageDetails", body)),
        "ResourceNotFound.VoucherId",
        "voucher 3 is R's, not C's"
    );

    // The amounts, the lists by UIN and the billing quota agree.
    assert_eq!(
        ok(call!(app, fx, "r", "QueryVoucherAmountByUin", json!({ "ClientUins": [10] }))),
        json!({ "Data": [{ "ClientUin": 10, "TotalAmount": 19, "RemainAmount": 3 }] })
    );
    let voucher = |id: &str, status: &str, total: u32, remaining: u32| json!({ "VoucherId": id, "VoucherStatus": status, "TotalAmount": total, "RemainAmount": remaining });
    assert_eq!(
        ok(call!(app, fx, "r", "QueryVoucherListByUin", json!({ "ClientUins": [10] }))),
        json!({ "Data": [{ "ClientUin": 10, "TotalCount": 3, "Data": [
            voucher("1", "Used", 10, 0), voucher("2", "Unused", 5, 3), voucher("5", "Used", 4, 0),
        ] }] })
    );
    let used =
        ok(call!(app, fx, "r", "QueryVoucherListByUin", json!({ "ClientUins": [10], "Status": "Used" })));
    assert_eq!(used["Data"][0]["TotalCount"], 2);
    let unused =
        ok(call!(app, fx, "r", "QueryVoucherListByUin", json!({ "ClientUins": [10], "Status": "Unused" })));
    assert_eq!(unused["Data"][0]["Data"], json!([voucher("2", "Unused", 5, 3)]));
    let quota = ok(call!(app, fx, "c", "QueryCustomerBillingQuota", json!({})))["Data"].clone();
    assert_eq!((&quota["RemainingVoucher"], &quota["RemainingCredit"]), (&json!(3), &json!(191)));

    // Over the quota: refused, and the pool is as it was.
    let body = json!({ "CustomerUin": 10, "Amount": 86, "ExpireTime": expire });
    assert_eq!(
        code(&call!(app, fx, "r", "IssueCustomerVoucher", body)),
        "FailedOperation.InsufficientVoucherQuota"
    );
    assert_eq!(ok(call!(app, fx, "r", "QueryVoucherPool", json!({}))), pool(100, 85, 2));

    // Withdraw: an offer with something left; not a used-up one, nor a trial voucher.
    assert_eq!(ok(call!(app, fx, "r", "WithdrawCustomerVoucher", json!({ "VoucherId": 2 }))), json!({}));
    for id in [1, 5] {
        let refused = call!(app, fx, "r", "WithdrawCustomerVoucher", json!({ "VoucherId": id }));
        assert_eq!(code(&refused), "FailedOperation.VoucherStatus", "{id}");
    }
    assert_eq!(
        ok(call!(app, fx, "r", "QueryVoucherAmountByUin", json!({ "ClientUins": [10] }))),
        json!({ "Data": [{ "ClientUin": 10, "TotalAmount": 14, "RemainAmount": 0 }] })
    );
    // Invalidate: only by its partner (or the operator), others are told it does not
    // exist; its customer voucher goes too.
    assert_eq!(
        code(&call!(app, fx, "r2", "InvalidatePartnerVoucher", json!({ "VoucherId": 4 }))),
        "ResourceNotFound.VoucherId"
    );
    assert_eq!(ok(call!(app, fx, "r", "InvalidatePartnerVoucher", json!({ "VoucherId": 4 }))), json!({}));
    let body = json!({ "Page": 1, "PageSize": 10, "VoucherStatus": "Invalidated" });
    let invalidated = ok(call!(app, fx, "c", "DescribeCustomerOwnVoucherList", body));
    let ids: Vec<&Value> =
        invalidated["Data"].as_array().unwrap().iter().map(|item| &item["VoucherId"]).collect();
    assert_eq!((&invalidated["TotalCount"], ids), (&json!(2), vec![&json!(5), &json!(2)]));
    let body = json!({ "Enabled": false });
    assert_eq!(ok(call!(app, fx, "r", "SetTrialVoucherPriority", body)), json!({}));
    let body = json!({ "Enabled": true, "PartnerUin": 3 });
    assert_eq!(ok(call!(app, fx, "op", "SetTrialVoucherPriority", body)), json!({}));
    // Each side's charge plus its deductions is the amount: C was charged 3 + 6 + 0 of
    // 3 + 20 + 2, R 0 + 14 + 2 (besides `late`'s 19.9).
    assert_eq!(fx.view(fx.t.c).await.available(), m("191"));
    assert_eq!(fx.view(fx.t.r).await.available(), m("464.1"));
}

/// Bad input to the upstream voucher queries: each gets its code and names what is wrong.
#[actix_web::test]
async fn voucher_queries_refuse_bad_input() {
    let fx = fixture().await;
    let app = app!(fx);
    let list = |extra: Value| {
        let mut body = json!({ "Page": 1, "PageSize": 10 });
        for (name, value) in extra.as_object().unwrap() {
            body[name] = value.clone();
        }
        body
    };
    let cases = [
        ("r", "QueryVoucherPool", json!({ "PartnerUin": 3 }), "UnknownParameter", "PartnerUin"),
        ("r", "QueryVoucherAmountByUin", json!({}), "MissingParameter", "ClientUins"),
        ("r", "QueryVoucherAmountByUin", json!({ "ClientUins": [] }), "InvalidParameterValue", "1 to 20"),
        (
            "r",
            "QueryVoucherAmountByUin",
            json!({ "ClientUins": vec![10; 21] }),
            "InvalidParameterValue",
            "got 21",
        ),
        ("r", "QueryVoucherAmountByUin", json!({ "ClientUins": ["10"] }), "InvalidParameter", "ClientUins.0"),
        ("r", "QueryVoucherAmountByUin", json!({ "ClientUins": [999] }), "ResourceNotFound.ClientUin", "999"),
        (
            "r",
            "QueryVoucherAmountByUin",
            json!({ "ClientUins": [3] }),
            "InvalidParameterValue.InvalidUin",
            "3",
        ),
        (
            "r2",
            "QueryVoucherAmountByUin",
            json!({ "ClientUins": [10] }),
            "UnauthorizedOperation.NotCustomerUin",
            "10",
        ),
        (
            "r",
            "QueryVoucherListByUin",
            json!({ "ClientUins": [10], "Status": "Issued" }),
            "InvalidParameterValue",
            "Unused, Used or Expired",
        ),
        (
            "r",
            "QueryVoucherListByUin",
            json!({ "ClientUins": [10], "Status": 1 }),
            "InvalidParameter",
            "Status",
        ),
        ("r", "DescribeCustomerVoucherList", json!({}), "MissingParameter", "Page"),
        ("r", "DescribeCustomerVoucherList", json!({ "Page": 1 }), "MissingParameter", "PageSize"),
        (
            "r",
            "DescribeCustomerVoucherList",
            list(json!({ "PageSize": 0 })),
            "InvalidParameter.Page",
            "PageSize",
        ),
        (
            "r",
            "DescribeCustomerVoucherList",
            list(json!({ "PageSize": 101 })),
            "InvalidParameter.Page",
            "PageSize",
        ),
        (
            "r",
            "DescribeCustomerVoucherList",
            list(json!({ "Page": -1 })),
            "InvalidParameter.Page",
            "negative",
        ),
        (
            "r",
            "DescribeCustomerVoucherList",
            list(json!({ "VoucherStatus": "Issused" })),
            "InvalidParameterValue",
            "\"Issused\" is not Issued, Used, Expired or Invalidated",
        ),
        (
            "r",
            "DescribeCustomerVoucherList",
            list(json!({ "VoucherStatus": "PendingApproval" })),
            "InvalidParameterValue",
            "VoucherStatus",
        ),
        (
            "r",
            "DescribeCustomerVoucherList",
            list(json!({ "Usage": "Trial" })),
            "InvalidParameterValue",
            "ProductTrial or CustomerOffer",
        ),
        (
            "r",
            "DescribeCustomerVoucherList",
            list(json!({ "PaymentMode": "All" })),
            "InvalidParameterValue",
            "PaymentMode",
        ),
        (
            "r",
            "DescribeCustomerVoucherList",
            list(json!({ "ProductScope": "All" })),
            "InvalidParameterValue",
            "ProductScope",
        ),
        (
            "r",
            "DescribeCustomerVoucherList",
            list(json!({ "VoucherId": "1" })),
            "InvalidParameter",
            "VoucherId",
        ),
        (
            "r",
            "DescribeCustomerVoucherList",
            list(json!({ "CustomerUin": 12 })),
            "UnauthorizedOperation.NotCustomerUin",
            "12",
        ),
        (
            "r",
            "DescribeCustomerVoucherList",
            list(json!({ "CustomerUin": 2 })),
            "InvalidParameterValue.InvalidUin",
            "2",
        ),
        ("op", "DescribeCustomerVoucherList", list(json!({})), "InvalidParameterValue", "CustomerUin"),
        (
            "c",
            "DescribeCustomerOwnVoucherList",
            list(json!({ "CustomerUin": 10 })),
            "UnknownParameter",
            "CustomerUin",
        ),
        (
            "c",
            "DescribeCustomerOwnVoucherList",
            list(json!({ "Usage": "ProductTrial" })),
            "UnknownParameter",
            "Usage",
        ),
        (
            "c",
            "DescribeCustomerOwnVoucherList",
            list(json!({ "VoucherStatus": "Issused" })),
            "InvalidParameterValue",
            "Issused",
        ),
        (
            "op",
            "DescribeCustomerOwnVoucherList",
            list(json!({})),
            "UnauthorizedOperation.UinNoAuth",
            "operator",
        ),
        ("r", "DescribeCustomerOwnVoucherList", list(json!({})), "InvalidParameterValue.InvalidUin", "3"),
        (
            "r",
            "DescribeCustomerVoucherUsageDetails",
            list(json!({ "CustomerUin": 10 })),
            "MissingParameter",
            "VoucherId",
        ),
        (
            "r",
            "DescribeCustomerVoucherUsageDetails",
            list(json!({ "VoucherId": 1 })),
            "MissingParameter",
            "CustomerUin",
        ),
        (
            "r",
            "DescribeCustomerVoucherUsageDetails",
            list(json!({ "CustomerUin": 10, "VoucherId": 1, "Month": "2026-1" })),
            "InvalidParameterValue",
            "YYYY-MM",
        ),
        (
            "r",
            "DescribeCustomerVoucherUsageDetails",
            list(json!({ "CustomerUin": 10, "VoucherId": 99 })),
            "ResourceNotFound.VoucherId",
            "99",
        ),
        (
            "r2",
            "DescribeCustomerVoucherUsageDetails",
            list(json!({ "CustomerUin": 10, "VoucherId": 99 })),
            "UnauthorizedOperation.NotCustomerUin",
            "10",
        ),
        (
            "op",
            "DescribeCustomerOwnVoucherUsageDetails",
            list(json!({ "VoucherId": 1 })),
            "UnauthorizedOperation.UinNoAuth",
            "operator",
        ),
        (
            "c",
            "DescribeCustomerOwnVoucherUsageDetails",
            list(json!({ "VoucherId": 1, "CustomerUin": 10 })),
            "UnknownParameter",
            "CustomerUin",
        ),
    ];
    for (key, action, body, expected, mentions) in cases {
        let response = call!(app, fx, key, action, body);
        let message = response["Error"]["Message"].as_str().unwrap_or_default();
        assert_eq!(code(&response), expected, "{action} {body}: {message}");
        assert!(message.contains(mentions), "{action} {body}: {message:?} does not mention {mentions:?}");
    }
}
