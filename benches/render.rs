//! What one poll costs the exporter (decoding a billing response, rendering the exposition text,
//! compressing it) and what one scrape costs (the `/metrics` handler called in-process), for
//! responses of 100, 10,000 and 60,000 rows (the API's maximum).
//!
//! cargo bench --bench render

#![allow(missing_docs, reason = "criterion_group! and criterion_main! make undocumented functions")]

use std::hint::black_box;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, header};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use http_body_util::BodyExt;
use jiff::Timestamp;
use tower::ServiceExt;
use wolkvox_exporter::clock::Clock;
use wolkvox_exporter::config::Contracts;
use wolkvox_exporter::serve::gzip::GzipPrefix;
use wolkvox_exporter::serve::store::Store;
use wolkvox_exporter::serve::target_state::TargetState;
use wolkvox_exporter::serve::{metrics, router};
use wolkvox_exporter::wolkvox::Report;

#[path = "common/answers.rs"]
mod answers;
use answers::{decoded, response};

fn state(report: Report) -> TargetState {
    TargetState::after_one_success(report, Timestamp::UNIX_EPOCH)
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("poll");
    group.sample_size(10).measurement_time(Duration::from_secs(5));
    for (name, rows, days) in [
        ("100", 100, 30),
        ("10000", 10_000, 30),
        ("60000", 60_000, 30),
        ("60000-distinct", 60_000, 1),
    ] {
        let body = response(rows, days);
        group.throughput(Throughput::Elements(rows as u64));
        group.bench_with_input(BenchmarkId::new("decode", name), &body, |b, body| {
            b.iter(|| decoded(black_box(body)))
        });
        let states = [state(decoded(&body))];
        group.bench_with_input(BenchmarkId::new("render", name), &states, |b, states| {
            b.iter(|| {
                metrics::render(
                    black_box(states),
                    &[],
                    &Contracts::default(),
                    Timestamp::UNIX_EPOCH,
                    None,
                )
            })
        });
        group.bench_with_input(BenchmarkId::new("decode_render", name), &body, |b, body| {
            b.iter(|| {
                metrics::render(
                    &[state(decoded(black_box(body)))],
                    &[],
                    &Contracts::default(),
                    Timestamp::UNIX_EPOCH,
                    None,
                )
            })
        });
        group.bench_with_input(BenchmarkId::new("decode_render_gzip", name), &body, |b, body| {
            b.iter(|| {
                let text = metrics::render(
                    &[state(decoded(black_box(body)))],
                    &[],
                    &Contracts::default(),
                    Timestamp::UNIX_EPOCH,
                    None,
                );
                GzipPrefix::new(text.as_bytes())
            })
        });
    }
    group.finish();
}

/// One scrape through the router, its body read to the end.
async fn scrape(router: axum::Router, gzip: bool) -> usize {
    let mut request = Request::get("/metrics");
    if gzip {
        request = request.header(header::ACCEPT_ENCODING, "gzip");
    }
    let response = router.oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
    assert!(response.status().is_success());
    // Frame by frame, as a socket would take them: gathering them into one buffer would add a copy
    // that no real scrape makes.
    let mut body = response.into_body();
    let mut bytes = 0;
    while let Some(frame) = body.frame().await {
        bytes += frame.unwrap().data_ref().map_or(0, |data| data.len());
    }
    bytes
}

fn scrapes(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut group = c.benchmark_group("scrape");
    group.sample_size(20).measurement_time(Duration::from_secs(5));
    for (name, rows, days) in [("100", 100, 30), ("10000", 10_000, 1), ("60000", 60_000, 1)] {
        let store = Store::from_states(
            vec![state(decoded(&response(rows, days)))],
            vec![],
            &Contracts::default(),
            Clock::system(),
        );
        let router = router::router(store, "/metrics");
        for (kind, gzip) in [("plain", false), ("gzip", true)] {
            assert!(runtime.block_on(scrape(router.clone(), gzip)) > 0);
            group.bench_function(BenchmarkId::new(kind, name), |b| {
                b.iter(|| runtime.block_on(scrape(router.clone(), gzip)))
            });
        }
    }
    group.finish();
}

criterion_group!(poll, benches, scrapes);
criterion_main!(poll);
