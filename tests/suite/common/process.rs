//! The exporter binary as a real process, the one way the tests run it: [`binary`] for a run to its
//! end, [`Running`] for an exporter that runs beside the test against the simulator (killed when
//! dropped).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use wolkvox_exporter::simulator::Simulator;

use super::FAKE_TOKEN;

/// The binary cargo built for these tests.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_wolkvox_exporter");

/// A command running the binary, with the test's environment and nothing else added.
pub(crate) fn binary() -> Command {
    Command::new(BIN)
}

/// An exporter process; dropped, it is killed (SIGKILL) and waited for.
pub(crate) struct Running {
    pub child: Child,
    pub url: String,
}

impl Running {
    /// Starts the binary polling `simulator` every 5 minutes, its state in `state`.
    pub(crate) fn start(simulator: &Simulator, state: &Path) -> Running {
        Running::start_polling(simulator, state, &["--wolkvox.poll-interval", "5m"])
    }

    /// Starts the binary with the fake token in `WOLKVOX_TOKEN` and `polling` (see [`Running::launch`]).
    pub(crate) fn start_polling(simulator: &Simulator, state: &Path, polling: &[&str]) -> Running {
        let mut exporter = binary();
        exporter.env("WOLKVOX_TOKEN", FAKE_TOKEN);
        Running::launch(exporter, simulator, state, polling)
    }

    /// Starts `exporter` (the binary, or a wrapper that runs it, with the caller's environment)
    /// as server 0042 against `simulator` on a port of its own, its state in `state`, with `args`.
    pub(crate) fn launch(
        mut exporter: Command,
        simulator: &Simulator,
        state: &Path,
        args: &[&str],
    ) -> Running {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = exporter
            .args(["--wolkvox.server", "0042", "--wolkvox.timeout", "30s"])
            .args(args)
            .args([
                "--wolkvox.base-url",
                &simulator.base_url(),
                "--web.listen-address",
                &format!("127.0.0.1:{port}"),
            ])
            .arg("--storage.path")
            .arg(state)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the exporter starts");
        Running { child, url: format!("http://127.0.0.1:{port}") }
    }

    /// A process started by the caller, listening at `address` (host:port).
    pub(crate) fn started(child: Child, address: &str) -> Running {
        Running { child, url: format!("http://{address}") }
    }

    pub(crate) fn port(&self) -> u16 {
        self.url.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// The metrics text, once the exporter answers (within 10 s of start).
    pub(crate) async fn scrape(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(response) = reqwest::get(format!("{}/metrics", self.url)).await {
                return response.text().await.unwrap();
            }
            assert!(Instant::now() < deadline, "the exporter never answered");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends `signal` (`-TERM`, `-KILL`) and waits for the process to end.
    pub(crate) fn signal(&mut self, signal: &str) -> std::process::ExitStatus {
        self.send(signal);
        self.child.wait().unwrap()
    }

    /// Sends `signal` without waiting.
    pub(crate) fn send(&self, signal: &str) {
        let status =
            Command::new("kill").args([signal, &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
