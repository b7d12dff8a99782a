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
use serde_json::map::Entry;
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

/// The parameters of a form body or a query string, percent-decoded, in the order they came
/// (until [`FlatParams::sort`]).
pub struct FlatParams<'a> {
    pairs: Vec<Pair<'a>>,
}

impl<'a> FlatParams<'a> {
    /// Splits `a=1&b=2` (`+` is a space, `%XX` a byte). The bytes must be UTF-8 (a client
    /// escapes anything else); a name or value without `%` or `+` is borrowed as it is.
    pub fn parse(raw: &'a [u8]) -> Result<FlatParams<'a>, ApiError> {
        let text =
            std::str::from_utf8(raw).map_err(|error| not_utf8(field_name_at(raw, error.valid_up_to())))?;
        let mut pairs = Vec::with_capacity(raw.iter().filter(|byte| **byte == b'&').count() + 1);
        // Most requests escape nothing: then no name or value needs a look of its own.
        let escaped = raw.iter().any(|byte| matches!(byte, b'%' | b'+'));
        for field in text.split('&').filter(|field| !field.is_empty()) {
            let (name, value) = field.split_once('=').unwrap_or((field, ""));
            if !escaped {
                pairs.push((Cow::Borrowed(name), Cow::Borrowed(value)));
                continue;
            }
            let name = percent_decoded(name).ok_or_else(|| not_utf8(name.as_bytes()))?;
            let value = percent_decoded(value).ok_or_else(|| not_utf8(name.as_bytes()))?;
            pairs.push((name, value));
        }
        Ok(FlatParams { pairs })
    }

    /// Sorts the pairs by name (bytes in order, as signature v1 signs them) and refuses a
    /// name given twice, which would make the order, and so the signature, ambiguous.
    pub fn sort(&mut self) -> Result<(), ApiError> {
        self.pairs.sort_unstable_by(|(a, _), (b, _)| a.as_bytes().cmp(b.as_bytes()));
        match self.pairs.windows(2).find(|two| two[0].0 == two[1].0) {
            Some(twice) => Err(given_twice(&twice[0].0)),
            None => Ok(()),
        }
    }

    /// The pairs, in the order they came or, after [`FlatParams::sort`], by name.
    pub fn pairs(&self) -> &[Pair<'a>] {
        &self.pairs
    }

    /// The value of a top-level name (the first, if it is given twice).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(candidate, _)| candidate == name).map(|(_, value)| value.as_ref())
    }

    /// Removes a top-level name (every time it is given) and answers its value.
    pub fn take(&mut self, name: &str) -> Option<Cow<'a, str>> {
        let index = self.pairs.iter().position(|(candidate, _)| candidate == name)?;
        let (_, value) = self.pairs.remove(index);
        self.pairs.retain(|(candidate, _)| candidate != name);
        Some(value)
    }

    /// The tree the dotted names write, as parameters read as text. The pairs may come in
    /// any order; a name given twice, or malformed, is refused.
    pub fn into_params(self) -> Result<Params, ApiError> {
        let mut tree = Tree { root: Map::new(), current: None, holes: 0, pairs_left: self.pairs.len() };
        for (name, value) in self.pairs {
            tree.insert(&name, value)?;
            tree.pairs_left -= 1;
        }
        if let Some((key, value)) = tree.current.take() {
            tree.root.insert(key, value);
        }
        if tree.holes > 0 {
            let missing = first_hole(&tree.root, Path::Root).expect("a hole is counted");
            return Err(malformed(
                &missing,
                "it is missing: a list's elements are numbered from 0 without gaps",
            ));
        }
        Ok(Params::flattened(tree.root))
    }
}

/// A name or value, percent-decoded; `None` when the bytes it decodes to are not UTF-8.
fn percent_decoded(text: &str) -> Option<Cow<'_, str>> {
    if !text.bytes().any(|byte| matches!(byte, b'%' | b'+')) {
        return Some(Cow::Borrowed(text));
    }
    let spaced: Cow<str> =
        if text.contains('+') { Cow::Owned(text.replace('+', " ")) } else { Cow::Borrowed(text) };
    let bytes: Vec<u8> = percent_encoding::percent_decode_str(&spaced).collect();
    String::from_utf8(bytes).ok().map(Cow::Owned)
}

/// The name of the field that holds `raw[at]`, for an error.
fn field_name_at(raw: &[u8], at: usize) -> &[u8] {
    let start = raw[..at].iter().rposition(|byte| *byte == b'&').map_or(0, |amp| amp + 1);
    let field = &raw[start..];
    let end = field.iter().position(|byte| matches!(byte, b'&' | b'=')).unwrap_or(field.len());
    &field[..end]
}

fn not_utf8(name: impl AsRef<[u8]>) -> ApiError {
    let name = String::from_utf8_lossy(name.as_ref()).into_owned();
    ApiError::new("InvalidParameter", format!("`{name}` is not UTF-8 text once percent-decoded"))
}

/// The tree being built, straight into the [`Value`]s the readers read. A slot not yet
/// given a value holds `null` (which no flattened value is). A list's element may come before
/// the ones numbered below it: those wait as holes, at most as many as there are pairs left to
/// fill them, so that a request cannot make the tree larger than itself.
struct Tree {
    root: Map<String, Value>,
    /// The top-level parameter the last name began with, out of `root` while the names that
    /// follow begin with it too (as the SDKs write a list's or an object's parts together):
    /// they find it without a lookup.
    current: Option<(String, Value)>,
    /// List elements made and not yet given a value.
    holes: usize,
    /// The pairs not yet in the tree, the one being put in included.
    pairs_left: usize,
}

impl Tree {
    /// Puts `value` at `name` (`A.0.B`).
    fn insert(&mut self, name: &str, value: Cow<'_, str>) -> Result<(), ApiError> {
        let mut parts = name.split('.');
        let first = parts.next().unwrap_or_default();
        if first.is_empty() {
            return Err(malformed(name, "it has an empty part"));
        }
        if !matches!(&self.current, Some((key, _)) if key == first) {
            if let Some((key, value)) = self.current.take() {
                self.root.insert(key, value);
            }
            let value = self.root.remove(first).unwrap_or(Value::Null);
            self.current = Some((first.to_owned(), value));
        }
        let mut slot = &mut self.current.as_mut().expect("just set").1;
        // Whether `slot` is a list's element, whose filling fills a hole.
        let mut element = false;
        let mut part = parts.next();
        while let Some(this) = part {
            let index = element_number(name, this)?;
            part = parts.next();
            if slot.is_null() {
                *slot = if index.is_some() { Value::Array(Vec::new()) } else { Value::Object(Map::new()) };
                self.holes -= usize::from(element);
            }
            slot = match (slot, index) {
                (Value::Array(elements), Some(index)) => {
                    element = true;
                    element_slot(elements, index, &mut self.holes, self.pairs_left)
                        .map_err(|reason| malformed(name, reason))?
                }
                // The last part, a field: one look in the object.
                (Value::Object(fields), None) if part.is_none() => {
                    return match fields.entry(this) {
                        Entry::Vacant(vacant) => {
                            vacant.insert(Value::String(value.into_owned()));
                            Ok(())
                        }
                        Entry::Occupied(occupied) if occupied.get().is_string() => Err(given_twice(name)),
                        Entry::Occupied(_) => {
                            Err(malformed(name, "it is given both as a value and with parts"))
                        }
                    };
                }
                (Value::Object(fields), None) => {
                    element = false;
                    if !fields.contains_key(this) {
                        fields.insert(this.to_owned(), Value::Null);
                    }
                    fields.get_mut(this).expect("inserted")
                }
                (Value::String(_), _) => {
                    return Err(malformed(name, "a part of it is also given as a value"))
                }
                _ => return Err(malformed(name, "a part of it is given both as a list and as an object")),
            };
        }
        match slot {
            Value::Null => {
                self.holes -= usize::from(element);
                *slot = Value::String(value.into_owned());
                Ok(())
            }
            Value::String(_) => Err(given_twice(name)),
            _ => Err(malformed(name, "it is given both as a value and with parts")),
        }
    }
}

/// The slot of element `index` (a hole if it is new), with holes before it if it comes
/// early: at most as many holes as `fillers`, the pairs that could still fill them (the one
/// being put in included).
fn element_slot<'v>(
    elements: &'v mut Vec<Value>,
    index: usize,
    holes: &mut usize,
    fillers: usize,
) -> Result<&'v mut Value, &'static str> {
    if index >= elements.len() {
        let new_holes = index + 1 - elements.len();
        if *holes + new_holes > fillers {
            return Err(
                "a list's elements are numbered from 0 without gaps, and this request has too few to reach it",
            );
        }
        *holes += new_holes;
        if new_holes == 1 {
            // The element after the last, as the SDKs write lists.
            elements.push(Value::Null);
        } else {
            elements.resize(index + 1, Value::Null);
        }
    }
    Ok(&mut elements[index])
}

/// The name of the first hole left in a tree, in the order the readers see it.
fn first_hole(map: &Map<String, Value>, path: Path<'_>) -> Option<String> {
    map.iter().find_map(|(key, value)| hole_in(value, Path::Key(&path, key)))
}

fn hole_in(value: &Value, path: Path<'_>) -> Option<String> {
    match value {
        Value::Null => Some(path.name()),
        Value::Object(map) => first_hole(map, path),
        Value::Array(values) => {
            values.iter().enumerate().find_map(|(index, value)| hole_in(value, Path::Index(&path, index)))
        }
        _ => None,
    }
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
        let mut params = FlatParams::parse(raw).unwrap();
        let names =
            |params: &FlatParams| params.pairs().iter().map(|(name, _)| name.to_string()).collect::<Vec<_>>();
        assert_eq!(names(&params), ["B.1", "B.0", "A", "C.0.D", "C.0.E", "C.1.D", "Empty", "Bare"]);
        params.sort().unwrap();
        assert_eq!(names(&params), ["A", "B.0", "B.1", "Bare", "C.0.D", "C.0.E", "C.1.D", "Empty"]);
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
        let cases: [(&[u8], &str); 13] = [
            (b"A=1&A=2", "`A` is given more than once"),
            (b"L.0=1&L.0=2", "`L.0` is given more than once"),
            (b"L.0=1&L.2=3&X=1", "`L.1` is not a parameter name this API reads: it is missing"),
            (b"L.0=1&L.2=3", "`L.2` is not a parameter name this API reads: a list's elements are numbered from 0 without gaps, and this request has too few to reach it"),
            (b"L.1=1", "`L.1` is not a parameter name this API reads: a list's elements are numbered from 0 without gaps, and this request has too few to reach it"),
            (b"L.01=1", "`L.01` is not a parameter name this API reads: a list's elements are numbered without leading zeros"),
            (b"A..B=1", "`A..B` is not a parameter name this API reads: it has an empty part"),
            (b".A=1", "`.A` is not a parameter name this API reads: it has an empty part"),
            (b"A.=1", "`A.` is not a parameter name this API reads: it has an empty part"),
            (b"A=1&A.B=2", "`A.B` is not a parameter name this API reads: a part of it is also given as a value"),
            (b"A.B=2&A=1", "`A` is not a parameter name this API reads: it is given both as a value and with parts"),
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
