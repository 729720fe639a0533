//! `--demo` as an operator runs it: the real binary and its embedded simulator, both on the system
//! clock.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::process;

/// `--demo` needs nothing but itself; it becomes ready, serves usage, and stops cleanly on SIGTERM.
#[test]
fn demo_runs_becomes_ready_and_stops_on_sigterm() {
    let started = Instant::now();
    let mut child = process::binary()
        .args(["--demo", "--web.listen-address", "127.0.0.1:0"])
        .env_clear()
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let address = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| {
            line.split_whitespace()
                .find_map(|field| field.strip_prefix("address=").map(str::to_owned))
        })
        .expect("the listen address is logged");

    let mut running = process::Running::started(child, &address);

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = http_get(&address, "/metrics").unwrap_or_default();
        if body.contains("wolkvox_gamification_licenses{server=\"0042\"") {
            break;
        }
        assert!(Instant::now() < deadline, "the demo served no usage within 10 s: {body}");
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("demo served usage {:?} after start", started.elapsed());
    assert_eq!(http_status(&address, "/-/ready"), Some(200));

    let status = running.signal("-TERM");
    assert!(status.success(), "exit after SIGTERM: {status:?}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.contains("shutting down")), "{rest:?}");
}

fn http_get(address: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

fn http_status(address: &str, path: &str) -> Option<u16> {
    http_get(address, path)?.split_whitespace().nth(1)?.parse().ok()
}
