//! A simulated Wolkvox billing API: all 27 billing APIs, with realistic operations whose usage
//! drifts, fault injection, an optional daily call quota per token, and a record of every request
//! and of the concurrency seen per token. It powers `--demo` and the tests; it listens on
//! 127.0.0.1 only.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::config::{self, Config};
use crate::web::{Limits, Web, WebSettings};
use crate::wolkvox::catalogue::{self, Api};

mod faults;

/// The error answers the API documents, with their `code`, `error` and `msg`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocumentedError {
    ApiDoesNotExist,
    ParametersRequired,
    EnterToken,
    TokenLimitExceeded,
    SimultaneousRequests,
    ValidateToken,
}

impl DocumentedError {
    pub fn body(self) -> Value {
        let (code, error, msg) = match self {
            DocumentedError::ApiDoesNotExist => {
                (400, "BAD REQUEST", "THE API YOU WANT TO CONSULT DOES NOT EXIST")
            }
            DocumentedError::ParametersRequired => {
                (400, "BAD REQUEST", "SOME PARAMETERS ARE REQUIRED")
            }
            DocumentedError::EnterToken => (401, "UNAUTHORIZED", "PLEASE ENTER THE WOLKVOX-TOKEN"),
            DocumentedError::TokenLimitExceeded => (403, "FORBIDDEN", "TOKEN LIMIT EXCEEDED"),
            DocumentedError::SimultaneousRequests => {
                (403, "FORBIDDEN", "EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS PER TOKEN (2)")
            }
            DocumentedError::ValidateToken => (403, "FORBIDDEN", "PLEASE VALIDATE TOKEN"),
        };
        json!({"code": code, "error": error, "msg": msg})
    }

    /// The HTTP status the simulator sends with it by default (the real API may send 200).
    pub fn status(self) -> u16 {
        self.body()["code"].as_u64().unwrap_or(500) as u16
    }
}

/// What the next answer (or every answer) does instead of the normal one.
#[derive(Clone, Debug)]
pub enum Fault {
    /// A documented error body with the given HTTP status (200 is allowed: the API does that).
    Documented { error: DocumentedError, http_status: u16 },
    /// Any status with any body.
    Raw { status: u16, body: String },
    /// A status with a `Retry-After` header (seconds) and no body.
    RetryAfter { status: u16, seconds: u64 },
    /// Wait this long, then answer normally.
    Delay(Duration),
    /// HTTP 200 with a body that is not JSON.
    MalformedJson,
    /// HTTP 200 with a normal body cut in half.
    TruncatedJson,
    /// HTTP 200 with a valid body of about this many bytes, with a Content-Length.
    Oversized(usize),
    /// The same, streamed in chunks without a Content-Length.
    OversizedStreamed(usize),
    /// Any status with any bytes (invalid UTF-8 included).
    RawBytes { status: u16, body: Vec<u8> },
    /// A normal answer sent one byte per this much time.
    Trickle(Duration),
    /// HTTP 200 whose body never ends.
    Endless,
    /// `Content-Encoding: gzip` over this many bytes of blanks (a tiny body that inflates hugely).
    GzipBomb(usize),
    /// Half a normal answer, then the connection is reset.
    ResetMidBody,
    /// 302 back to the same address, for ever.
    RedirectLoop,
}

/// What the simulator saw of one request (never the token itself).
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub api: Option<String>,
    pub date_ini: Option<String>,
    pub date_end: Option<String>,
    pub server_header: Option<String>,
    pub had_token: bool,
    /// Answered with an error or an injected fault rather than the normal answer.
    pub faulted: bool,
    /// When it arrived (only the time between two requests means anything).
    pub received_at: Instant,
}

/// The real API refuses more than this many simultaneous requests per token.
const SIMULTANEOUS_LIMIT: usize = 2;

struct Inner {
    /// The wall clock of the simulated API: what "today" and "this month" are.
    clock: Clock,
    accepted_tokens: Vec<String>,
    /// Rows served by every API, unless `fixed_rows_by_api` has rows for it.
    fixed_rows: Option<Vec<Value>>,
    fixed_rows_by_api: HashMap<String, Vec<Value>>,
    drift: HashMap<&'static str, Drift>,
    /// Calls a token may make before it is refused with TOKEN LIMIT EXCEEDED.
    daily_quota: Option<u64>,
    calls_today: HashMap<String, u64>,
    next_faults: VecDeque<Fault>,
    every_fault: Option<Fault>,
    requests: Vec<RecordedRequest>,
    /// Off for long soaks, where a record of every request would be most of the memory.
    recording: bool,
    counted: u64,
    counted_faulted: u64,
    in_flight: HashMap<String, usize>,
    max_in_flight: HashMap<String, usize>,
}

type Shared = Arc<Mutex<Inner>>;

fn lock(shared: &Shared) -> MutexGuard<'_, Inner> {
    shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub struct Simulator {
    shared: Shared,
    addr: SocketAddr,
    tls: bool,
    server: JoinHandle<()>,
}

impl Simulator {
    /// Starts on 127.0.0.1 on a free port, on the system's clock; only the given tokens are accepted.
    pub async fn start(accepted_tokens: &[&str]) -> std::io::Result<Simulator> {
        Simulator::launch(accepted_tokens, None, Clock::system()).await
    }

    /// With `--demo`, the simulator on the exporter's clock, every target pointed at it; None
    /// otherwise.
    pub async fn for_demo(
        config: &mut Config,
        clock: &Clock,
    ) -> std::io::Result<Option<Simulator>> {
        if !config.demo {
            return Ok(None);
        }
        let simulator = Simulator::launch(&[config::DEMO_TOKEN], None, clock.clone()).await?;
        for target in &mut config.targets {
            target.base_url = simulator.base_url();
        }
        Ok(Some(simulator))
    }

    /// The same over HTTPS, with the certificate of a web configuration file (reachable as
    /// `https://localhost:PORT`).
    pub async fn start_tls(
        accepted_tokens: &[&str],
        web_config: &std::path::Path,
    ) -> std::io::Result<Simulator> {
        let settings = WebSettings::load(web_config).map_err(std::io::Error::other)?;
        Simulator::launch(accepted_tokens, Some(settings), Clock::system()).await
    }

    async fn launch(
        accepted_tokens: &[&str],
        tls: Option<WebSettings>,
        clock: Clock,
    ) -> std::io::Result<Simulator> {
        let shared = Arc::new(Mutex::new(Inner {
            clock,
            accepted_tokens: accepted_tokens.iter().map(|t| (*t).to_owned()).collect(),
            fixed_rows: None,
            fixed_rows_by_api: HashMap::new(),
            drift: catalogue::APIS
                .iter()
                .enumerate()
                .map(|(k, api)| (api.name, Drift::new(api, k)))
                .collect(),
            daily_quota: None,
            calls_today: HashMap::new(),
            next_faults: VecDeque::new(),
            every_fault: None,
            requests: Vec::new(),
            recording: true,
            counted: 0,
            counted_faulted: 0,
            in_flight: HashMap::new(),
            max_in_flight: HashMap::new(),
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = Router::new()
            .route("/api/v2/billing.php", get(billing))
            .route("/api/v2/information.php", get(billing))
            .with_state(shared.clone());
        let tls_enabled = tls.is_some();
        let web = Web::new(None, Arc::new(tls.unwrap_or_else(WebSettings::plain)));
        let limits = Limits { max_requests: 0, ..Limits::default() };
        let server = tokio::spawn(crate::web::server::serve(
            listener,
            app,
            web,
            limits,
            std::future::pending(),
        ));
        Ok(Simulator { shared, addr, tls: tls_enabled, server })
    }

    /// The value for `--wolkvox.base-url`.
    pub fn base_url(&self) -> String {
        if self.tls {
            format!("https://localhost:{}", self.addr.port())
        } else {
            format!("http://{}", self.addr)
        }
    }

    /// From now on, only these tokens are accepted (a token rotated on the Wolkvox side).
    pub fn set_accepted_tokens(&self, tokens: &[&str]) {
        lock(&self.shared).accepted_tokens = tokens.iter().map(|t| (*t).to_owned()).collect();
    }

    /// Serve exactly these `data` rows (raw JSON, so any quirk can be sent) instead of drifting
    /// ones, from every API.
    pub fn set_rows(&self, rows: Vec<Value>) {
        lock(&self.shared).fixed_rows = Some(rows);
    }

    /// The same for one API only.
    pub fn set_rows_for(&self, api: &str, rows: Vec<Value>) {
        lock(&self.shared).fixed_rows_by_api.insert(api.to_owned(), rows);
    }

    /// Each token may make this many calls (every call counts, refused ones too) until
    /// [`Simulator::new_day`]; then TOKEN LIMIT EXCEEDED. `None`: no quota.
    pub fn set_daily_quota(&self, quota: Option<u64>) {
        lock(&self.shared).daily_quota = quota;
    }

    /// Midnight for the quota: every token's count starts again.
    pub fn new_day(&self) {
        lock(&self.shared).calls_today.clear();
    }

    /// Calls this token made since the last [`Simulator::new_day`].
    pub fn calls_today(&self, token: &str) -> u64 {
        lock(&self.shared).calls_today.get(token).copied().unwrap_or(0)
    }

    /// The next request gets this fault; queued faults are used in order.
    pub fn push_fault(&self, fault: Fault) {
        lock(&self.shared).next_faults.push_back(fault);
    }

    /// Every request gets this fault until it is cleared with `None`.
    pub fn set_fault(&self, fault: Option<Fault>) {
        lock(&self.shared).every_fault = fault;
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared).requests.clone()
    }

    /// Stop (or resume) keeping a record of each request; the counts go on.
    pub fn set_recording(&self, on: bool) {
        lock(&self.shared).recording = on;
    }

    /// How many requests arrived, and how many of them got an error or a fault instead of the
    /// normal answer (a delayed answer is normal), recorded or not.
    pub fn counts(&self) -> (u64, u64) {
        let inner = lock(&self.shared);
        (inner.counted, inner.counted_faulted)
    }

    /// The most requests ever in flight at once with this token.
    pub fn max_in_flight(&self, token: &str) -> usize {
        lock(&self.shared).max_in_flight.get(token).copied().unwrap_or(0)
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Decrements the in-flight count of a token when the request ends, however it ends.
struct InFlight {
    shared: Shared,
    token: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(count) = lock(&self.shared).in_flight.get_mut(&self.token) {
            *count = count.saturating_sub(1);
        }
    }
}

/// Both endpoints: every billing API, and `information.php?api=token_info`.
async fn billing(
    State(shared): State<Shared>,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let information = uri.path().ends_with("/information.php");
    let token = headers.get("wolkvox-token").and_then(|v| v.to_str().ok()).map(str::to_owned);
    // The guard keeps the request in flight until the answer is returned.
    let Admission { fault, refusal, api, token_info, guard: _guard } =
        admit(&shared, information, token, &query, &headers);
    if let Some(error) = refusal {
        return json_response(error.status(), &error.body());
    }
    if information && fault.is_none() {
        return json_response(
            200,
            &json!({"code": 200, "error": null, "msg": "Token information", "data": token_info}),
        );
    }
    let api = api.map_or("", |api| api.name);
    let window = (
        query.get("date_ini").and_then(|d| civil_date(d)),
        query.get("date_end").and_then(|d| civil_date(d)),
    );
    faults::answer(fault, || rows_for(&shared, api, window)).await
}

/// What the simulator decided about a request, under its lock.
struct Admission {
    fault: Option<Fault>,
    /// The documented error the real API would answer with.
    refusal: Option<DocumentedError>,
    api: Option<&'static Api>,
    /// What `token_info` would answer.
    token_info: Value,
    /// None without a token.
    guard: Option<InFlight>,
}

/// Counts the request (in flight, today's calls, faulted or not), records it, and decides what it
/// gets: a refusal, a fault, or the rows.
fn admit(
    shared: &Shared,
    information: bool,
    token: Option<String>,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Admission {
    let mut inner = lock(shared);
    let guard = token.clone().map(|token| enter(&mut inner, shared, token));
    let calls_today = token.as_ref().map_or(0, |token| count_call(&mut inner, token));
    let api = requested_api(query, information);
    let refusal = refusal(&inner, token.as_ref(), calls_today, api, query);
    let token_info = token_info(&inner, calls_today);
    let fault = inner.next_faults.pop_front().or_else(|| inner.every_fault.clone());
    let faulted = refusal.is_some()
        || fault.as_ref().is_some_and(|f| !matches!(f, Fault::Delay(_) | Fault::Trickle(_)));
    record(&mut inner, query, headers, token.is_some(), faulted);
    Admission { fault, refusal, api, token_info, guard }
}

/// One more request of `token` in flight, and the most seen at once, until the guard drops.
fn enter(inner: &mut Inner, shared: &Shared, token: String) -> InFlight {
    let count = inner.in_flight.entry(token.clone()).or_default();
    *count += 1;
    let now = *count;
    let max = inner.max_in_flight.entry(token.clone()).or_default();
    *max = (*max).max(now);
    InFlight { shared: shared.clone(), token }
}

/// One more call of `token` today: how many it has made, this one included.
fn count_call(inner: &mut Inner, token: &str) -> u64 {
    let count = inner.calls_today.entry(token.to_owned()).or_default();
    *count += 1;
    *count
}

/// The API of `?api=`: a billing API, or `token_info` on the information endpoint.
fn requested_api(query: &HashMap<String, String>, information: bool) -> Option<&'static Api> {
    match query.get("api") {
        Some(name) if information => {
            (name == catalogue::TOKEN_INFO.name).then_some(&catalogue::TOKEN_INFO)
        }
        Some(name) => catalogue::find(name).ok(),
        None => None,
    }
}

/// The documented error the real API answers a request with, checked in its order.
fn refusal(
    inner: &Inner,
    token: Option<&String>,
    calls_today: u64,
    api: Option<&Api>,
    query: &HashMap<String, String>,
) -> Option<DocumentedError> {
    match token {
        None => Some(DocumentedError::EnterToken),
        Some(token) if !inner.accepted_tokens.contains(token) => {
            Some(DocumentedError::ValidateToken)
        }
        Some(_) if inner.daily_quota.is_some_and(|quota| calls_today > quota) => {
            Some(DocumentedError::TokenLimitExceeded)
        }
        Some(token) if inner.in_flight[token] > SIMULTANEOUS_LIMIT => {
            Some(DocumentedError::SimultaneousRequests)
        }
        Some(_) if api.is_none() => Some(DocumentedError::ApiDoesNotExist),
        Some(_) if !valid_date(query.get("date_ini")) || !valid_date(query.get("date_end")) => {
            Some(DocumentedError::ParametersRequired)
        }
        Some(_) => None,
    }
}

/// The `data` of a token_info answer: the quota, the token's calls today, and every token's.
fn token_info(inner: &Inner, calls_today: u64) -> Value {
    json!({
        "token_limit": inner.daily_quota.unwrap_or(1000).to_string(),
        "token_use_today": calls_today.to_string(),
        "all_token_today": inner.calls_today.values().sum::<u64>().to_string(),
        "available_consumption_options": "billing, information",
    })
}

/// Counts the request, and records it when recording is on.
fn record(
    inner: &mut Inner,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    had_token: bool,
    faulted: bool,
) {
    inner.counted += 1;
    inner.counted_faulted += u64::from(faulted);
    if inner.recording {
        inner.requests.push(RecordedRequest {
            api: query.get("api").cloned(),
            date_ini: query.get("date_ini").cloned(),
            date_end: query.get("date_end").cloned(),
            server_header: headers
                .get("wolkvox_server")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            had_token,
            faulted,
            received_at: Instant::now(),
        });
    }
}

/// The rows of `api` for the request's window: rows a test set stand whatever the window;
/// otherwise a past window of gamification gets history.
fn rows_for(
    shared: &Shared,
    api: &str,
    window: (Option<jiff::civil::Date>, Option<jiff::civil::Date>),
) -> Vec<Value> {
    match window {
        (Some(first), Some(last))
            if api == "gamification" && is_past(shared, last) && !has_fixed_rows(shared, api) =>
        {
            past_gamification_rows(first, last)
        }
        _ => rows_now(shared, api),
    }
}

/// Dates are optional; when present they must be `YYYYmmddHHiiss`.
fn valid_date(value: Option<&String>) -> bool {
    value.is_none_or(|v| jiff::civil::DateTime::strptime("%Y%m%d%H%M%S", v).is_ok())
}

/// The day of a `YYYYmmddHHiiss` window bound.
fn civil_date(text: &str) -> Option<jiff::civil::Date> {
    jiff::civil::DateTime::strptime("%Y%m%d%H%M%S", text).ok().map(|at| at.date())
}

/// Before the current month in Bogota: history, which does not drift.
fn is_past(shared: &Shared, last: jiff::civil::Date) -> bool {
    last < in_bogota(&lock(shared).clock).date().first_of_month()
}

/// The simulated API's time of day: Bogota's.
fn in_bogota(clock: &Clock) -> jiff::Zoned {
    clock
        .now()
        .to_zoned(jiff::tz::TimeZone::get("America/Bogota").unwrap_or(jiff::tz::TimeZone::UTC))
}

/// The gamification series of the demo in a past window: one row per series and day, dated at the
/// day's end, with the values of [`past_gamification`].
fn past_gamification_rows(first: jiff::civil::Date, last: jiff::civil::Date) -> Vec<Value> {
    let mut rows = Vec::new();
    let mut day = first;
    while day <= last {
        for (operation, description, value) in past_gamification(day) {
            let date = format!("{} 23:59:59", day.strftime("%Y-%m-%d"));
            rows.push(json!({"operation": operation, "description": description, "items": format!("{value}"), "date": date}));
        }
        day = match day.tomorrow() {
            Ok(next) => next,
            Err(_) => break,
        };
    }
    rows
}

/// What the simulator's past gamification answers hold for `day`: the same every time, different
/// from day to day (tests compute their expectations with it).
pub fn past_gamification(day: jiff::civil::Date) -> Vec<(&'static str, &'static str, f64)> {
    const SERIES: [(&str, &str, f64); 3] = [
        ("ventas_bogota", "Gamification", 48.0),
        ("soporte_cdmx", "Gamification", 31.0),
        ("cobranza_medellín", "Gamification Premium", 5.0),
    ];
    SERIES
        .iter()
        .enumerate()
        .map(|(k, &(operation, description, base))| {
            let wobble =
                ((day.day() as usize * 7 + day.month() as usize * 13 + k * 3) % 11) as f64 - 5.0;
            (operation, description, (base + wobble).max(0.0))
        })
        .collect()
}

fn has_fixed_rows(shared: &Shared, api: &str) -> bool {
    let inner = lock(shared);
    inner.fixed_rows_by_api.contains_key(api) || inner.fixed_rows.is_some()
}

fn rows_now(shared: &Shared, api: &str) -> Vec<Value> {
    let mut inner = lock(shared);
    if let Some(rows) = inner.fixed_rows_by_api.get(api).or(inner.fixed_rows.as_ref()) {
        return rows.clone();
    }
    let now = in_bogota(&inner.clock);
    inner.drift.get_mut(api).map(|drift| drift.rows(&now)).unwrap_or_default()
}

fn envelope(rows: Vec<Value>) -> Value {
    json!({"code": 200, "error": null, "msg": "Information found for the current month", "data": rows})
}

fn json_response(status: u16, body: &Value) -> Response {
    (status_code(status), [(header::CONTENT_TYPE, "application/json")], body.to_string())
        .into_response()
}

fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// Operations and products of a plausible contact center, with usage that wanders.
struct Drift {
    series: Vec<(&'static str, String, f64)>,
}

impl Drift {
    /// Gamification keeps the demo's familiar products; the other APIs get one product named after
    /// what they count ("Chat licenses"), with a scale of its own (`k` is the API's place in the
    /// catalogue).
    fn new(api: &catalogue::Api, k: usize) -> Drift {
        let series = if api.name == "gamification" {
            vec![
                ("ventas_bogota", "Gamification", 48.0),
                ("ventas_bogota", "Gamification Premium", 12.0),
                ("soporte_cdmx", "Gamification", 31.0),
                ("cobranza_medellín", "Gamification", 22.0),
                ("cobranza_medellín", "Gamification Premium", 5.0),
                ("retención_lima", "Gamification", 17.0),
            ]
        } else {
            let scale = [10.0, 40.0, 300.0, 2500.0][k % 4];
            ["ventas_bogota", "soporte_cdmx", "cobranza_medellín"]
                .into_iter()
                .enumerate()
                .map(|(i, operation)| {
                    (
                        operation,
                        api.counts.split(" (").next().unwrap_or(api.name),
                        scale * (1.0 + i as f64) / 2.0,
                    )
                })
                .collect()
        };
        Drift {
            series: series
                .into_iter()
                .map(|(operation, description, value)| (operation, description.to_owned(), value))
                .collect(),
        }
    }

    /// One row per series for each day of the month so far (past days settled, today drifting).
    fn rows(&mut self, now: &jiff::Zoned) -> Vec<Value> {
        for (_, _, current) in &mut self.series {
            *current = (*current + fastrand::i32(-2..=2) as f64).max(0.0);
        }
        let today = now.day();
        let mut rows = Vec::with_capacity(self.series.len() * today as usize);
        for day in 1..=today {
            let date = now.date().with().day(day).build().unwrap_or(now.date());
            for (k, (operation, description, current)) in self.series.iter().enumerate() {
                let (items, stamp) = if day == today {
                    (*current, now.strftime("%Y-%m-%d %H:%M:%S").to_string())
                } else {
                    let wobble = ((day as usize * 7 + k * 3) % 9) as f64 - 4.0;
                    (
                        (*current + wobble).max(0.0),
                        format!("{} 23:59:59", date.strftime("%Y-%m-%d")),
                    )
                };
                rows.push(json!({"operation": operation, "description": description, "items": format!("{items}"), "date": stamp}));
            }
        }
        rows
    }
}
