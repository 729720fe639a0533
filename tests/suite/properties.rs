//! Property tests: no input can make the decoder panic, its series hold exactly what the rows say
//! (checked against a model of its rules), and any label value survives the trip through the
//! exposition text, as read back by a real parser (Python's prometheus_client).

use crate::common::tools;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{TestCaseError, TestRunner};
use serde_json::{Value, json};
use wolkvox_exporter::clock::Clock;
use wolkvox_exporter::config::Contracts;
use wolkvox_exporter::serve::metrics;
use wolkvox_exporter::serve::target_state::TargetState;
use wolkvox_exporter::wolkvox::Report;
use wolkvox_exporter::wolkvox::model::{Decoded, Series, SkipReason, decode, decode_in};
use wolkvox_exporter::wolkvox::window::Window;

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<f64>()
            .prop_filter_map("finite", |n| serde_json::Number::from_f64(n).map(Value::Number)),
        any::<i64>().prop_map(|n| json!(n)),
        ".*".prop_map(Value::String),
        prop_oneof![Just(" 12 "), Just(""), Just("1e999"), Just("null"), Just("200")]
            .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("code".to_owned()),
                    Just("error".to_owned()),
                    Just("msg".to_owned()),
                    Just("data".to_owned()),
                    Just("items".to_owned()),
                    Just("operation".to_owned()),
                    Just("date".to_owned()),
                    ".*".prop_map(|s| s)
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn arbitrary_json_never_panics_the_decoder(value in json_value()) {
        let _ = decode(value.to_string().as_bytes());
    }

    #[test]
    fn arbitrary_rows_in_a_valid_envelope_never_panic_and_never_invent_zeros(code in json_value(), rows in prop::collection::vec(json_value(), 0..20)) {
        let body = json!({"code": code, "error": null, "data": rows}).to_string();
        if let Ok(Decoded::Answer(report)) = decode(body.as_bytes()) {
            // What the decoder read, read again by serde_json: the same numbers, bit for bit.
            let rows: Vec<Value> = serde_json::from_str::<Value>(&body).unwrap()["data"].as_array().unwrap().clone();
            let usable: Vec<((String, String), f64)> = rows.iter().filter_map(usable_row).collect();
            let skipped: u64 = report.skipped.iter().map(|(_, n)| n).sum();
            prop_assert_eq!(report.rows, rows.len());
            prop_assert_eq!(usable.len() as u64 + skipped, rows.len() as u64, "every row is either used or counted as skipped");
            // One series per key that has a usable row, in the order of the first such row: a key
            // whose rows are all blank or invalid has no series (not a 0).
            let mut keys: Vec<&(String, String)> = Vec::new();
            for (key, _) in &usable {
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
            let got: Vec<(&str, &str)> = report.series.iter().map(|s| (s.operation.as_str(), s.description.as_str())).collect();
            let want: Vec<(&str, &str)> = keys.iter().map(|(o, d)| (o.as_str(), d.as_str())).collect();
            prop_assert_eq!(got, want);
            for series in &report.series {
                let values: Vec<f64> = usable.iter().filter(|((o, d), _)| *o == series.operation && *d == series.description).map(|(_, v)| *v).collect();
                // No value that was not in the input: latest is one of the key's values, max their maximum.
                prop_assert!(values.contains(&series.latest), "latest {} is none of the key's values {:?}", series.latest, values);
                prop_assert_eq!(series.max, values.iter().copied().fold(f64::NEG_INFINITY, f64::max), "max of {:?}", values);
            }
        }
    }

    /// Rows built to collide (three operations, two descriptions), with every spelling of items
    /// and dates the decoder accepts and some it must skip, against a model of the decoder's rules.
    #[test]
    fn rows_fold_into_the_latest_dated_value_and_the_months_max_and_nothing_else(rows in prop::collection::vec(modelled_row(), 0..30)) {
        let body = json!({"code": 200, "error": null, "data": rows.iter().map(|(row, _)| row.clone()).collect::<Vec<_>>()}).to_string();
        let decoded = decode(body.as_bytes());
        if !rows.is_empty() && rows.iter().all(|(_, e)| matches!(e, Modelled::Malformed)) {
            prop_assert!(decoded.is_err(), "no row is an object: {decoded:?}");
            return Ok(());
        }
        let report = match decoded {
            Ok(Decoded::Answer(report)) => report,
            other => return Err(TestCaseError::fail(format!("{body}: {other:?}"))),
        };
        prop_assert_eq!(report.rows, rows.len());

        let count = |f: fn(&Modelled) -> bool| rows.iter().filter(|(_, e)| f(e)).count() as u64;
        let skipped: Vec<(SkipReason, u64)> = [
            (SkipReason::BlankItems, count(|e| matches!(e, Modelled::Usage { items: Items::Blank, .. }))),
            (SkipReason::InvalidItems, count(|e| matches!(e, Modelled::Usage { items: Items::Invalid, .. }))),
            (SkipReason::MalformedRow, count(|e| matches!(e, Modelled::Malformed))),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect();
        prop_assert_eq!(&report.skipped, &skipped);

        // Each key's usable rows, keys in the order of their first usable row.
        let mut keys: Vec<((usize, usize), Vec<Dated>)> = Vec::new();
        for (_, modelled) in &rows {
            if let Modelled::Usage { key, items: Items::Usable(value), when } = modelled {
                match keys.iter_mut().find(|(k, _)| k == key) {
                    Some((_, values)) => values.push((*value, *when)),
                    None => keys.push((*key, vec![(*value, *when)])),
                }
            }
        }
        let expected: Vec<Series> = keys
            .iter()
            .map(|((o, d), values)| Series {
                operation: OPERATIONS[*o].to_owned(),
                description: DESCRIPTIONS[*d].to_owned(),
                latest: latest(values),
                max: values.iter().map(|(v, _)| *v).fold(f64::NEG_INFINITY, f64::max),
                // The latest date of any of the key's rows, whichever row holds the latest value.
                latest_at: values.iter().filter_map(|(_, when)| *when).max().map(|(d, h, m)| jiff::civil::date(2026, 11, d).at(h, m, 0, 0)),
            })
            .collect();
        prop_assert_eq!(&report.series, &expected, "{}", body);

        // Said plainly for keys whose every row is dated: the value of the latest-dated row (the
        // last of them in the response on a tie), whatever the response order.
        for (series, (_, values)) in report.series.iter().zip(&keys) {
            if values.iter().all(|(_, when)| when.is_some()) {
                let newest = values.iter().filter_map(|(_, when)| *when).max();
                let value = values.iter().rev().find(|(_, when)| *when == newest).unwrap().0;
                prop_assert_eq!(series.latest, value);
            }
        }
        // And for keys with no usable row at all: no series, rather than a 0.
        for (o, operation) in OPERATIONS.iter().enumerate() {
            for (d, description) in DESCRIPTIONS.iter().enumerate() {
                if !keys.iter().any(|(key, _)| *key == (o, d)) {
                    prop_assert!(!report.series.iter().any(|s| s.operation == *operation && s.description == *description));
                }
            }
        }
    }

    /// The same answer with its dates spelled day first or month first throughout (some rows
    /// ISO), decoded against the month asked for, folds exactly as when every date is ISO: the
    /// order is settled for the whole answer, even when no row of it is past the 12th.
    #[test]
    fn day_first_and_month_first_answers_fold_as_their_iso_spelling(
        rows in prop::collection::vec((0..OPERATIONS.len(), prop::sample::select(vec![1i8, 3, 5, 11, 12, 13, 30]), prop_oneof![Just(0i8), Just(10), Just(23)], -3i64..40, any::<bool>()), 0..30),
        month_first in any::<bool>(),
    ) {
        let spell = |d: i8, h: i8, iso: bool| match (iso, month_first) {
            (true, _) => format!("2026-11-{d:02} {h:02}:00:00"),
            (false, true) => format!("11/{d:02}/2026 {h:02}:00:00"),
            (false, false) => format!("{d:02}/11/2026 {h:02}:00"),
        };
        let body = |all_iso: bool| {
            let data: Vec<Value> = rows
                .iter()
                .map(|(o, d, h, items, iso)| json!({"operation": OPERATIONS[*o], "description": "Gamification", "items": items, "date": spell(*d, *h, all_iso || *iso)}))
                .collect();
            json!({"code": 200, "error": null, "data": data}).to_string()
        };
        let november = Window::new(jiff::civil::date(2026, 11, 1), jiff::civil::date(2026, 11, 30));
        let (spelled, iso) = (body(false), body(true));
        prop_assert_eq!(decode_in(spelled.as_bytes(), &november), decode(iso.as_bytes()), "{}", spelled);
    }
}

/// The key and value the decoder must take from an arbitrary row, by the rules of
/// src/wolkvox/model.rs: an object whose `items` is a finite number, or a string that is one once
/// trimmed; labels are strings as sent, numbers and booleans spelled out, anything else empty.
fn usable_row(row: &Value) -> Option<((String, String), f64)> {
    let row = row.as_object()?;
    let value = match row.get("items")? {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) if grouped_thousands(s.trim()) => return None,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    let label = |field: &str| match row.get(field) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(|u| u.to_string())
            .or(n.as_i64().map(|i| i.to_string()))
            .unwrap_or_else(|| n.as_f64().unwrap().to_string()),
        _ => String::new(),
    };
    (value.is_finite() && value >= 0.0).then(|| ((label("operation"), label("description")), value))
}

/// `1.000` or `12,500`: one or a thousand, so no usage (the decoder's rule, written again).
fn grouped_thousands(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let groups: Vec<&str> = digits.split(['.', ',']).collect();
    groups.len() > 1
        && (1..=3).contains(&groups[0].len())
        && groups[1..].iter().all(|g| g.len() == 3)
        && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_digit()))
}

const OPERATIONS: [&str; 3] = ["ventas", "soporte", "Ventas \"Norte\"\\ ñ"];
const DESCRIPTIONS: [&str; 2] = ["Gamification", ""];

/// A row's date as (day of November 2026, hour, minute): ordered as the dates are.
type When = (i8, i8, i8);

/// A usable row's value and date, if it has one that parses.
type Dated = (f64, Option<When>);

#[derive(Clone, Debug)]
enum Items {
    Usable(f64),
    Blank,
    Invalid,
}

/// What a generated row is, for the model.
#[derive(Clone, Debug)]
enum Modelled {
    Usage { key: (usize, usize), items: Items, when: Option<When> },
    Malformed,
}

fn usable_if_counted(value: f64) -> Items {
    if value >= 0.0 { Items::Usable(value) } else { Items::Invalid }
}

fn modelled_items() -> impl Strategy<Value = (Option<Value>, Items)> {
    prop_oneof![
        // A negative count is no usage.
        3 => (-3i64..40).prop_map(|n| (Some(json!(n)), usable_if_counted(n as f64))),
        // Quarters: exact in binary and in decimal, so the text means exactly this value.
        2 => (-12i64..160).prop_map(|q| (Some(json!(q as f64 / 4.0)), usable_if_counted(q as f64 / 4.0))),
        2 => (-3i64..40, 0usize..3, 0usize..3)
            .prop_map(|(n, l, r)| (Some(json!(format!("{}{n}{}", " ".repeat(l), " ".repeat(r)))), usable_if_counted(n as f64))),
        // Grouped thousands: one or a thousand.
        1 => prop_oneof![Just("1.000"), Just("12,500"), Just(" 1.000.000 ")].prop_map(|v| (Some(json!(v)), Items::Invalid)),
        2 => prop_oneof![Just(None), Just(Some(Value::Null)), Just(Some(json!(""))), Just(Some(json!("   ")))].prop_map(|v| (v, Items::Blank)),
        2 => prop_oneof![
            Just(json!("twelve")),
            Just(json!("1e999")),
            Just(json!("NaN")),
            Just(json!("-inf")),
            Just(json!(true)),
            Just(json!([1])),
            Just(json!({"n": 1}))
        ]
        .prop_map(|v| (Some(v), Items::Invalid)),
    ]
}

fn modelled_date() -> impl Strategy<Value = (Option<Value>, Option<When>)> {
    // Few distinct dates, so that ties happen.
    let when =
        (1i8..=3, prop_oneof![Just(0i8), Just(10), Just(23)], prop_oneof![Just(0i8), Just(59)]);
    prop_oneof![
        4 => (when, 0usize..7).prop_map(|((d, h, m), spelling)| {
            let text = match spelling {
                0 => format!("2026-11-{d:02} {h:02}:{m:02}:00"),
                1 => format!("2026-11-{d:02}T{h:02}:{m:02}:00"),
                2 => format!("2026/11/{d:02} {h:02}:{m:02}:00"),
                3 => format!("2026-11-{d:02} {h:02}:{m:02}"),
                4 => format!("2026-11-{d:02}T{h:02}:{m:02}:00.000-05:00"),
                // Day first; read month first it would be a date too (Jan to Mar 11): with no
                // window, the Latin American order wins.
                5 => format!("{d:02}/11/2026 {h:02}:{m:02}:00"),
                _ => format!("202611{d:02}{h:02}{m:02}00"),
            };
            (Some(json!(text)), Some((d, h, m)))
        }),
        1 => (1i8..=3).prop_map(|d| (Some(json!(format!(" 2026-11-{d:02} "))), Some((d, 0, 0)))),
        2 => prop_oneof![
            Just(None),
            Just(Some(Value::Null)),
            Just(Some(json!("yesterday"))),
            Just(Some(json!("2026-02-30 10:00:00"))),
            Just(Some(json!("31/02/2026"))),
            Just(Some(json!("2026-11-03 10")))
        ]
        .prop_map(|v| (v, None)),
    ]
}

fn modelled_row() -> impl Strategy<Value = (Value, Modelled)> {
    prop_oneof![
        8 => (0..OPERATIONS.len(), 0..DESCRIPTIONS.len(), modelled_items(), modelled_date()).prop_map(|(o, d, (items, kind), (date, when))| {
            let mut row = serde_json::Map::new();
            row.insert("operation".into(), json!(OPERATIONS[o]));
            row.insert("description".into(), json!(DESCRIPTIONS[d]));
            if let Some(items) = items {
                row.insert("items".into(), items);
            }
            if let Some(date) = date {
                row.insert("date".into(), date);
            }
            (Value::Object(row), Modelled::Usage { key: (o, d), items: kind, when })
        }),
        1 => prop_oneof![Just(json!("not a row")), Just(json!(7)), Just(Value::Null), Just(json!([1, 2]))].prop_map(|v| (v, Modelled::Malformed)),
    ]
}

/// The decoder's rule for the gauge: the latest date wins, response order breaks ties and stands
/// in for dates that do not parse. So the value is that of the last row that no earlier row of the
/// key outdates (an undated row is outdated by nothing; an older dated row never takes over).
fn latest(values: &[Dated]) -> f64 {
    let not_outdated = |k: usize| {
        values[k].1.is_none_or(|when| {
            values[..k].iter().all(|(_, earlier)| earlier.is_none_or(|e| e <= when))
        })
    };
    let k = (0..values.len())
        .rev()
        .find(|&k| not_outdated(k))
        .expect("the first row is never outdated");
    values[k].0
}

fn state(series: Vec<Series>, now: jiff::Timestamp) -> TargetState {
    TargetState::after_one_success(Report { rows: series.len(), series, skipped: vec![] }, now)
}

const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    if family.name == "wolkvox_gamification_licenses":
        out += [[s.labels["operation"], s.labels["description"], s.value] for s in family.samples]
print(json.dumps(out))
"#;

#[test]
fn arbitrary_label_values_round_trip_through_the_exposition_text() {
    let Some(python) = tools::tool("python3") else { return };
    let (has_client, _) = tools::run_tool(&python, &["-c", "import prometheus_client"], None);
    if !has_client {
        tools::missing("prometheus_client");
        return;
    }
    // Hundreds of arbitrary (any Unicode, quotes, backslashes, newlines) label values in one text.
    let mut runner = TestRunner::deterministic();
    let strategy = (any::<String>(), "(\\PC|[\"\\\\\n{}=,])*");
    let series: Vec<Series> = (0..500)
        .map(|i| {
            let (operation, description) = strategy.new_tree(&mut runner).unwrap().current();
            // The index keeps every series apart and tells the parsed values apart.
            Series {
                operation: format!("{i} {operation}"),
                description,
                latest: i as f64,
                max: i as f64,
                latest_at: None,
            }
        })
        .collect();
    let now = Clock::system().now();
    let text =
        metrics::render(&[state(series.clone(), now)], &[], &Contracts::default(), now, None);
    let (ok, output) = tools::run_tool(&python, &["-c", PARSE], Some(text.as_bytes()));
    assert!(ok, "{output}");
    let parsed: Vec<(String, String, f64)> = serde_json::from_str(output.trim()).unwrap();
    let expected: Vec<(String, String, f64)> =
        series.into_iter().map(|s| (s.operation, s.description, s.latest)).collect();
    let mut parsed = parsed;
    parsed.sort_by(|a, b| a.2.total_cmp(&b.2));
    assert_eq!(parsed.len(), expected.len());
    for (got, want) in parsed.iter().zip(&expected) {
        assert_eq!(got, want);
    }
}
