//! Tolerant decoding of a billing response, accepting every quirk in `shared/wolkvox-api.md`:
//! `code` as number or string, `error` as null/"null"/"", `data` as array, one object or null,
//! `items` as a (padded) string or a number. Rows that carry no usable number are skipped and
//! counted, never turned into 0.

use std::collections::HashMap;

use jiff::civil::DateTime;
use serde_json::{Map, Value};

/// One usage series after de-duplication: the latest row and the month's highest value.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub operation: String,
    pub description: String,
    pub latest: f64,
    pub max: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SkipReason {
    /// `items` missing, null or blank.
    BlankItems,
    /// `items` present but not a finite number.
    InvalidItems,
    /// A row that is not a JSON object.
    MalformedRow,
}

impl SkipReason {
    pub const ALL: [SkipReason; 3] = [SkipReason::BlankItems, SkipReason::InvalidItems, SkipReason::MalformedRow];

    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::BlankItems => "blank_items",
            SkipReason::InvalidItems => "invalid_items",
            SkipReason::MalformedRow => "malformed_row",
        }
    }
}

/// A good answer: its series sorted by (operation, description), and what was skipped.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    pub rows: usize,
    pub series: Vec<Series>,
    pub skipped: Vec<(SkipReason, u64)>,
}

/// What a body said, before the HTTP status is taken into account.
#[derive(Debug, PartialEq)]
pub enum Decoded {
    Report(Report),
    /// The body reports an error (`error` set, or a `code` outside 2xx), whatever the HTTP status.
    ApiError {
        code: Option<u16>,
        text: String,
    },
}

/// Decodes a body; `Err` says in one line why it is not a billing response.
pub fn decode(body: &[u8]) -> Result<Decoded, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(envelope) = value else {
        return Err(format!("expected a JSON object, got {}", kind(&value)));
    };
    let code = envelope.get("code").and_then(code_of);
    let error = envelope.get("error").and_then(text_of).filter(|e| !e.eq_ignore_ascii_case("null"));
    if error.is_some() || code.is_some_and(|c| !(200..300).contains(&c)) {
        let msg = envelope.get("msg").and_then(text_of).unwrap_or_default();
        let text = [error.unwrap_or_default(), msg].join(" ").trim().to_owned();
        return Ok(Decoded::ApiError { code, text });
    }
    let rows = match envelope.get("data") {
        Some(Value::Array(rows)) => rows.as_slice(),
        Some(row @ Value::Object(_)) => std::slice::from_ref(row),
        Some(Value::Null) => &[],
        Some(Value::String(s)) if s.trim().is_empty() => &[],
        Some(other) => return Err(format!("`data` is {}, expected an array of rows", kind(other))),
        None if code.is_some() => &[],
        None => return Err("the object has neither `code` nor `data`".to_owned()),
    };
    Ok(Decoded::Report(summarize(rows)))
}

/// De-duplicates rows per (operation, description): the gauge takes the row with the latest
/// `date` (response order breaks ties and stands in when dates do not parse); `max` is the
/// highest value of all the key's rows.
fn summarize(rows: &[Value]) -> Report {
    struct Acc {
        latest: f64,
        date: Option<DateTime>,
        max: f64,
    }
    let mut index: HashMap<(String, String), Acc> = HashMap::new();
    let mut skipped: HashMap<SkipReason, u64> = HashMap::new();
    for row in rows {
        let Value::Object(fields) = row else {
            *skipped.entry(SkipReason::MalformedRow).or_default() += 1;
            continue;
        };
        let items = match items_of(fields.get("items")) {
            Ok(items) => items,
            Err(reason) => {
                *skipped.entry(reason).or_default() += 1;
                continue;
            }
        };
        let key = (label_of(fields, "operation"), label_of(fields, "description"));
        let date = fields.get("date").and_then(Value::as_str).and_then(parse_date);
        match index.get_mut(&key) {
            None => {
                index.insert(key, Acc { latest: items, date, max: items });
            }
            Some(acc) => {
                acc.max = acc.max.max(items);
                let older = matches!((date, acc.date), (Some(new), Some(old)) if new < old);
                if !older {
                    acc.latest = items;
                    acc.date = date;
                }
            }
        }
    }
    let mut series: Vec<Series> = index
        .into_iter()
        .map(|((operation, description), acc)| Series { operation, description, latest: acc.latest, max: acc.max })
        .collect();
    series.sort_by(|a, b| (&a.operation, &a.description).cmp(&(&b.operation, &b.description)));
    let mut skipped: Vec<(SkipReason, u64)> = skipped.into_iter().collect();
    skipped.sort();
    Report { rows: rows.len(), series, skipped }
}

fn items_of(value: Option<&Value>) -> Result<f64, SkipReason> {
    let number = match value {
        None | Some(Value::Null) => return Err(SkipReason::BlankItems),
        Some(Value::String(s)) if s.trim().is_empty() => return Err(SkipReason::BlankItems),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        Some(Value::Number(n)) => n.as_f64(),
        Some(_) => None,
    };
    number.filter(|n| n.is_finite()).ok_or(SkipReason::InvalidItems)
}

/// A label value: strings as they are, numbers and booleans spelled out, anything else empty.
fn label_of(fields: &Map<String, Value>, name: &str) -> String {
    match fields.get(name) {
        Some(Value::String(s)) => s.clone(),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
        _ => String::new(),
    }
}

/// `code` as 200 or "200"; anything else is treated as absent.
fn code_of(value: &Value) -> Option<u16> {
    match value {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A non-empty trimmed string.
fn text_of(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(_) | Value::Bool(_) => value.to_string(),
        _ => return None,
    };
    (!text.is_empty()).then_some(text)
}

/// The format of `date` is not documented: accept the usual spellings.
fn parse_date(text: &str) -> Option<DateTime> {
    const FORMATS: [&str; 6] = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y%m%d%H%M%S", "%Y/%m/%d %H:%M:%S", "%Y-%m-%d", "%Y%m%d"];
    let text = text.trim();
    FORMATS.iter().find_map(|format| {
        DateTime::strptime(format, text)
            .ok()
            .or_else(|| jiff::civil::Date::strptime(format, text).ok().map(|d| d.to_datetime(jiff::civil::Time::midnight())))
    })
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(body: &str) -> Report {
        match decode(body.as_bytes()) {
            Ok(Decoded::Report(report)) => report,
            other => panic!("expected a report from {body}, got {other:?}"),
        }
    }

    fn series(operation: &str, description: &str, latest: f64, max: f64) -> Series {
        Series { operation: operation.into(), description: description.into(), latest, max }
    }

    #[test]
    fn documented_example_decodes() {
        let r = report(
            r#"{"code": 200, "error": null, "msg": "Information found for the current month",
                "data": [{"operation": "ventas", "description": "Gamification", "items": "12", "date": "2026-11-02"}]}"#,
        );
        assert_eq!(r.series, vec![series("ventas", "Gamification", 12.0, 12.0)]);
        assert_eq!(r.rows, 1);
        assert!(r.skipped.is_empty());
    }

    #[test]
    fn code_may_be_a_string_and_error_may_be_null_text_or_empty() {
        for envelope in [r#""code": "200", "error": "null""#, r#""code": 200, "error": """#, r#""code": " 200 ""#] {
            let r = report(&format!(r#"{{{envelope}, "data": [{{"operation": "a", "description": "b", "items": 3}}]}}"#));
            assert_eq!(r.series, vec![series("a", "b", 3.0, 3.0)], "{envelope}");
        }
    }

    #[test]
    fn data_may_be_one_object_or_null() {
        let one = report(r#"{"code": 200, "data": {"operation": "a", "description": "b", "items": " 7 "}}"#);
        assert_eq!(one.series, vec![series("a", "b", 7.0, 7.0)]);
        assert_eq!(report(r#"{"code": 200, "error": null, "data": null}"#).series, vec![]);
        assert_eq!(report(r#"{"code": 200, "msg": "no data"}"#).series, vec![]);
    }

    #[test]
    fn blank_and_invalid_items_are_skipped_and_counted_not_zeroed() {
        let r = report(
            r#"{"code": 200, "data": [
                {"operation": "a", "description": "b", "items": ""},
                {"operation": "a", "description": "c", "items": " "},
                {"operation": "a", "description": "d"},
                {"operation": "a", "description": "e", "items": "twelve"},
                {"operation": "a", "description": "f", "items": "1e999"},
                {"operation": "a", "description": "g", "items": true},
                "not a row",
                {"operation": "a", "description": "h", "items": "4.5"}]}"#,
        );
        assert_eq!(r.series, vec![series("a", "h", 4.5, 4.5)]);
        assert_eq!(r.rows, 8);
        assert_eq!(r.skipped, vec![(SkipReason::BlankItems, 3), (SkipReason::InvalidItems, 3), (SkipReason::MalformedRow, 1)]);
    }

    #[test]
    fn latest_date_wins_and_max_keeps_the_highest() {
        let r = report(
            r#"{"code": 200, "data": [
                {"operation": "a", "description": "b", "items": "9", "date": "2026-11-03 10:00:00"},
                {"operation": "a", "description": "b", "items": "20", "date": "2026-11-01 10:00:00"},
                {"operation": "a", "description": "b", "items": "5", "date": "2026-11-02 10:00:00"}]}"#,
        );
        assert_eq!(r.series, vec![series("a", "b", 9.0, 20.0)]);
    }

    #[test]
    fn response_order_decides_when_dates_do_not_parse() {
        let r = report(
            r#"{"code": 200, "data": [
                {"operation": "a", "description": "b", "items": "9", "date": "yesterday"},
                {"operation": "a", "description": "b", "items": "4", "date": "today"}]}"#,
        );
        assert_eq!(r.series, vec![series("a", "b", 4.0, 9.0)]);
    }

    #[test]
    fn date_spellings_are_understood() {
        for text in ["2026-11-03 10:00:00", "2026-11-03T10:00:00", "20261103100000", "2026/11/03 10:00:00"] {
            assert_eq!(parse_date(text), Some(jiff::civil::date(2026, 11, 3).at(10, 0, 0, 0)), "{text}");
        }
        assert_eq!(parse_date("2026-11-03"), Some(jiff::civil::date(2026, 11, 3).at(0, 0, 0, 0)));
        assert_eq!(parse_date("03/11/26 soon"), None);
    }

    #[test]
    fn error_bodies_are_errors_even_with_code_200_or_http_200() {
        let quota = decode(br#"{"code": 403, "error": "FORBIDDEN", "msg": "TOKEN LIMIT EXCEEDED"}"#).unwrap();
        assert_eq!(quota, Decoded::ApiError { code: Some(403), text: "FORBIDDEN TOKEN LIMIT EXCEEDED".into() });
        let error_only = decode(br#"{"code": "200", "error": "SOMETHING", "msg": "went wrong"}"#).unwrap();
        assert_eq!(error_only, Decoded::ApiError { code: Some(200), text: "SOMETHING went wrong".into() });
    }

    #[test]
    fn non_responses_are_decode_errors() {
        for body in ["", "{", "[]", "\"ok\"", "{}", r#"{"code": 200, "data": 5}"#, "<html>502</html>"] {
            assert!(decode(body.as_bytes()).is_err(), "{body:?} should not decode");
        }
        assert!(decode(b"\xff\xfe{}").is_err());
    }

    #[test]
    fn label_values_are_kept_as_sent() {
        let r = report(r#"{"code": 200, "data": [{"operation": "Ventas \"Norte\"\\\n ñ 😀", "description": 42, "items": 1}]}"#);
        assert_eq!(r.series, vec![series("Ventas \"Norte\"\\\n ñ 😀", "42", 1.0, 1.0)]);
    }
}
