//! Request parameters: the tree [`super::decode`] makes of a request, read strictly. Each
//! parameter is taken once with its documented type; whatever is left at the end is an
//! unknown parameter.
//!
//! Errors: a missing required parameter is `MissingParameter`, a value of the wrong JSON type
//! `InvalidParameter`, a value of the right type outside its bounds `InvalidParameterValue`,
//! and a parameter the action does not have `UnknownParameter`. `null` counts as absent.
//!
//! Parameters from the flattened encoding (a form body or a query string) are all text: a
//! reader that wants a number or a boolean reads the text as one ([`number_of_text`]; `true`
//! and `false`, also as `True` and `False`, which the Python SDK writes), and a text that is
//! not one is of the wrong type, as a JSON string would be. So a request means the same in
//! every encoding, and each reader is written once.

use rust_decimal::Decimal;
use serde_json::{Map, Number, Value};

use super::errors::ApiError;
use crate::domain::{Money, Month, PurchaseId, Timestamp, Uin, VoucherId};

/// A request's parameters.
pub struct Params {
    map: Map<String, Value>,
    /// For an element of an array of objects, `Array.N`: errors name its fields
    /// `Array.N.Field`.
    prefix: String,
    /// The values came from the flattened encoding: every one is text, read as the type its
    /// reader asks for.
    flattened: bool,
}

impl Params {
    /// Parameters from a JSON body.
    pub fn from_map(map: Map<String, Value>) -> Params {
        Params { map, prefix: String::new(), flattened: false }
    }

    /// Parameters from a form body or a query string: every value a string.
    pub fn flattened(map: Map<String, Value>) -> Params {
        Params { map, prefix: String::new(), flattened: true }
    }

    /// The tree as it was decoded (what is left of it), for tests and benches.
    pub fn into_value(self) -> Value {
        Value::Object(self.map)
    }

    /// Whether the values came from the flattened encoding, as text.
    pub fn is_flattened(&self) -> bool {
        self.flattened
    }

    /// A parameter's name as errors give it.
    fn full(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    fn take(&mut self, name: &str) -> Option<Value> {
        match self.map.remove(name) {
            None | Some(Value::Null) => None,
            Some(value) => Some(value),
        }
    }

    /// A value a reader wants as a number or a boolean: from the flattened encoding, its text
    /// read as one.
    fn take_scalar(&mut self, name: &str) -> Option<Value> {
        let value = self.take(name)?;
        Some(if self.flattened { scalar_of_any(value) } else { value })
    }

    /// Ends reading: every parameter left over is unknown.
    pub fn finish(self) -> Result<(), ApiError> {
        match self.map.keys().min() {
            Some(name) => Err(ApiError::unknown(&self.full(name))),
            None => Ok(()),
        }
    }

    pub fn string(&mut self, name: &str) -> Result<Option<String>, ApiError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(_) => Err(ApiError::wrong_type(&self.full(name), "a string")),
        }
    }

    pub fn required_string(&mut self, name: &str) -> Result<String, ApiError> {
        self.string(name)?.ok_or_else(|| ApiError::missing(&self.full(name)))
    }

    pub fn bool(&mut self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.take_scalar(name) {
            None => Ok(None),
            Some(Value::Bool(value)) => Ok(Some(value)),
            Some(_) => Err(ApiError::wrong_type(&self.full(name), "true or false")),
        }
    }

    pub fn integer(&mut self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.take_scalar(name) {
            None => Ok(None),
            Some(Value::Number(number)) => number
                .as_i64()
                .map(Some)
                .ok_or_else(|| ApiError::wrong_type(&self.full(name), "an integer from -2^63 to 2^63 - 1")),
            Some(_) => Err(ApiError::wrong_type(&self.full(name), "an integer")),
        }
    }

    pub fn required_integer(&mut self, name: &str) -> Result<i64, ApiError> {
        self.integer(name)?.ok_or_else(|| ApiError::missing(&self.full(name)))
    }

    /// An integer in `min ..= max`, or `default` when absent.
    pub fn bounded(&mut self, name: &str, min: i64, max: i64, default: i64) -> Result<i64, ApiError> {
        let value = self.integer(name)?.unwrap_or(default);
        if !(min..=max).contains(&value) {
            return Err(ApiError::value(&self.full(name), format!("{value} is outside {min} to {max}")));
        }
        Ok(value)
    }

    pub fn uin(&mut self, name: &str) -> Result<Option<Uin>, ApiError> {
        match self.take_scalar(name) {
            None => Ok(None),
            Some(value) => uin_value(&self.full(name), &value).map(Some),
        }
    }

    pub fn required_uin(&mut self, name: &str) -> Result<Uin, ApiError> {
        self.uin(name)?.ok_or_else(|| ApiError::missing(&self.full(name)))
    }

    /// An array of at most `max` UINs; a longer one is refused with `code` before anything
    /// is built from it.
    pub fn uins(&mut self, name: &str, max: usize, code: &'static str) -> Result<Option<Vec<Uin>>, ApiError> {
        let flattened = self.flattened;
        self.array(name, max, code, "an array of UINs", |element, value| {
            let value = if flattened { scalar_of_any(value) } else { value };
            uin_value(&element, &value)
        })
    }

    /// An array of at most `max` elements, each read by `read` (given the element's full name,
    /// `Name.index`); a longer one is refused with `code` before anything is read from it, and
    /// anything but an array is refused as not being `what`.
    fn array<T>(
        &mut self,
        name: &str,
        max: usize,
        code: &'static str,
        what: &str,
        mut read: impl FnMut(String, Value) -> Result<T, ApiError>,
    ) -> Result<Option<Vec<T>>, ApiError> {
        let full = self.full(name);
        match self.take(name) {
            None => Ok(None),
            Some(Value::Array(values)) => {
                check_len(&full, values.len(), max, code)?;
                values
                    .into_iter()
                    .enumerate()
                    .map(|(index, value)| read(format!("{full}.{index}"), value))
                    .collect::<Result<_, _>>()
                    .map(Some)
            }
            Some(_) => Err(ApiError::wrong_type(&full, what)),
        }
    }

    pub fn required_uins(
        &mut self,
        name: &str,
        max: usize,
        code: &'static str,
    ) -> Result<Vec<Uin>, ApiError> {
        self.uins(name, max, code)?.ok_or_else(|| ApiError::missing(&self.full(name)))
    }

    /// An amount: a JSON number, exactly as written (at most 8 decimal places).
    pub fn money(&mut self, name: &str) -> Result<Option<Money>, ApiError> {
        match self.take_scalar(name) {
            None => Ok(None),
            Some(Value::Number(number)) => money_of(&self.full(name), &number.to_string()).map(Some),
            Some(_) => Err(ApiError::wrong_type(&self.full(name), "a number")),
        }
    }

    pub fn required_money(&mut self, name: &str) -> Result<Money, ApiError> {
        self.money(name)?.ok_or_else(|| ApiError::missing(&self.full(name)))
    }

    /// A number exactly as written, for values that are not amounts (a coefficient, a
    /// percentage): the action checks its range and decimals.
    pub fn decimal(&mut self, name: &str) -> Result<Option<Decimal>, ApiError> {
        match self.take_scalar(name) {
            None => Ok(None),
            Some(Value::Number(number)) => decimal_of(&self.full(name), &number.to_string()).map(Some),
            Some(_) => Err(ApiError::wrong_type(&self.full(name), "a number")),
        }
    }

    /// A string parameter read by `parse`, whose error is the reason it is invalid.
    fn parsed<T>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ApiError> {
        match self.string(name)? {
            None => Ok(None),
            Some(text) => parse(&text).map(Some).map_err(|reason| ApiError::value(&self.full(name), reason)),
        }
    }

    /// One of a set of names, read by `from_name`; `choices` lists them for the error.
    pub fn choice<T>(
        &mut self,
        name: &str,
        from_name: impl FnOnce(&str) -> Option<T>,
        choices: &str,
    ) -> Result<Option<T>, ApiError> {
        self.parsed(name, |text| from_name(text).ok_or_else(|| format!("{text:?} is not {choices}")))
    }

    /// A time as the API writes them, `YYYY-MM-DD hh:mm:ss` in UTC.
    pub fn time(&mut self, name: &str) -> Result<Option<Timestamp>, ApiError> {
        self.parsed(name, super::parse_time)
    }

    pub fn required_time(&mut self, name: &str) -> Result<Timestamp, ApiError> {
        self.time(name)?.ok_or_else(|| ApiError::missing(&self.full(name)))
    }

    /// A bill month, `YYYY-MM`.
    pub fn month(&mut self, name: &str) -> Result<Option<Month>, ApiError> {
        self.parsed(name, Month::parse)
    }

    pub fn required_month(&mut self, name: &str) -> Result<Month, ApiError> {
        self.month(name)?.ok_or_else(|| ApiError::missing(&self.full(name)))
    }

    /// A voucher id: a positive integer (int64 upstream).
    pub fn voucher_id(&mut self, name: &str) -> Result<Option<VoucherId>, ApiError> {
        match self.take_scalar(name) {
            None => Ok(None),
            Some(value) => {
                positive_id_value(&self.full(name), &value, "voucher id").map(|id| Some(VoucherId(id)))
            }
        }
    }

    pub fn required_voucher_id(&mut self, name: &str) -> Result<VoucherId, ApiError> {
        self.voucher_id(name)?.ok_or_else(|| ApiError::missing(&self.full(name)))
    }

    /// An array of at most `max` strings; a longer one is refused with `code` before
    /// anything is built from it.
    pub fn strings(
        &mut self,
        name: &str,
        max: usize,
        code: &'static str,
    ) -> Result<Option<Vec<String>>, ApiError> {
        self.array(name, max, code, "an array of strings", |element, value| match value {
            Value::String(text) => Ok(text),
            _ => Err(ApiError::wrong_type(&element, "a string")),
        })
    }

    pub fn required_purchase_id(&mut self, name: &str) -> Result<PurchaseId, ApiError> {
        let text = self.required_string(name)?;
        purchase_id_of(&self.full(name), &text)
    }

    /// An array of at most `max` objects, each to be read as parameters of their own; a
    /// longer one is refused with `code` before anything is built from it.
    pub fn objects(
        &mut self,
        name: &str,
        max: usize,
        code: &'static str,
    ) -> Result<Option<Vec<Params>>, ApiError> {
        let flattened = self.flattened;
        self.array(name, max, code, "an array of objects", |element, value| match value {
            Value::Object(map) => Ok(Params { map, prefix: element, flattened }),
            _ => Err(ApiError::wrong_type(&element, "an object")),
        })
    }
}

/// A text read as a number, exactly as JSON writes one (no sign `+`, no leading zero, no
/// spaces), keeping its own digits. The one reading of a number from text, for the readers
/// here and the fast path.
pub fn number_of_text(text: &str) -> Option<Number> {
    text.parse::<Number>().ok()
}

/// A text from the flattened encoding, as the number or boolean it writes if it writes one.
fn scalar_of_text(text: String) -> Value {
    match text.as_str() {
        "true" | "True" => Value::Bool(true),
        "false" | "False" => Value::Bool(false),
        _ => match number_of_text(&text) {
            Some(number) => Value::Number(number),
            None => Value::String(text),
        },
    }
}

fn scalar_of_any(value: Value) -> Value {
    match value {
        Value::String(text) => scalar_of_text(text),
        other => other,
    }
}

fn check_len(name: &str, len: usize, max: usize, code: &'static str) -> Result<(), ApiError> {
    if len > max {
        return Err(ApiError::new(code, format!("`{name}` holds 1 to {max} elements, got {len}")));
    }
    Ok(())
}

fn uin_value(name: &str, value: &Value) -> Result<Uin, ApiError> {
    positive_id_value(name, value, "UIN").map(Uin)
}

/// A UIN: a positive integer. The one check of a UIN's value, for the readers here and the
/// fast path.
pub fn uin_of(name: &str, number: &Number) -> Result<Uin, ApiError> {
    positive_id(name, number, "UIN").map(Uin)
}

fn positive_id_value(name: &str, value: &Value, what: &str) -> Result<u64, ApiError> {
    match value {
        Value::Number(number) => positive_id(name, number, what),
        _ => Err(ApiError::wrong_type(name, &format!("an integer {what}"))),
    }
}

/// A positive integer identifier (`what`: "UIN", "voucher id").
fn positive_id(name: &str, number: &Number, what: &str) -> Result<u64, ApiError> {
    match (number.as_u64(), number.as_i64()) {
        (Some(id), _) if id > 0 => Ok(id),
        (Some(_), _) | (None, Some(_)) => {
            Err(ApiError::value(name, format!("{number} is not a {what} (a positive integer)")))
        }
        (None, None) => Err(ApiError::wrong_type(name, &format!("an integer {what}"))),
    }
}

/// A purchase id, as [`PurchaseId::new`] bounds it. The one check of a purchase id, for the
/// readers here and the fast path.
pub fn purchase_id_of(name: &str, text: &str) -> Result<PurchaseId, ApiError> {
    PurchaseId::new(text).map_err(|error| ApiError::value(name, error))
}

/// An amount from the number's own text, so that `0.1` is exactly 0.1. Exponents (`1e-05`,
/// as Python writes small floats) are accepted. The one reading of an amount, for the
/// readers here and the fast path.
pub fn money_of(name: &str, text: &str) -> Result<Money, ApiError> {
    let parsed = if text.contains(['e', 'E']) {
        let mantissa = text.split(['e', 'E']).next().unwrap_or_default();
        let significant = mantissa.trim_start_matches(['-', '+']).replace('.', "");
        if significant.trim_matches('0').len() > 20 {
            return Err(ApiError::value(name, format!("{text} has more digits than an amount can")));
        }
        Decimal::from_scientific(text)
            .map_err(|error| ApiError::value(name, format!("{text} is not a decimal amount: {error}")))
            .and_then(|decimal| Money::from_decimal(decimal).map_err(|error| ApiError::value(name, error)))
    } else {
        Money::parse(text).map_err(|error| ApiError::value(name, error))
    };
    parsed
}

/// A number's own text as a decimal (exponents accepted), at most 28 significant digits.
fn decimal_of(name: &str, text: &str) -> Result<Decimal, ApiError> {
    let mantissa = text.split(['e', 'E']).next().unwrap_or_default();
    let significant = mantissa.trim_start_matches(['-', '+']).replace('.', "");
    if significant.trim_start_matches('0').len() > 28 {
        return Err(ApiError::value(name, format!("{text} has more digits than a decimal can hold")));
    }
    let parsed = if text.contains(['e', 'E']) {
        Decimal::from_scientific(text)
    } else {
        Decimal::from_str_exact(text)
    };
    parsed.map_err(|error| ApiError::value(name, format!("{text} is not a decimal number: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(json: &str) -> Params {
        super::super::decode::json(json.as_bytes()).unwrap()
    }

    #[test]
    fn bodies() {
        let parse = super::super::decode::json;
        assert!(parse(b"").unwrap().finish().is_ok());
        assert!(parse(b"{}").unwrap().finish().is_ok());
        for (body, code) in
            [("[]", "InvalidParameter"), ("{", "InvalidParameter"), ("12", "InvalidParameter")]
        {
            assert_eq!(parse(body.as_bytes()).err().unwrap().code, code, "{body}");
        }
        let leftover = params(r#"{"B": 1, "A": 2}"#).finish().unwrap_err();
        assert_eq!(
            (leftover.code.as_ref(), leftover.message.as_str()),
            ("UnknownParameter", "`A` is not a parameter of this action")
        );
    }

    #[test]
    fn money_is_exact_and_bounded() {
        let cases = [
            ("0.1", Ok("0.1")),
            ("100", Ok("100")),
            ("-3.25", Ok("-3.25")),
            ("1e-05", Ok("0.00001")),
            ("1E2", Ok("100")),
            ("0.123456789", Err("InvalidParameterValue")),
            ("1000000000000.01", Err("InvalidParameterValue")),
            ("\"12\"", Err("InvalidParameter")),
            ("true", Err("InvalidParameter")),
        ];
        for (json, expected) in cases {
            let mut p = params(&format!(r#"{{"Amount": {json}}}"#));
            let got = p.required_money("Amount").map(|money| money.to_string()).map_err(|error| error.code);
            assert_eq!(got.as_deref().map_err(|code| code.as_ref()), expected, "{json}");
        }
        assert_eq!(params("{}").required_money("Amount").unwrap_err().code, "MissingParameter");
        assert_eq!(params(r#"{"Amount": null}"#).money("Amount").unwrap(), None);
    }

    #[test]
    fn decimals_times_months_vouchers_and_strings() {
        let mut p = params(
            r#"{"C": 0.5, "E": 1e-2, "Bad": "0.5", "Long": 0.12345678901234567890123456789,
                "T": "2026-01-01 00:00:01", "BadT": "2026-01-01", "M": "2026-02", "BadM": "2026-13",
                "V": 12, "V0": 0, "VS": "12", "Codes": ["a", "b"], "Mixed": ["a", 1]}"#,
        );
        assert_eq!(p.decimal("C").unwrap(), Some(Decimal::new(5, 1)));
        assert_eq!(p.decimal("E").unwrap(), Some(Decimal::new(1, 2)));
        assert_eq!(p.decimal("Bad").unwrap_err().code, "InvalidParameter");
        assert_eq!(p.decimal("Long").unwrap_err().code, "InvalidParameterValue");
        assert_eq!(p.decimal("Absent").unwrap(), None);
        assert_eq!(p.required_time("T").unwrap(), Timestamp(1_767_225_601_000));
        let error = p.time("BadT").unwrap_err();
        assert_eq!(
            (error.code.as_ref(), error.message.contains("YYYY-MM-DD hh:mm:ss")),
            ("InvalidParameterValue", true)
        );
        assert_eq!(p.required_time("Absent").unwrap_err().code, "MissingParameter");
        assert_eq!(p.required_month("M").unwrap(), Month::new(2026, 2).unwrap());
        assert_eq!(p.month("BadM").unwrap_err().code, "InvalidParameterValue");
        assert_eq!(p.required_voucher_id("V").unwrap(), VoucherId(12));
        assert_eq!(p.required_voucher_id("V0").unwrap_err().code, "InvalidParameterValue");
        assert_eq!(p.required_voucher_id("VS").unwrap_err().code, "InvalidParameter");
        assert_eq!(p.required_voucher_id("Absent").unwrap_err().code, "MissingParameter");
        assert_eq!(p.strings("Codes", 2, "X").unwrap(), Some(vec!["a".to_owned(), "b".to_owned()]));
        assert_eq!(p.strings("Mixed", 2, "X").unwrap_err().message, "`Mixed.1` must be a string");
        let mut p = params(r#"{"Codes": ["a", "b", "c"]}"#);
        assert_eq!(p.strings("Codes", 2, "InvalidParameterValue").unwrap_err().code, "InvalidParameterValue");
    }

    #[test]
    fn uins_and_integers() {
        let cases = [
            ("12", Ok(12)),
            ("0", Err("InvalidParameterValue")),
            ("-1", Err("InvalidParameterValue")),
            ("1.5", Err("InvalidParameter")),
            ("\"12\"", Err("InvalidParameter")),
            ("18446744073709551615", Ok(u64::MAX)),
        ];
        for (json, expected) in cases {
            let mut p = params(&format!(r#"{{"ClientUin": {json}}}"#));
            let got = p.required_uin("ClientUin").map(|uin| uin.0).map_err(|error| error.code);
            assert_eq!(got.map_err(|code| code.into_owned()), expected.map_err(String::from), "{json}");
        }
        let mut p = params(r#"{"Page": 0, "Limit": 2.5, "List": [1, "x"]}"#);
        assert_eq!(p.bounded("Page", 1, 10, 1).unwrap_err().code, "InvalidParameterValue");
        assert_eq!(p.integer("Limit").unwrap_err().code, "InvalidParameter");
        assert_eq!(p.uins("List", 5, "X").unwrap_err().message, "`List.1` must be an integer UIN");
        let mut p = params(r#"{"List": [1, 2, 3], "Items": [{}, {}]}"#);
        let error = p.uins("List", 2, "InvalidParameterValue.UinList").unwrap_err();
        assert_eq!(
            (error.code.as_ref(), error.message.as_str()),
            ("InvalidParameterValue.UinList", "`List` holds 1 to 2 elements, got 3")
        );
        assert_eq!(
            p.objects("Items", 1, "InvalidParameterValue.Items").err().unwrap().code,
            "InvalidParameterValue.Items"
        );
        assert_eq!(params("{}").bounded("Page", 1, 10, 3).unwrap(), 3);
    }
}
