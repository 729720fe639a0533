//! Tolerant decoding of a billing response, accepting every quirk in `shared/wolkvox-api.md`:
//! `code` as number or string, `error` as null/"null"/"", `data` as array, one object or null,
//! `items` as a (padded) string or a number. Rows that carry no usable number are skipped and
//! counted, never turned into 0.

use std::borrow::Cow;
use std::fmt;

use indexmap::IndexMap;
use jiff::civil::DateTime;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// One usage series after de-duplication: the latest row and the month's highest value.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
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

/// A good answer: its series in the order the response first named them, and what was skipped.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    pub rows: usize,
    pub series: Vec<Series>,
    pub skipped: Vec<(SkipReason, u64)>,
}

/// What a body said, before the HTTP status is taken into account.
#[derive(Debug, PartialEq)]
pub enum Decoded<T = Report> {
    Answer(T),
    /// The body reports an error (`error` set, or a `code` outside 2xx), whatever the HTTP status.
    ApiError {
        code: Option<u16>,
        text: String,
    },
}

/// Decodes a body; `Err` says in one line why it is not a billing response. Rows are read
/// straight from the bytes (labels borrowed where JSON needs no unescaping) and folded into their
/// series as they come, so a 60,000-row answer never exists as a tree of JSON values.
pub fn decode(body: &[u8]) -> Result<Decoded, String> {
    let mut reader = serde_json::Deserializer::from_slice(body);
    let envelope = Envelope::deserialize(&mut reader).and_then(|envelope| reader.end().map(|()| envelope));
    let envelope = envelope.map_err(|e| format!("not a billing response: {e}"))?;
    let code = envelope.code.as_ref().and_then(code_of);
    if let Some(refusal) = api_error(envelope.code.as_ref(), envelope.error.as_ref(), envelope.msg.as_ref()) {
        return Ok(refusal);
    }
    match envelope.data {
        Data::Rows(rows) if rows.count > 0 && rows.skipped[SkipReason::MalformedRow as usize] == rows.count as u64 => {
            Err(format!("none of the {} rows of `data` is an object", rows.count))
        }
        Data::Rows(rows) => Ok(Decoded::Answer(rows.finish())),
        Data::Missing if code.is_some() => Ok(Decoded::Answer(Report::default())),
        Data::Missing => Err("the object has neither `code` nor `data`".to_owned()),
        Data::Invalid(kind) => Err(format!("`data` is {kind}, expected an array of rows")),
    }
}

/// The top-level object. Later duplicates of a key win, as in most JSON readers.
struct Envelope<'de> {
    code: Option<Value>,
    error: Option<Value>,
    msg: Option<Value>,
    data: Data<'de>,
}

enum Data<'de> {
    Missing,
    Rows(Rows<'de>),
    Invalid(&'static str),
}

/// Rows folded per (operation, description): the gauge takes the row with the latest `date`
/// (response order breaks ties and stands in when dates do not parse); `max` is the highest value
/// of all the key's rows.
/// The map keeps the response's order, so the output is as stable as the answer without a sort.
/// Its keys come from the upstream; foldhash's per-process random seed is enough against crafted
/// collisions, at a fraction of SipHash's cost on 60,000 rows.
#[derive(Default)]
struct Rows<'de> {
    count: usize,
    index: IndexMap<(Cow<'de, str>, Cow<'de, str>), Acc, foldhash::fast::RandomState>,
    skipped: [u64; SkipReason::ALL.len()],
}

struct Acc {
    latest: f64,
    date: Option<DateTime>,
    max: f64,
}

impl<'de> Rows<'de> {
    fn add(&mut self, row: Row<'de>) {
        self.count += 1;
        let (key, items, date) = match row {
            Row::Malformed => return self.skipped[SkipReason::MalformedRow as usize] += 1,
            Row::Usage { operation, description, items, date } => ((operation, description), items, date),
        };
        let items = match items {
            Ok(items) => items,
            Err(reason) => return self.skipped[reason as usize] += 1,
        };
        match self.index.get_mut(&key) {
            None => {
                self.index.insert(key, Acc { latest: items, date, max: items });
            }
            Some(acc) => {
                acc.max = acc.max.max(items);
                let older = matches!((date, acc.date), (Some(new), Some(old)) if new < old);
                if !older {
                    acc.latest = items;
                    // An undated row takes over by response order, but the latest known date stays
                    // the bar that older dated rows must pass.
                    acc.date = date.or(acc.date);
                }
            }
        }
    }

    fn finish(self) -> Report {
        // Owned in output order, so the labels lie in memory in the order the renderer reads them.
        let series = self
            .index
            .into_iter()
            .map(|((operation, description), acc)| Series {
                operation: operation.into_owned(),
                description: description.into_owned(),
                latest: acc.latest,
                max: acc.max,
            })
            .collect();
        let skipped = SkipReason::ALL.into_iter().map(|r| (r, self.skipped[r as usize])).filter(|(_, n)| *n > 0).collect();
        Report { rows: self.count, series, skipped }
    }
}

enum Row<'de> {
    Usage { operation: Cow<'de, str>, description: Cow<'de, str>, items: Result<f64, SkipReason>, date: Option<DateTime> },
    Malformed,
}

/// The keys this decoder cares about; the rest are skipped unread.
enum Key {
    Code,
    Error,
    Msg,
    Data,
    Operation,
    Description,
    Items,
    Date,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Key, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
                Ok(match key {
                    "code" => Key::Code,
                    "error" => Key::Error,
                    "msg" => Key::Msg,
                    "data" => Key::Data,
                    "operation" => Key::Operation,
                    "description" => Key::Description,
                    "items" => Key::Items,
                    "date" => Key::Date,
                    _ => Key::Other,
                })
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for Envelope<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Envelope<'de>, D::Error> {
        struct EnvelopeVisitor;
        impl<'de> Visitor<'de> for EnvelopeVisitor {
            type Value = Envelope<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object with code, error, msg and data")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope<'de>, A::Error> {
                let mut envelope = Envelope { code: None, error: None, msg: None, data: Data::Missing };
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::Code => envelope.code = map.next_value::<Scalar>()?.0,
                        Key::Error => envelope.error = map.next_value::<Scalar>()?.0,
                        Key::Msg => envelope.msg = map.next_value::<Scalar>()?.0,
                        Key::Data => envelope.data = map.next_value()?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(envelope)
            }
        }
        deserializer.deserialize_map(EnvelopeVisitor)
    }
}

impl<'de> Deserialize<'de> for Data<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Data<'de>, D::Error> {
        struct DataVisitor;
        impl<'de> Visitor<'de> for DataVisitor {
            type Value = Data<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("rows")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Data<'de>, A::Error> {
                let mut rows = Rows::default();
                while let Some(row) = seq.next_element::<Row<'de>>()? {
                    rows.add(row);
                }
                Ok(Data::Rows(rows))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Data<'de>, A::Error> {
                let mut rows = Rows::default();
                rows.add(row_from_map(map)?);
                Ok(Data::Rows(rows))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Data<'de>, E> {
                Ok(Data::Rows(Rows::default()))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Data<'de>, E> {
                Ok(if text.trim().is_empty() { Data::Rows(Rows::default()) } else { Data::Invalid("a string") })
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Data<'de>, E> {
                Ok(Data::Invalid("a boolean"))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Data<'de>, E> {
                Ok(Data::Invalid("a number"))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Data<'de>, E> {
                Ok(Data::Invalid("a number"))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Data<'de>, E> {
                Ok(Data::Invalid("a number"))
            }
        }
        deserializer.deserialize_any(DataVisitor)
    }
}

fn row_from_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<Row<'de>, A::Error> {
    let (mut operation, mut description) = (Cow::Borrowed(""), Cow::Borrowed(""));
    let (mut items, mut date) = (Err(SkipReason::BlankItems), None);
    while let Some(key) = map.next_key::<Key>()? {
        match key {
            Key::Operation => operation = map.next_value::<Label<'de>>()?.0,
            Key::Description => description = map.next_value::<Label<'de>>()?.0,
            Key::Items => items = map.next_value::<Items>()?.0,
            Key::Date => date = parse_date(&map.next_value::<Label<'de>>()?.0),
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
    }
    Ok(Row::Usage { operation, description, items, date })
}

impl<'de> Deserialize<'de> for Row<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Row<'de>, D::Error> {
        struct RowVisitor;
        impl<'de> Visitor<'de> for RowVisitor {
            type Value = Row<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a row")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Row<'de>, A::Error> {
                row_from_map(map)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Row<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Row::Malformed)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Row<'de>, E> {
                Ok(Row::Malformed)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Row<'de>, E> {
                Ok(Row::Malformed)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Row<'de>, E> {
                Ok(Row::Malformed)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Row<'de>, E> {
                Ok(Row::Malformed)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Row<'de>, E> {
                Ok(Row::Malformed)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Row<'de>, E> {
                Ok(Row::Malformed)
            }
        }
        deserializer.deserialize_any(RowVisitor)
    }
}

/// A label value: strings as they are (borrowed when no unescaping was needed), numbers and
/// booleans spelled out, anything else empty.
struct Label<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Label<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Label<'de>, D::Error> {
        struct LabelVisitor;
        impl<'de> Visitor<'de> for LabelVisitor {
            type Value = Label<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a label value")
            }
            fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Label<'de>, E> {
                Ok(Label(Cow::Borrowed(text)))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Label<'de>, E> {
                Ok(Label(Cow::Owned(text.to_owned())))
            }
            fn visit_bool<E: de::Error>(self, value: bool) -> Result<Label<'de>, E> {
                Ok(Label(Cow::Owned(value.to_string())))
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Label<'de>, E> {
                Ok(Label(Cow::Owned(value.to_string())))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Label<'de>, E> {
                Ok(Label(Cow::Owned(value.to_string())))
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Label<'de>, E> {
                Ok(Label(Cow::Owned(value.to_string())))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Label<'de>, E> {
                Ok(Label(Cow::Borrowed("")))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Label<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Label(Cow::Borrowed("")))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Label<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Label(Cow::Borrowed("")))
            }
        }
        deserializer.deserialize_any(LabelVisitor)
    }
}

/// `code`, `error`, `msg`: a string, number or boolean; arrays and objects are skipped unbuilt.
struct Scalar(Option<Value>);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Scalar, D::Error> {
        struct ScalarVisitor;
        impl<'de> Visitor<'de> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a scalar")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Scalar, E> {
                Ok(Scalar(Some(Value::String(text.to_owned()))))
            }
            fn visit_bool<E: de::Error>(self, value: bool) -> Result<Scalar, E> {
                Ok(Scalar(Some(Value::Bool(value))))
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Scalar, E> {
                Ok(Scalar(Some(Value::from(value))))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Scalar, E> {
                Ok(Scalar(Some(Value::from(value))))
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Scalar, E> {
                Ok(Scalar(Some(Value::from(value))))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar(None))
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

/// `items`: a finite number, as a number or a (padded) string; blank or unusable otherwise.
struct Items(Result<f64, SkipReason>);

impl<'de> Deserialize<'de> for Items {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Items, D::Error> {
        struct ItemsVisitor;
        fn finite(value: f64) -> Items {
            Items(if value.is_finite() { Ok(value) } else { Err(SkipReason::InvalidItems) })
        }
        impl<'de> Visitor<'de> for ItemsVisitor {
            type Value = Items;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a count")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Items, E> {
                let text = text.trim();
                if text.is_empty() {
                    return Ok(Items(Err(SkipReason::BlankItems)));
                }
                Ok(text.parse::<f64>().map_or(Items(Err(SkipReason::InvalidItems)), finite))
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Items, E> {
                Ok(finite(value as f64))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Items, E> {
                Ok(finite(value as f64))
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Items, E> {
                Ok(finite(value))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Items, E> {
                Ok(Items(Err(SkipReason::BlankItems)))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Items, E> {
                Ok(Items(Err(SkipReason::InvalidItems)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Items, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Items(Err(SkipReason::InvalidItems)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Items, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Items(Err(SkipReason::InvalidItems)))
            }
        }
        deserializer.deserialize_any(ItemsVisitor)
    }
}

/// The error an envelope reports (`error` set, or a `code` outside 2xx), if any.
pub(super) fn api_error<T>(code: Option<&Value>, error: Option<&Value>, msg: Option<&Value>) -> Option<Decoded<T>> {
    let code = code.and_then(code_of);
    let error = error.and_then(text_of).filter(|e| !e.eq_ignore_ascii_case("null"));
    if error.is_none() && code.is_none_or(|c| (200..300).contains(&c)) {
        return None;
    }
    let msg = msg.and_then(text_of).unwrap_or_default();
    let text = [error.unwrap_or_default(), msg].join(" ").trim().to_owned();
    Some(Decoded::ApiError { code, text })
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
    let text = text.trim();
    parse_usual_date(text.as_bytes()).or_else(|| parse_other_date(text))
}

/// `YYYY-mm-dd HH:ii:ss`, what the API sends on every row, read by hand: `strptime` costs
/// microseconds, and a large answer has 60,000 dates. Also `/` between the date's fields, `T`
/// before the time, or no time at all.
fn parse_usual_date(text: &[u8]) -> Option<DateTime> {
    let number = |at: usize, len: usize| {
        text.get(at..at + len)?.iter().try_fold(0i16, |n, &b| b.is_ascii_digit().then(|| n * 10 + i16::from(b - b'0')))
    };
    let separator = *text.get(4)?;
    if !matches!(separator, b'-' | b'/') || text.get(7) != Some(&separator) {
        return None;
    }
    let date = jiff::civil::Date::new(number(0, 4)?, number(5, 2)? as i8, number(8, 2)? as i8).ok()?;
    let time = match text.len() {
        10 => jiff::civil::Time::midnight(),
        19 if matches!(text[10], b' ' | b'T') && text[13] == b':' && text[16] == b':' => {
            jiff::civil::Time::new(number(11, 2)? as i8, number(14, 2)? as i8, number(17, 2)? as i8, 0).ok()?
        }
        _ => return None,
    };
    Some(date.to_datetime(time))
}

fn parse_other_date(text: &str) -> Option<DateTime> {
    const FORMATS: [&str; 2] = ["%Y%m%d%H%M%S", "%Y%m%d"];
    FORMATS.iter().find_map(|format| {
        DateTime::strptime(format, text)
            .ok()
            .or_else(|| jiff::civil::Date::strptime(format, text).ok().map(|d| d.to_datetime(jiff::civil::Time::midnight())))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(body: &str) -> Report {
        match decode(body.as_bytes()) {
            Ok(Decoded::Answer(report)) => report,
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
    fn an_undated_row_does_not_let_an_older_dated_row_win() {
        let r = report(
            r#"{"code": 200, "data": [
                {"operation": "a", "description": "b", "items": "9", "date": "2026-11-03"},
                {"operation": "a", "description": "b", "items": "4"},
                {"operation": "a", "description": "b", "items": "5", "date": "2026-11-01"}]}"#,
        );
        assert_eq!(r.series, vec![series("a", "b", 4.0, 9.0)]);
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
        assert_eq!(parse_date(" 2026/11/03 "), Some(jiff::civil::date(2026, 11, 3).at(0, 0, 0, 0)));
        assert_eq!(parse_date("20261103"), Some(jiff::civil::date(2026, 11, 3).at(0, 0, 0, 0)));
        for wrong in [
            "03/11/26 soon",
            "2026-13-03",
            "2026-02-30 10:00:00",
            "2026-11-03 24:00:00",
            "2026-11-03 10:00",
            "2026-11/03",
            "2026-1a-03",
            "",
        ] {
            assert_eq!(parse_date(wrong), None, "{wrong}");
        }
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
