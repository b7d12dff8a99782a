//! Property tests of the one decoder: the same request written as a JSON body, as a form body
//! and as a query string (flattened, `List.0.Field=...`, in any order, with either way of
//! writing a space) decodes to the same request.
//!
//! Two levels: any tree of objects, lists, strings, numbers and booleans decodes to the same
//! tree (the flattened one holding each value as its text), and a request of known
//! parameters reads, through the actions' readers, as the same typed values or the same
//! refusal (code and message) in every encoding.

use proptest::prelude::*;
use serde_json::{Map, Number, Value};

use partner_credit::api::decode;
use partner_credit::api::params::Params;

// ----- writing a request in each encoding ------------------------------------------------------

/// What a form value escapes in the form body: all but RFC 3986's unreserved characters, so
/// a space is `%20` (as the Node.js SDK writes it).
const FORM: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// The query string escapes less and writes a space as `+` (as Python's `urlencode` does).
const QUERY: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'+')
    .add(b'=')
    .add(b'<')
    .add(b'>');

/// The flattened pairs of a tree, as the SDKs write them: a list's elements numbered from 0,
/// every value its text.
fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
    let child = |name: &str| if prefix.is_empty() { name.to_owned() } else { format!("{prefix}.{name}") };
    match value {
        Value::Object(map) => map.iter().for_each(|(key, value)| flatten(&child(key), value, out)),
        Value::Array(values) => values
            .iter()
            .enumerate()
            .for_each(|(index, value)| flatten(&child(&index.to_string()), value, out)),
        Value::String(text) => out.push((prefix.to_owned(), text.clone())),
        Value::Bool(value) => out.push((prefix.to_owned(), value.to_string())),
        Value::Number(number) => out.push((prefix.to_owned(), number.to_string())),
        Value::Null => {}
    }
}

fn form_body(pairs: &[(String, String)]) -> String {
    let encode = |text: &str| percent_encoding::utf8_percent_encode(text, FORM).to_string();
    pairs
        .iter()
        .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

fn query_string(pairs: &[(String, String)]) -> String {
    let encode =
        |text: &str| percent_encoding::utf8_percent_encode(text, QUERY).to_string().replace(' ', "+");
    pairs
        .iter()
        .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The tree with every value as its text, as the flattened encoding holds it.
fn as_text(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.iter().map(|(key, value)| (key.clone(), as_text(value))).collect())
        }
        Value::Array(values) => Value::Array(values.iter().map(as_text).collect()),
        Value::Bool(value) => Value::String(value.to_string()),
        Value::Number(number) => Value::String(number.to_string()),
        other => other.clone(),
    }
}

/// The same pairs in another order: reversed, then rotated by `turn`.
fn reordered(pairs: &[(String, String)], turn: usize) -> Vec<(String, String)> {
    let mut pairs: Vec<_> = pairs.iter().rev().cloned().collect();
    if !pairs.is_empty() {
        let len = pairs.len();
        pairs.rotate_left(turn % len);
    }
    pairs
}

// ----- strategies ------------------------------------------------------------------------------

/// A number exactly as JSON writes one (and as the SDKs write one in a form).
fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        (any::<i32>(), 1u32..10)
            .prop_map(|(n, scale)| rust_decimal::Decimal::new(n.into(), scale).to_string()),
        Just("1e-05".to_owned()),
        Just("-0".to_owned()),
        Just("2.5E3".to_owned()),
    ]
}

fn number() -> impl Strategy<Value = Value> {
    number_text().prop_map(|text| Value::Number(text.parse::<Number>().expect("a JSON number")))
}

/// Text with what the encodings must escape: `&`, `=`, `+`, `%`, `.`, spaces and beyond ASCII.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9 ]{0,8}",
        "[&=+%. /?#\"'~é€😀a-z0-9]{0,10}",
        any::<String>().prop_map(|text| text.chars().take(12).collect()),
    ]
}

fn key() -> impl Strategy<Value = String> {
    "[A-Z][A-Za-z]{0,6}"
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![text().prop_map(Value::String), number(), any::<bool>().prop_map(Value::Bool)]
}

/// Any tree the flattened encoding can write: no empty list or object (the SDKs write
/// nothing for one), no null (they leave it out).
fn tree() -> impl Strategy<Value = Value> {
    let node = leaf().prop_recursive(4, 48, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..5).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 1..5)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    });
    prop::collection::btree_map(key(), node, 0..6).prop_map(|map| Value::Object(map.into_iter().collect()))
}

// ----- the tree level --------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn json_form_and_query_decode_to_the_same_tree(request in tree(), turn in 0usize..64) {
        let json = serde_json::to_vec(&request).unwrap();
        let mut pairs = Vec::new();
        flatten("", &request, &mut pairs);
        let form = form_body(&pairs);
        let query = query_string(&reordered(&pairs, turn));

        let from_json = decode::json(&json).unwrap().into_value();
        prop_assert_eq!(&from_json, &request);
        let from_form = decode::flattened(form.as_bytes()).unwrap();
        prop_assert!(from_form.is_flattened());
        let from_form = from_form.into_value();
        prop_assert_eq!(&from_form, &as_text(&request), "form {}", form);
        let from_query = decode::flattened(query.as_bytes()).unwrap().into_value();
        prop_assert_eq!(&from_query, &from_form, "query {}", query);
    }
}

// ----- the request level -----------------------------------------------------------------------

/// What the readers made of a request: each value read, or the first refusal.
#[derive(Debug, PartialEq)]
enum Read {
    Values(Vec<String>),
    Refused(String, String),
}

/// Reads the parameters of a purchase batch, a UIN list, a switch and a page, as the
/// actions' readers do, in order.
fn read(mut params: Params) -> Read {
    let mut values = Vec::new();
    let mut step = || -> Result<(), partner_credit::api::errors::ApiError> {
        for mut item in
            params.objects("Purchases", 100, "InvalidParameterValue.Purchases")?.unwrap_or_default()
        {
            values.push(item.required_purchase_id("PurchaseId")?.as_str().to_owned());
            values.push(item.required_uin("ClientUin")?.0.to_string());
            values.push(item.required_money("Amount")?.to_string());
            values.push(format!("{:?}", item.string("ProductCode")?));
            item.finish()?;
        }
        values.push(format!("{:?}", params.uins("UinList", 100, "InvalidParameterValue.UinList")?));
        values.push(format!("{:?}", params.bool("Enabled")?));
        values.push(format!("{:?}", params.integer("Page")?));
        values.push(format!("{:?}", params.decimal("Percent")?));
        values.push(format!("{:?}", params.string("Remark")?));
        Ok(())
    };
    let result = step();
    match result {
        Ok(()) => match params.finish() {
            Ok(()) => Read::Values(values),
            Err(error) => Read::Refused(error.code.into_owned(), error.message),
        },
        Err(error) => Read::Refused(error.code.into_owned(), error.message),
    }
}

/// A request of those parameters, mostly valid: UINs and ids that may be out of bounds,
/// amounts with too many decimals, numbers where an integer is due.
fn known_request() -> impl Strategy<Value = Value> {
    let uin = prop_oneof![
        (1u64..=u64::MAX).prop_map(Value::from),
        Just(Value::from(0)),
        Just(Value::from(-3)),
        Just(Value::Number("1.5".parse().unwrap())),
    ];
    let purchase = (prop_oneof!["[a-z0-9-]{1,12}", text()], uin.clone(), number(), prop::option::of(text()))
        .prop_map(|(id, customer, amount, code)| {
            let mut map = Map::new();
            map.insert("PurchaseId".into(), Value::String(id));
            map.insert("ClientUin".into(), customer);
            map.insert("Amount".into(), amount);
            if let Some(code) = code {
                map.insert("ProductCode".into(), Value::String(code));
            }
            Value::Object(map)
        });
    (
        prop::option::of(prop::collection::vec(purchase, 1..4)),
        prop::option::of(prop::collection::vec(uin, 1..13)),
        prop::option::of(any::<bool>()),
        prop::option::of(number()),
        prop::option::of(number()),
        prop::option::of(text()),
    )
        .prop_map(|(purchases, uins, enabled, page, percent, remark)| {
            let mut map = Map::new();
            let mut put = |name: &str, value: Option<Value>| {
                if let Some(value) = value {
                    map.insert(name.into(), value);
                }
            };
            put("Purchases", purchases.map(Value::Array));
            put("UinList", uins.map(Value::Array));
            put("Enabled", enabled.map(Value::Bool));
            put("Page", page);
            put("Percent", percent);
            put("Remark", remark.map(Value::String));
            Value::Object(map)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn json_form_and_query_read_as_the_same_request(request in known_request(), turn in 0usize..64) {
        let json = serde_json::to_vec(&request).unwrap();
        let mut pairs = Vec::new();
        flatten("", &request, &mut pairs);
        let from_json = read(decode::json(&json).unwrap());
        let from_form = read(decode::flattened(form_body(&pairs).as_bytes()).unwrap());
        let from_query = read(decode::flattened(query_string(&reordered(&pairs, turn)).as_bytes()).unwrap());
        prop_assert_eq!(&from_form, &from_json);
        prop_assert_eq!(&from_query, &from_json);
    }
}

/// The Python SDK writes booleans as `True` and `False`; they read as JSON's.
#[test]
fn booleans_as_either_sdk_writes_them() {
    for (text, expected) in [("true", true), ("True", true), ("false", false), ("False", false)] {
        let mut params = decode::flattened(format!("Enabled={text}").as_bytes()).unwrap();
        assert_eq!(params.bool("Enabled").unwrap(), Some(expected), "{text}");
    }
    for text in ["TRUE", "1", "yes", ""] {
        let mut params = decode::flattened(format!("Enabled={text}").as_bytes()).unwrap();
        assert_eq!(params.bool("Enabled").unwrap_err().message, "`Enabled` must be true or false", "{text}");
    }
    // Text that is no JSON number is of the wrong type, as a JSON string would be.
    for text in [" 12", "12 ", "+12", "012", "0x10", "1.", ".5", "NaN"] {
        let mut params = decode::flattened(format!("Page={}", text.replace(' ', "%20")).as_bytes()).unwrap();
        assert_eq!(params.integer("Page").unwrap_err().message, "`Page` must be an integer", "{text:?}");
    }
}
