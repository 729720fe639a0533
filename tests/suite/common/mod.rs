//! Helpers shared by the integration tests: configs, a running exporter against the simulator,
//! scraping and reading samples.
#![allow(dead_code)]

pub(crate) mod certs;
pub(crate) mod grafana;
pub(crate) mod markdown;
pub(crate) mod process;
pub(crate) mod tools;

use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use clap::Parser;
use serde_json::json;
use wolkvox_exporter::Exporter;
use wolkvox_exporter::clock::Clock;
use wolkvox_exporter::config::{Config, ConfigError, Flags, Target};
use wolkvox_exporter::simulator::{Fault, Simulator};
use wolkvox_exporter::wolkvox::Reason;

use tools::{TestDir, temp_dir};

/// Obviously fake; tests check that it never shows up anywhere.
pub(crate) const FAKE_TOKEN: &str = "fake-token-for-tests-0001";

pub(crate) fn config(args: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let flags =
        Flags::try_parse_from(std::iter::once("wolkvox_exporter").chain(args.iter().copied()))
            .expect("flags parse");
    Config::from_flags(&flags, &|name| {
        env.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    })
}

/// A target as the scheduler sees it; `interval` below 5m is allowed.
pub(crate) fn target(server: &str, interval: &str) -> Target {
    let args = [
        "--wolkvox.server",
        server,
        "--wolkvox.poll-interval",
        interval,
        "--wolkvox.allow-fast-poll",
    ];
    config(&args, &[("WOLKVOX_TOKEN", FAKE_TOKEN)]).expect("valid").targets.remove(0)
}

/// An exporter started in this process, with the temporary directories it uses (its state, its
/// configuration file), removed once it is dropped. It derefs to the [`Exporter`].
pub(crate) struct TestExporter {
    exporter: Exporter,
    _dirs: Vec<TestDir>,
}

impl std::ops::Deref for TestExporter {
    type Target = Exporter;
    fn deref(&self) -> &Exporter {
        &self.exporter
    }
}

impl TestExporter {
    /// [`Exporter::stop`]; then the directories go.
    pub(crate) async fn stop(self) {
        self.exporter.stop().await;
    }
}

/// Starts an exporter on 127.0.0.1 polling the simulator as server 0042 every `interval`, on the
/// tests' fixed clock ([`start_time`]).
pub(crate) async fn start_exporter(
    simulator: &Simulator,
    interval: &str,
    extra: &[&str],
) -> TestExporter {
    start_exporter_on(simulator, interval, extra, Clock::starting_at(start_time())).await
}

/// As [`start_exporter`], on `clock`: the real one beside a real server, which keeps the real time.
pub(crate) async fn start_exporter_on(
    simulator: &Simulator,
    interval: &str,
    extra: &[&str],
    clock: Clock,
) -> TestExporter {
    start_with(
        simulator,
        interval,
        &[&["--wolkvox.server", "0042"], extra].concat(),
        clock,
        Vec::new(),
    )
    .await
}

/// Starts an exporter on 127.0.0.1 from a config file holding `yaml`, polling the simulator every
/// `interval`; targets take their token from `token_env: WOLKVOX_TOKEN`.
pub(crate) async fn start_exporter_from_file(
    simulator: &Simulator,
    yaml: &str,
    interval: &str,
) -> TestExporter {
    start_exporter_from_file_on(simulator, yaml, interval, Clock::starting_at(start_time())).await
}

/// As [`start_exporter_from_file`], on `clock`.
pub(crate) async fn start_exporter_from_file_on(
    simulator: &Simulator,
    yaml: &str,
    interval: &str,
    clock: Clock,
) -> TestExporter {
    let dir = temp_dir("file");
    let path = dir.join("wolkvox.yml");
    std::fs::write(&path, yaml).unwrap();
    start_with(simulator, interval, &["--config.file", path.to_str().unwrap()], clock, vec![dir])
        .await
}

/// The flags every test exporter shares (fast polls of the simulator, a port picked at run time)
/// and `args`, with the fake token in `WOLKVOX_TOKEN`.
async fn start_with(
    simulator: &Simulator,
    interval: &str,
    args: &[&str],
    clock: Clock,
    mut dirs: Vec<TestDir>,
) -> TestExporter {
    let base_url = simulator.base_url();
    let common = [
        "--wolkvox.base-url",
        &base_url,
        "--wolkvox.poll-interval",
        interval,
        "--wolkvox.allow-fast-poll",
        "--web.listen-address",
        "127.0.0.1:0",
    ];
    // A state directory of its own, unless the test names one.
    let storage = temp_dir("state");
    let state = storage.join("state").to_str().unwrap().to_owned();
    let own_storage: &[&str] =
        if args.contains(&"--storage.path") { &[] } else { &["--storage.path", &state] };
    let config =
        config(&[&common[..], own_storage, args].concat(), &[("WOLKVOX_TOKEN", FAKE_TOKEN)])
            .expect("valid config");
    dirs.push(storage);
    TestExporter {
        exporter: Exporter::start_with_clock(config, clock).await.expect("exporter starts"),
        _dirs: dirs,
    }
}

/// The wall time test exporters start at, whatever the real time: 10:00 in Bogota on November 15,
/// so that no day or month ends during a test.
pub(crate) fn start_time() -> jiff::Timestamp {
    "2026-11-15T10:00:00-05:00".parse().unwrap()
}

pub(crate) async fn get(exporter: &Exporter, path: &str) -> (u16, String) {
    let response =
        reqwest::get(format!("http://{}{path}", exporter.addr())).await.expect("exporter answers");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

pub(crate) async fn scrape(exporter: &Exporter) -> String {
    let (status, body) = get(exporter, "/metrics").await;
    assert_eq!(status, 200);
    body
}

/// The value of the sample whose name-and-labels text is exactly `series`, e.g.
/// `wolkvox_up{server="0042",api="gamification"}`.
pub(crate) fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|line| !line.starts_with('#')).find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().expect("a number"))
    })
}

/// All samples of a metric name, as (series text, value).
pub(crate) fn samples(text: &str, name: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|line| {
            line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} "))
        })
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("name and value");
            (series.to_owned(), value.parse().expect("a number"))
        })
        .collect()
}

pub(crate) fn failures(text: &str, reason: &str) -> f64 {
    sample(text, &format!("wolkvox_api_request_failures_total{{server=\"0042\",api=\"gamification\",reason=\"{reason}\"}}")).unwrap_or(0.0)
}

pub(crate) fn up(text: &str) -> Option<f64> {
    sample(text, "wolkvox_up{server=\"0042\",api=\"gamification\"}")
}

/// Polls `check` every 20 ms until it returns Some, or panics after `limit` naming `what`.
pub(crate) async fn wait_for<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What the exporters of this test binary log, at info level and up, from every thread. For tests
/// that must know something happened that shows nowhere else, such as a refused reload.
pub(crate) fn captured_logs() -> Logs {
    global_logs().clone()
}

thread_local! {
    /// Where everything logged on this thread goes besides, at every level: see [`logging_everything`].
    static EVERYTHING: std::cell::RefCell<Option<Logs>> = const { std::cell::RefCell::new(None) };
}

/// The binary's one global log subscriber, installed by the first call (the tests share a process,
/// and a process has one): info and up from every thread into the returned logs, and every level
/// on the threads of [`logging_everything`] into that test's logs. The libraries' `log` records
/// come through it too.
fn global_logs() -> &'static Logs {
    static LOGS: OnceLock<Logs> = OnceLock::new();
    LOGS.get_or_init(|| {
        use tracing_subscriber::filter::{LevelFilter, filter_fn};
        use tracing_subscriber::prelude::*;
        let logs = Logs::default();
        let writer = logs.clone();
        let info = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .with_filter(LevelFilter::INFO);
        let everything = tracing_subscriber::fmt::layer()
            .with_writer(|| EVERYTHING.with(|logs| logs.borrow().clone().unwrap_or_default()))
            .with_filter(filter_fn(|_| EVERYTHING.with(|logs| logs.borrow().is_some())));
        tracing_subscriber::registry()
            .with(info)
            .with(everything)
            .try_init()
            .expect("no other global log subscriber in this test binary");
        logs
    })
}

/// Runs `test` to completion on a runtime of its own, every thread of which (the caller's, and the
/// blocking pool's) logs at every level into `logs`, the libraries' records included: what one
/// test's exporter logs, apart from the other tests running in this process at the same time.
pub(crate) fn logging_everything<F: Future>(logs: &Logs, test: F) -> F::Output {
    global_logs();
    struct Marked;
    impl Drop for Marked {
        fn drop(&mut self) {
            EVERYTHING.with(|marked| *marked.borrow_mut() = None);
        }
    }
    let mark = {
        let logs = logs.clone();
        move || EVERYTHING.with(|marked| *marked.borrow_mut() = Some(logs.clone()))
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_start(mark.clone())
        .on_thread_stop(|| EVERYTHING.with(|marked| *marked.borrow_mut() = None))
        .build()
        .expect("a runtime");
    mark();
    let _marked = Marked;
    runtime.block_on(test)
}

#[derive(Clone, Default)]
pub(crate) struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// The lines that contain every one of `words`.
    pub(crate) fn lines_with(&self, words: &[&str]) -> Vec<String> {
        self.text()
            .lines()
            .filter(|line| words.iter().all(|w| line.contains(w)))
            .map(str::to_owned)
            .collect()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every server has had a successful poll of one of its APIs (`wolkvox_up` 1).
pub(crate) async fn wait_first_success(exporter: &Exporter) {
    wait_for(Duration::from_secs(10), "a first successful poll of every server", || async {
        let text = scrape(exporter).await;
        let mut servers = std::collections::BTreeMap::<String, bool>::new();
        for line in text.lines().filter(|l| l.starts_with("wolkvox_up{")) {
            let server = line
                .split("server=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_default();
            *servers.entry(server.to_owned()).or_default() |= line.ends_with(" 1");
        }
        (!servers.is_empty() && servers.values().all(|&up| up)).then_some(())
    })
    .await;
}

/// Every API of every target polled successfully.
pub(crate) async fn wait_all_up(exporter: &Exporter) {
    wait_for(Duration::from_secs(10), "every API up", || async {
        let text = scrape(exporter).await;
        let up: Vec<f64> = text
            .lines()
            .filter(|l| l.starts_with("wolkvox_up{"))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse().ok())
            .collect();
        (!up.is_empty() && up.iter().all(|&v| v == 1.0)).then_some(())
    })
    .await;
}

/// Rows with a known outcome: ventas 15 (latest of two), soporte 7, one blank row skipped.
pub(crate) fn known_rows() -> Vec<serde_json::Value> {
    vec![
        json!({"operation": "ventas", "description": "Gamification", "items": "12", "date": "2026-11-01 10:00:00"}),
        json!({"operation": "ventas", "description": "Gamification", "items": "15", "date": "2026-11-02 10:00:00"}),
        json!({"operation": "soporte", "description": "Gamification", "items": " 7 ", "date": "2026-11-02 10:00:00"}),
        json!({"operation": "soporte", "description": "Premium", "items": "", "date": "2026-11-02 10:00:00"}),
    ]
}

/// Each fault against an exporter and simulator of its own, all at once: after a good poll, the
/// fault makes `up` 0, is counted under `reason` and no other, and the last good values stay.
pub(crate) async fn check_faults(cases: Vec<(Fault, &'static str)>) {
    let mut running = tokio::task::JoinSet::new();
    for (fault, reason) in cases {
        running.spawn(async move {
            let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
            simulator.set_rows(known_rows());
            // The timeout leaves room for a loaded CI machine; only the slow cases exceed it.
            let extra = ["--wolkvox.timeout", "3s", "--wolkvox.max-response-bytes", "32KiB"];
            let exporter = start_exporter(&simulator, "200ms", &extra).await;
            wait_first_success(&exporter).await;
            let before = scrape(&exporter).await;
            let good = samples(&before, "wolkvox_gamification_licenses");

            // A loaded machine may already have timed out a poll: wait for a failure after the fault.
            simulator.set_fault(Some(fault.clone()));
            let text = wait_for(Duration::from_secs(15), reason, || async {
                let text = scrape(&exporter).await;
                (failures(&text, reason) > failures(&before, reason) && up(&text) == Some(0.0))
                    .then_some(text)
            })
            .await;
            assert_eq!(
                samples(&text, "wolkvox_gamification_licenses"),
                good,
                "{fault:?} lost the last good values"
            );
            let others: Vec<&str> = Reason::ALL
                .iter()
                .map(|r| r.as_str())
                .filter(|r| *r != reason && failures(&text, r) > failures(&before, r))
                .collect();
            assert!(others.is_empty(), "{fault:?} was counted under {others:?} too");
            exporter.stop().await;
        });
    }
    while let Some(result) = running.join_next().await {
        result.expect("fault case passed");
    }
}

/// A directory of the test's own, removed at its end, and the state directory to be made in it
/// (the exporter makes it, 0700); files beside the state go in the first.
pub(crate) fn state_dir(tag: &str) -> (TestDir, std::path::PathBuf) {
    let dir = temp_dir(&format!("restart-{tag}"));
    let state = dir.join("state");
    (dir, state)
}

/// Until `simulator` has had `calls` requests, for at most 15 s of real time.
pub(crate) async fn wait_for_calls(simulator: &Simulator, calls: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while simulator.counts().0 < calls {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} calls arrived",
            simulator.counts().0
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every file and directory below `dir`.
pub(crate) fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flat_map(|entry| {
            let path = entry.unwrap().path();
            let below = if path.is_dir() { walk(&path) } else { Vec::new() };
            std::iter::once(path).chain(below)
        })
        .collect()
}
