//! What the benches share: answers as the API would send them, decoded.

use wolkvox_exporter::wolkvox::Report;
use wolkvox_exporter::wolkvox::model::{Decoded, decode};

/// A response as the API would send it: one row per operation and product for each of `days`
/// days (1: every row its own series, the most the exporter can be asked to render).
pub(crate) fn response(rows: usize, days: usize) -> Vec<u8> {
    let products = ["Gamification", "Gamification Premium"];
    let series = rows.div_ceil(days);
    let data: Vec<serde_json::Value> = (0..rows)
        .map(|i| {
            let s = i % series;
            serde_json::json!({
                "operation": format!("operación_{:05}", s / products.len()),
                "description": products[s % products.len()],
                "items": format!("{}", (s * 7 + i / series) % 120),
                "date": format!("2026-11-{:02} 23:59:59", 1 + i / series),
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({"code": 200, "error": null, "msg": "Information found for the current month", "data": data}))
        .unwrap()
}

pub(crate) fn decoded(body: &[u8]) -> Report {
    match decode(body) {
        Ok(Decoded::Answer(report)) => report,
        other => panic!("not a report: {other:?}"),
    }
}
