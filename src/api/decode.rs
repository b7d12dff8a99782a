//! The one decoder of a request's parameters, whatever their encoding: a JSON body, or the
//! flattened encoding (`application/x-www-form-urlencoded`) of a form body or a query
//! string. Both become one [`Params`] tree, which the actions' readers read; no action has
//! a parser of its own.
//!
//! The flattened encoding writes a tree as dotted names: `UinList.0=1&UinList.1=2`,
//! `Purchases.0.Amount=1.5`, `Faults.1.Action=Ping`, to any depth. A name's first part is a
//! parameter; after it, a part of digits (`0`, or without a leading zero) numbers an element
//! of a list, and any other part names a field of an object. A list's elements are numbered
//! from 0 without gaps. Every value is text: the reader of a parameter reads it as its type
//! (see [`Params`]), so `ClientUin=12` is the integer 12, as `"ClientUin": 12` is.
//!
//! Refused, with `InvalidParameter` naming the parameter:
//! - a name given twice (a repeated JSON key, at any depth, or a repeated form or query
//!   field): a request names each parameter once, so that a proxy and this server can never
//!   read different values from the same bytes;
//! - a malformed flattened name (an empty part, a number with a leading zero, a list with a
//!   gap, a name that is both a value and a list or object, a list that is also an object);
//! - a name or value that is not UTF-8 once percent-decoded.
//!
//! Invariant: decoding changes nothing but the representation: the same request in JSON, as a
//! form body or as a query string reads as the same request (the property tests in
//! `tests/api_decode.rs` hold it to that).

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt::Write as _;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::errors::ApiError;
use super::params::Params;

/// A request's parameters as they came, before they are decoded.
pub enum Encoded<'a> {
    /// A JSON body.
    Json(&'a [u8]),
    /// A form body or a query string, split into names and values (and, for a v1 request,
    /// without the signature's own parameters).
    Flattened(FlatParams<'a>),
}

impl Encoded<'_> {
    /// The parameters, decoded into the one tree the readers read.
    pub fn decode(self) -> Result<Params, ApiError> {
        match self {
            Encoded::Json(body) => json(body),
            Encoded::Flattened(params) => params.into_params(),
        }
    }
}

/// Reads a JSON body: an object (an empty body is an empty object), no key twice in any
/// object.
pub fn json(body: &[u8]) -> Result<Params, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Params::from_map(Map::new()));
    }
    let repeated = Cell::new(None);
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let parsed = ValueSeed { path: Path::Root, repeated: &repeated }
        .deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value));
    match parsed {
        Ok(Value::Object(map)) => Ok(Params::from_map(map)),
        Ok(_) => Err(ApiError::new("InvalidParameter", "the request body must be a JSON object")),
        Err(error) => match repeated.take() {
            Some(name) => Err(given_twice(&name)),
            None => {
                Err(ApiError::new("InvalidParameter", format!("the request body is not valid JSON: {error}")))
            }
        },
    }
}

/// Reads a form body or a query string into parameters.
pub fn flattened(raw: &[u8]) -> Result<Params, ApiError> {
    FlatParams::parse(raw)?.into_params()
}

fn given_twice(name: &str) -> ApiError {
    ApiError::new(
        "InvalidParameter",
        format!("`{name}` is given more than once: a request names each parameter once"),
    )
}

fn malformed(name: &str, reason: &str) -> ApiError {
    ApiError::new("InvalidParameter", format!("`{name}` is not a parameter name this API reads: {reason}"))
}

// ----- JSON --------------------------------------------------------------------------------

/// Where a value sits in the JSON tree, for naming a repeated key (`Purchases.1.Amount`).
#[derive(Clone, Copy)]
enum Path<'p> {
    Root,
    Key(&'p Path<'p>, &'p str),
    Index(&'p Path<'p>, usize),
}

impl Path<'_> {
    fn write(&self, out: &mut String) {
        match self {
            Path::Root => {}
            Path::Key(parent, key) => {
                parent.write(out);
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Path::Index(parent, index) => {
                parent.write(out);
                let _ = write!(out, ".{index}");
            }
        }
    }

    fn name(&self) -> String {
        let mut name = String::new();
        self.write(&mut name);
        name
    }
}

/// Builds a [`Value`] as `serde_json` does, but refuses a key given twice in one object (the
/// first one found is named in `repeated`, for the error).
struct ValueSeed<'p> {
    path: Path<'p>,
    repeated: &'p Cell<Option<String>>,
}

/// The key under which `serde_json` (with `arbitrary_precision`) hands a number to a visitor:
/// a map of one entry whose value is the number's text.
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        loop {
            let seed = ValueSeed { path: Path::Index(&self.path, values.len()), repeated: self.repeated };
            match seq.next_element_seed(seed)? {
                Some(value) => values.push(value),
                None => return Ok(Value::Array(values)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let Some(mut key) = map.next_key::<String>()? else {
            return Ok(Value::Object(Map::new()));
        };
        if key == NUMBER_TOKEN {
            let text: String = map.next_value()?;
            return text.parse::<Number>().map(Value::Number).map_err(de::Error::custom);
        }
        let mut object = Map::new();
        loop {
            if object.contains_key(&key) {
                self.repeated.set(Some(Path::Key(&self.path, &key).name()));
                return Err(de::Error::custom("a key given twice"));
            }
            let value = map
                .next_value_seed(ValueSeed { path: Path::Key(&self.path, &key), repeated: self.repeated })?;
            object.insert(key, value);
            match map.next_key::<String>()? {
                Some(next) => key = next,
                None => return Ok(Value::Object(object)),
            }
        }
    }
}

// ----- the flattened encoding ----------------------------------------------------------------

/// A name and its value, percent-decoded (borrowed from the request where nothing needed
/// decoding).
pub type Pair<'a> = (Cow<'a, str>, Cow<'a, str>);

/// The parameters of a form body or a query string: percent-decoded, sorted by name (bytes
/// in order, as the v1 signature sorts them), each name once.
pub struct FlatParams<'a> {
    pairs: Vec<Pair<'a>>,
}

impl<'a> FlatParams<'a> {
    /// Splits `a=1&b=2` (`+` is a space, `%XX` a byte) and refuses a repeated name.
    pub fn parse(raw: &'a [u8]) -> Result<FlatParams<'a>, ApiError> {
        let mut pairs = Vec::with_capacity(raw.iter().filter(|byte| **byte == b'&').count() + 1);
        for field in raw.split(|byte| *byte == b'&').filter(|field| !field.is_empty()) {
            let (name, value) = match field.iter().position(|byte| *byte == b'=') {
                Some(equals) => (&field[..equals], &field[equals + 1..]),
                None => (field, &field[field.len()..]),
            };
            let name = percent_decoded(name).ok_or_else(|| not_utf8(name))?;
            let value = percent_decoded(value).ok_or_else(|| not_utf8(name.as_bytes()))?;
            pairs.push((name, value));
        }
        pairs.sort_unstable_by(|(a, _), (b, _)| a.as_bytes().cmp(b.as_bytes()));
        if let Some(twice) = pairs.windows(2).find(|two| two[0].0 == two[1].0) {
            return Err(given_twice(&twice[0].0));
        }
        Ok(FlatParams { pairs })
    }

    /// The pairs, sorted by name.
    pub fn pairs(&self) -> &[Pair<'a>] {
        &self.pairs
    }

    /// The value of a top-level name.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.position(name).map(|index| self.pairs[index].1.as_ref())
    }

    /// Removes a top-level name and answers its value.
    pub fn take(&mut self, name: &str) -> Option<Cow<'a, str>> {
        self.position(name).map(|index| self.pairs.remove(index).1)
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.pairs.binary_search_by(|(candidate, _)| candidate.as_bytes().cmp(name.as_bytes())).ok()
    }

    /// The tree the dotted names write, as parameters read as text.
    pub fn into_params(self) -> Result<Params, ApiError> {
        let mut root: Vec<(Cow<'a, str>, Node<'a>)> = Vec::new();
        for (name, value) in self.pairs {
            insert(&mut root, &name, value)?;
        }
        let mut map = Map::new();
        let mut path = String::new();
        for (key, node) in root {
            path.clear();
            path.push_str(&key);
            let value = node.into_value(&mut path)?;
            if map.insert(key.into_owned(), value).is_some() {
                return Err(malformed(&path, "it is given both as a value and with parts"));
            }
        }
        Ok(Params::flattened(map))
    }
}

/// A percent-decoded name or value; `None` when the bytes are not UTF-8.
fn percent_decoded(raw: &[u8]) -> Option<Cow<'_, str>> {
    if !raw.iter().any(|byte| matches!(byte, b'%' | b'+')) {
        return std::str::from_utf8(raw).ok().map(Cow::Borrowed);
    }
    let spaced: Cow<[u8]> = if raw.contains(&b'+') {
        Cow::Owned(raw.iter().map(|byte| if *byte == b'+' { b' ' } else { *byte }).collect())
    } else {
        Cow::Borrowed(raw)
    };
    let bytes: Vec<u8> = percent_encoding::percent_decode(&spaced).collect();
    String::from_utf8(bytes).ok().map(Cow::Owned)
}

fn not_utf8(name: impl AsRef<[u8]>) -> ApiError {
    let name = String::from_utf8_lossy(name.as_ref()).into_owned();
    ApiError::new("InvalidParameter", format!("`{name}` is not UTF-8 text once percent-decoded"))
}

/// A value of the flattened tree, before it is checked and made a [`Value`].
enum Node<'a> {
    Text(Cow<'a, str>),
    /// Fields in the order their names came (sorted, so a field's parts are together).
    Object(Vec<(Cow<'a, str>, Node<'a>)>),
    /// Elements by number, in the order their names came (`10` before `2`).
    List(Vec<(usize, Node<'a>)>),
}

/// Where the next part of a name goes.
enum Slot<'s, 'a> {
    Field(&'s mut Vec<(Cow<'a, str>, Node<'a>)>, Cow<'a, str>),
    Element(&'s mut Vec<(usize, Node<'a>)>, usize),
}

/// Puts `value` at `name` (`A.0.B`) in the tree. Names arrive sorted, so all the parts under
/// one prefix arrive together: a field or element is the last one of its container or new.
fn insert<'a>(
    root: &mut Vec<(Cow<'a, str>, Node<'a>)>,
    name: &str,
    value: Cow<'a, str>,
) -> Result<(), ApiError> {
    let mut parts = name.split('.');
    let first = parts.next().unwrap_or_default();
    if first.is_empty() {
        return Err(malformed(name, "it has an empty part"));
    }
    let mut slot = Slot::Field(root, Cow::Owned(first.to_owned()));
    for part in parts {
        let index = element_number(name, part)?;
        let node = slot.node(index.is_some());
        slot = match (node, index) {
            (Node::List(elements), Some(index)) => Slot::Element(elements, index),
            (Node::Object(fields), None) => Slot::Field(fields, Cow::Owned(part.to_owned())),
            (Node::Text(_), _) => {
                return Err(malformed(name, "a part of it is also given as a value"));
            }
            (Node::List(_), None) | (Node::Object(_), Some(_)) => {
                return Err(malformed(name, "a part of it is given both as a list and as an object"));
            }
        };
    }
    slot.set(Node::Text(value));
    Ok(())
}

/// A part's element number, if it is one (`0`, or digits without a leading zero).
fn element_number(name: &str, part: &str) -> Result<Option<usize>, ApiError> {
    if part.is_empty() {
        return Err(malformed(name, "it has an empty part"));
    }
    if !part.bytes().all(|byte| byte.is_ascii_digit()) {
        return Ok(None);
    }
    if part.len() > 1 && part.starts_with('0') {
        return Err(malformed(name, "a list's elements are numbered without leading zeros"));
    }
    part.parse().map(Some).map_err(|_| malformed(name, "a list's element number is too large"))
}

impl<'s, 'a> Slot<'s, 'a> {
    /// The node at this slot, made a list (or an object) if the slot is new.
    fn node(self, list: bool) -> &'s mut Node<'a> {
        let empty = || if list { Node::List(Vec::new()) } else { Node::Object(Vec::new()) };
        match self {
            Slot::Field(fields, key) => {
                if !matches!(fields.last(), Some((last, _)) if *last == key) {
                    fields.push((key, empty()));
                }
                &mut fields.last_mut().expect("just pushed").1
            }
            Slot::Element(elements, index) => {
                if !matches!(elements.last(), Some((last, _)) if *last == index) {
                    elements.push((index, empty()));
                }
                &mut elements.last_mut().expect("just pushed").1
            }
        }
    }

    /// Puts a value at this slot. A repeat of the last field or element (a name that is
    /// both a value and a prefix) is caught when the tree becomes values.
    fn set(self, node: Node<'a>) {
        match self {
            Slot::Field(fields, key) => fields.push((key, node)),
            Slot::Element(elements, index) => elements.push((index, node)),
        }
    }
}

impl Node<'_> {
    /// The value, checked: no field twice, list elements numbered 0 to n - 1. `path` is the
    /// node's name, for errors (restored before returning).
    fn into_value(self, path: &mut String) -> Result<Value, ApiError> {
        match self {
            Node::Text(text) => Ok(Value::String(text.into_owned())),
            Node::Object(fields) => {
                let mut map = Map::new();
                let len = path.len();
                for (key, node) in fields {
                    path.push('.');
                    path.push_str(&key);
                    let value = node.into_value(path)?;
                    if map.insert(key.into_owned(), value).is_some() {
                        return Err(malformed(path, "it is given both as a value and with parts"));
                    }
                    path.truncate(len);
                }
                Ok(Value::Object(map))
            }
            Node::List(mut elements) => {
                elements.sort_by_key(|(index, _)| *index);
                let mut values = Vec::with_capacity(elements.len());
                let len = path.len();
                for (expected, (index, node)) in elements.into_iter().enumerate() {
                    let _ = write!(path, ".{expected}");
                    if index > expected {
                        return Err(malformed(
                            path,
                            "it is missing: a list's elements are numbered from 0 without gaps",
                        ));
                    }
                    if index < expected {
                        return Err(malformed(path, "it is given both as a value and with parts"));
                    }
                    values.push(node.into_value(path)?);
                    path.truncate(len);
                }
                Ok(Value::Array(values))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(result: Result<Params, ApiError>) -> (String, String) {
        let error = result.err().expect("an error");
        (error.code.into_owned(), error.message)
    }

    #[test]
    fn json_numbers_keep_their_text_and_repeated_keys_are_named() {
        let mut params = json(br#"{"A": 0.10, "B": [1, {"C": 1e-5}]}"#).unwrap();
        assert_eq!(params.decimal("A").unwrap().unwrap().to_string(), "0.10");
        let (code, message) = error(json(br#"{"A": 1, "B": 2, "A": 3}"#));
        assert_eq!(code, "InvalidParameter");
        assert_eq!(message, "`A` is given more than once: a request names each parameter once");
        let (_, message) = error(json(br#"{"Purchases": [{"Amount": 1}, {"Amount": 1, "Amount": 2}]}"#));
        assert!(message.starts_with("`Purchases.1.Amount` is given more than once"), "{message}");
        // Not a repeat: the same key in two objects.
        assert!(json(br#"{"A": {"X": 1}, "B": {"X": 1}}"#).is_ok());
        let (_, message) = error(json(b"{\"A\": 1,"));
        assert!(message.starts_with("the request body is not valid JSON: "), "{message}");
    }

    #[test]
    fn flattened_names_and_values() {
        let raw = b"B.1=y&B.0=x&A=%E2%82%AC+1&C.0.D=1&C.0.E=2&C.1.D=3&Empty=&Bare";
        let params = FlatParams::parse(raw).unwrap();
        let names: Vec<&str> = params.pairs().iter().map(|(name, _)| name.as_ref()).collect();
        assert_eq!(names, ["A", "B.0", "B.1", "Bare", "C.0.D", "C.0.E", "C.1.D", "Empty"]);
        assert_eq!(params.get("A"), Some("\u{20ac} 1"));
        let tree = params.into_params().unwrap().into_value();
        assert_eq!(
            tree,
            serde_json::json!({
                "A": "\u{20ac} 1", "B": ["x", "y"], "Bare": "", "Empty": "",
                "C": [{"D": "1", "E": "2"}, {"D": "3"}]
            })
        );
    }

    #[test]
    fn lists_of_more_than_ten_come_in_number_order() {
        let raw: Vec<String> = (0..12).map(|index| format!("L.{index}={index}")).collect();
        let tree = flattened(raw.join("&").as_bytes()).unwrap().into_value();
        let expected: Vec<String> = (0..12).map(|index| index.to_string()).collect();
        assert_eq!(tree, serde_json::json!({ "L": expected }));
    }

    #[test]
    fn bad_flattened_names_are_named() {
        let cases: [(&[u8], &str); 12] = [
            (b"A=1&A=2", "`A` is given more than once"),
            (b"L.0=1&L.0=2", "`L.0` is given more than once"),
            (b"L.0=1&L.2=3", "`L.1` is not a parameter name this API reads: it is missing"),
            (b"L.1=1", "`L.0` is not a parameter name this API reads: it is missing"),
            (b"L.01=1", "`L.01` is not a parameter name this API reads: a list's elements are numbered without leading zeros"),
            (b"A..B=1", "`A..B` is not a parameter name this API reads: it has an empty part"),
            (b".A=1", "`.A` is not a parameter name this API reads: it has an empty part"),
            (b"A.=1", "`A.` is not a parameter name this API reads: it has an empty part"),
            (b"A=1&A.B=2", "`A.B` is not a parameter name this API reads: a part of it is also given as a value"),
            (b"A.B=2&A=1", "`A.B` is not a parameter name this API reads: a part of it is also given as a value"),
            (b"A.0=1&A.B=2", "`A.B` is not a parameter name this API reads: a part of it is given both as a list and as an object"),
            (b"A=%FF", "`A` is not UTF-8 text once percent-decoded"),
        ];
        for (raw, message) in cases {
            let (code, got) = error(flattened(raw));
            assert_eq!(code, "InvalidParameter", "{}", String::from_utf8_lossy(raw));
            assert!(got.starts_with(message), "{}: {got}", String::from_utf8_lossy(raw));
        }
        // A value given where a list continues: `A.0` both a value and an object.
        let (_, got) = error(flattened(b"A.0=1&A.0.B=2"));
        assert!(got.starts_with("`A.0.B` is not a parameter name this API reads"), "{got}");
        let (_, got) = error(flattened(b"A.99999999999999999999999=1"));
        assert!(got.contains("too large"), "{got}");
    }
}
