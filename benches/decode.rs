//! Criterion: decoding a request's parameters, flattened (a form body or a query string, as
//! signature v1 and GET requests carry them) against the same request as a JSON body. The
//! target is at most 1.2 times JSON's time for each request.
//!
//! The requests, as the official SDKs write them: one `CreatePurchase`, a `CreatePurchases`
//! of 100 (`Purchases.N.Field=...`), and a `QueryCreditByUinList` of 100 UINs
//! (`UinList.N=...`). Each decoded tree is dropped inside the timed loop, in both encodings.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use partner_credit::api::decode;
use serde_json::Value;

fn purchase_json(index: usize) -> String {
    format!(
        r#"{{"PurchaseId":"order-{index}","ClientUin":{},"Amount":12.50,"ProductCode":"cvm"}}"#,
        3_000_000 + index
    )
}

fn purchase_form(prefix: &str, index: usize) -> String {
    format!(
        "{prefix}PurchaseId=order-{index}&{prefix}ClientUin={}&{prefix}Amount=12.50&{prefix}ProductCode=cvm",
        3_000_000 + index
    )
}

/// (name, JSON body, the same request flattened).
fn requests() -> Vec<(&'static str, String, String)> {
    let purchases = 100;
    let batch_json =
        format!(r#"{{"Purchases":[{}]}}"#, (0..purchases).map(purchase_json).collect::<Vec<_>>().join(","));
    let batch_form = (0..purchases)
        .map(|index| purchase_form(&format!("Purchases.{index}."), index))
        .collect::<Vec<_>>()
        .join("&");
    let uins = 100;
    let list_json = format!(
        r#"{{"UinList":[{}]}}"#,
        (0..uins).map(|index| (3_000_000 + index).to_string()).collect::<Vec<_>>().join(",")
    );
    let list_form =
        (0..uins).map(|index| format!("UinList.{index}={}", 3_000_000 + index)).collect::<Vec<_>>().join("&");
    vec![
        ("CreatePurchase", purchase_json(1), purchase_form("", 1)),
        ("CreatePurchases of 100", batch_json, batch_form),
        ("QueryCreditByUinList of 100", list_json, list_form),
    ]
}

/// A tree with every value as its text, as the flattened encoding holds it.
fn as_text(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(key, value)| (key, as_text(value))).collect())
        }
        Value::Array(values) => Value::Array(values.into_iter().map(as_text).collect()),
        Value::Number(number) => Value::String(number.to_string()),
        other => other,
    }
}

fn decoding(c: &mut Criterion) {
    for (name, json, flattened) in requests() {
        // Both encodings must decode, to the same parameters, for the comparison to mean anything.
        let tree = decode::json(json.as_bytes()).expect("valid JSON").into_value();
        let flat = decode::flattened(flattened.as_bytes()).expect("valid form").into_value();
        assert_eq!(as_text(tree), flat, "{name}");
        let mut group = c.benchmark_group(format!("decode/{name}"));
        group.bench_function("json", |b| b.iter(|| decode::json(black_box(json.as_bytes())).unwrap()));
        group.bench_function("flattened", |b| {
            b.iter(|| decode::flattened(black_box(flattened.as_bytes())).unwrap())
        });
        group.finish();
    }
}

criterion_group!(benches, decoding);
criterion_main!(benches);
