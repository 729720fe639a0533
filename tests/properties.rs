//! Property tests: no input can make the decoder panic, and any label value survives the trip
//! through the exposition text, as read back by a real parser (Python's prometheus_client).

#[path = "common/tools.rs"]
mod tools;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::{Value, json};
use tokio::time::Instant;
use wolkvox_exporter::metrics;
use wolkvox_exporter::snapshot::TargetState;
use wolkvox_exporter::wolkvox::Report;
use wolkvox_exporter::wolkvox::model::{Series, decode};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<f64>().prop_filter_map("finite", |n| serde_json::Number::from_f64(n).map(Value::Number)),
        any::<i64>().prop_map(|n| json!(n)),
        ".*".prop_map(Value::String),
        prop_oneof![Just(" 12 "), Just(""), Just("1e999"), Just("null"), Just("200")].prop_map(|s| Value::String(s.to_owned())),
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
        let body = json!({"code": code, "error": null, "data": rows});
        if let Ok(wolkvox_exporter::wolkvox::model::Decoded::Answer(report)) = decode(body.to_string().as_bytes()) {
            let skipped: u64 = report.skipped.iter().map(|(_, n)| n).sum();
            prop_assert!(report.series.len() as u64 + skipped <= report.rows as u64);
            prop_assert!(report.series.iter().all(|s| s.latest.is_finite() && s.max >= s.latest));
        }
    }
}

fn state(series: Vec<Series>) -> TargetState {
    TargetState::after_one_success(Report { rows: series.len(), series, skipped: vec![] })
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
            Series { operation: format!("{i} {operation}"), description, latest: i as f64, max: i as f64 }
        })
        .collect();
    let text = metrics::render(&[state(series.clone())], &[], &[], Instant::now());
    let (ok, output) = tools::run_tool(&python, &["-c", PARSE], Some(text.as_bytes()));
    assert!(ok, "{output}");
    let parsed: Vec<(String, String, f64)> = serde_json::from_str(output.trim()).unwrap();
    let expected: Vec<(String, String, f64)> = series.into_iter().map(|s| (s.operation, s.description, s.latest)).collect();
    let mut parsed = parsed;
    parsed.sort_by(|a, b| a.2.total_cmp(&b.2));
    assert_eq!(parsed.len(), expected.len());
    for (got, want) in parsed.iter().zip(&expected) {
        assert_eq!(got, want);
    }
}
