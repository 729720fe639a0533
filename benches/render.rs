//! What one poll costs the exporter: decoding a billing response, rendering the exposition text
//! and compressing it, for responses of 100, 10,000 and 60,000 rows (the API's maximum).
//!
//! cargo bench --bench render

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tokio::time::Instant;
use wolkvox_exporter::gzip::GzipPrefix;
use wolkvox_exporter::metrics;
use wolkvox_exporter::snapshot::TargetState;
use wolkvox_exporter::wolkvox::Report;
use wolkvox_exporter::wolkvox::model::{Decoded, decode};

/// A response as the API would send it: one row per operation and product for each of `days`
/// days (1: every row its own series, the most the exporter can be asked to render).
fn response(rows: usize, days: usize) -> Vec<u8> {
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

fn decoded(body: &[u8]) -> Report {
    match decode(body) {
        Ok(Decoded::Report(report)) => report,
        other => panic!("not a report: {other:?}"),
    }
}

fn state(report: Report) -> TargetState {
    TargetState::after_one_success(report)
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("poll");
    group.sample_size(10).measurement_time(Duration::from_secs(5));
    for (name, rows, days) in [("100", 100, 30), ("10000", 10_000, 30), ("60000", 60_000, 30), ("60000-distinct", 60_000, 1)] {
        let body = response(rows, days);
        group.throughput(Throughput::Elements(rows as u64));
        group.bench_with_input(BenchmarkId::new("decode", name), &body, |b, body| b.iter(|| decoded(black_box(body))));
        let states = [state(decoded(&body))];
        group.bench_with_input(BenchmarkId::new("render", name), &states, |b, states| {
            b.iter(|| metrics::render(black_box(states), Instant::now()))
        });
        group.bench_with_input(BenchmarkId::new("decode_render_gzip", name), &body, |b, body| {
            b.iter(|| {
                let text = metrics::render(&[state(decoded(black_box(body)))], Instant::now());
                GzipPrefix::new(text.as_bytes())
            })
        });
    }
    group.finish();
}

criterion_group!(poll, benches);
criterion_main!(poll);
