//! Soak: 10,000 polls of the simulator at a fast interval, faults mixed in at random, while
//! /metrics is scraped. Reports resident memory, open file descriptors and live tasks at the
//! start and the end, and checks that the counters add up (every call the simulator saw is a
//! request, every fault it served a failure).
//!
//! cargo bench --bench soak            (POLLS=20000 for a longer run)

#![allow(missing_docs, reason = "criterion_group! and criterion_main! make undocumented functions")]

use std::time::{Duration, Instant};

use clap::Parser;
use wolkvox_exporter::config::{Config, Flags};
use wolkvox_exporter::simulator::{DocumentedError, Fault, Simulator};
use wolkvox_exporter::wolkvox::Reason;

const TOKEN: &str = "fake-token-for-soak";

fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

fn random_fault() -> Option<Fault> {
    let documented = |error| Some(Fault::Documented { error, http_status: 403 });
    match fastrand::u8(0..20) {
        0 => documented(DocumentedError::ValidateToken),
        1 => documented(DocumentedError::SimultaneousRequests),
        2 => Some(Fault::Raw { status: 500, body: String::new() }),
        3 => Some(Fault::MalformedJson),
        4 => Some(Fault::TruncatedJson),
        5 => Some(Fault::OversizedStreamed(256 * 1024)),
        6 => Some(Fault::ResetMidBody),
        7 => Some(Fault::Endless),
        8 => Some(Fault::Delay(Duration::from_millis(3))),
        _ => None,
    }
}

struct Sample {
    rss_kib: u64,
    fds: usize,
    tasks: usize,
}

fn sample() -> Sample {
    Sample {
        rss_kib: resident_kib(),
        fds: open_fds(),
        tasks: tokio::runtime::Handle::current().metrics().num_alive_tasks(),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let polls: usize = std::env::var("POLLS").ok().and_then(|p| p.parse().ok()).unwrap_or(10_000);
    let simulator = Simulator::start(&[TOKEN]).await.unwrap();
    let base_url = simulator.base_url();
    let args = [
        "wolkvox_exporter",
        "--wolkvox.server",
        "0042",
        "--wolkvox.base-url",
        &base_url,
        "--wolkvox.poll-interval",
        "100ms",
        "--wolkvox.allow-fast-poll",
        "--wolkvox.timeout",
        "2s",
        "--wolkvox.max-response-bytes",
        "128KiB",
        "--web.listen-address",
        "127.0.0.1:0",
        // The soak measures polling and serving; the state directory's cost is measured apart.
        "--storage.path",
        "",
    ];
    let flags = Flags::try_parse_from(args).unwrap();
    let config =
        Config::from_flags(&flags, &|name| (name == "WOLKVOX_TOKEN").then(|| TOKEN.to_owned()))
            .unwrap();
    // The 100 ms interval is the floor of the policy; the soak needs calls back to back.
    let mut config = config;
    config.targets[0].poll_interval = Duration::from_millis(1);
    let exporter = wolkvox_exporter::Exporter::start(config).await.unwrap();
    let url = format!("http://{}/metrics", exporter.addr());
    simulator.set_recording(false);
    let client = reqwest::Client::new();

    let warm_up = polls / 20;
    while (simulator.counts().0 as usize) < warm_up {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let start = sample();
    let started = Instant::now();
    let mut scrapes = 0u64;
    loop {
        if simulator.counts().0 as usize >= polls {
            break;
        }
        simulator.set_fault(random_fault());
        let body = client.get(&url).send().await.unwrap().text().await.unwrap();
        assert!(body.contains("wolkvox_up"), "a scrape failed mid-soak");
        scrapes += 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    simulator.set_fault(None);
    let elapsed = started.elapsed();
    let store = exporter.store().clone();
    exporter.stop().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let end = sample();

    let state = &store.states()[0];
    let failures: u64 = Reason::ALL.iter().map(|r| state.failures[*r as usize]).sum();
    let (seen, faulted) = simulator.counts();
    println!(
        "soak: {seen} polls in {:.1} s ({:.0} polls/s), {scrapes} scrapes",
        elapsed.as_secs_f64(),
        seen as f64 / elapsed.as_secs_f64()
    );
    println!(
        "resident memory: {} KiB after warm-up, {} KiB at the end ({:+} KiB)",
        start.rss_kib,
        end.rss_kib,
        end.rss_kib as i64 - start.rss_kib as i64
    );
    println!(
        "open file descriptors: {} -> {}; live tasks: {} -> {}",
        start.fds, end.fds, start.tasks, end.tasks
    );
    println!(
        "exporter: {} requests = {} successes + {failures} failures; simulator: {seen} requests, {faulted} faulted",
        state.requests,
        state.requests - failures
    );
    // A call cut short by the stop reached the simulator but was never recorded: at most one.
    assert!(seen - state.requests <= 1, "the exporter lost count of its calls");
    assert!(faulted.abs_diff(failures) <= 1, "the exporter lost count of its failures");
}
