//! Lanes: one per token, so that a token never has two calls in flight. A lane makes its calls
//! through the driver (which asks admission which job goes next and when, waits, calls, and records
//! the call in the ledger), and takes each outcome to the store. Every rule about when to call lives
//! in `admission`; this file only plans the lanes and runs them.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use jiff::Timestamp;

use crate::calls::admission::{self, JobLedger, Ledger, TokenRules};
use crate::calls::driver::{Called, ExporterDriver, Hold, Observer, RealTime, Stop};
use crate::calls::jobs;
use crate::calls::ledger::{TokenLedger, warn_clock_step};
use crate::clock::{Clock, until};
use crate::config::contracts::Contracts;
use crate::config::{self, Target};
use crate::serve::store::{JobId, Store, StoreBuilder, TokenId};
use crate::serve::target_state::{LastPoll, Success, TargetState, TokenState};
use crate::storage::{Answer, Storage};
use crate::wolkvox::client::{Call, Request};
use crate::wolkvox::window::Window;
use crate::wolkvox::{Api, Client, Failure, Report, TokenInfo, catalogue};

/// Where usage comes from: the Wolkvox client in production, a script in scheduling tests.
pub trait UsageSource: Send + Sync + 'static {
    fn poll(&self, request: &Request<'_>) -> impl Future<Output = Result<Report, Failure>> + Send;
    fn token_info(
        &self,
        request: &Request<'_>,
    ) -> impl Future<Output = Result<TokenInfo, Failure>> + Send;
}

impl UsageSource for Client {
    fn poll(&self, request: &Request<'_>) -> impl Future<Output = Result<Report, Failure>> + Send {
        self.fetch(request)
    }

    fn token_info(
        &self,
        request: &Request<'_>,
    ) -> impl Future<Output = Result<TokenInfo, Failure>> + Send {
        self.fetch_token_info(request)
    }
}

/// The targets that share one token, and their jobs. The token's name and budget are those of its
/// first target (the configuration checked that they agree).
pub struct Lane {
    pub token: TokenId,
    pub targets: Vec<Target>,
    pub jobs: Vec<Job>,
    pub rules: Arc<TokenRules>,
    /// What the token did before a restart (empty without a state directory).
    pub ledger: TokenLedger,
    /// The last good answers, by job key, as the state directory keeps them. Shared with the
    /// write in flight rather than copied for it.
    pub answers: Arc<BTreeMap<String, Answer>>,
    pub storage: Option<Arc<Storage>>,
}

/// One billing API of one target (or the token's `token_info`): what a lane polls.
#[derive(Clone, Copy, Debug)]
pub struct Job {
    /// Where the store keeps its state.
    pub id: JobId,
    /// Its target in [`Lane::targets`].
    pub target: usize,
    pub api: &'static Api,
}

/// One lane per token in configuration order, each target's APIs in order and `token_info` after
/// the APIs of the token's first target; and the store that holds their states. With a state
/// directory, each token starts from what it holds: its ledger, and its last good answers served
/// at once.
pub fn plan(
    targets: &[Target],
    contracts: &Contracts,
    clock: Clock,
    storage: Option<Arc<Storage>>,
) -> (Vec<Lane>, Arc<Store>) {
    let mut store = StoreBuilder::default();
    let now = clock.now();
    let lanes = config::group_by_token(targets)
        .into_iter()
        .map(|members| {
            let targets: Vec<Target> = members.iter().map(|&i| targets[i].clone()).collect();
            let planned = jobs::lane_jobs(&targets);
            let rules = jobs::token_rules(&targets, &planned);
            // The ledger made to hold exactly the configured jobs, and written so, under the
            // token's lock: a backfill may be using it. One that cannot be read now is read again
            // before every decision, and nothing is called until it can be.
            let mut ledger =
                TokenLedger::new(Ledger::default(), &targets[0].token_name, storage.clone());
            let jitter = fastrand::f64();
            let reconciled = ledger.update_blocking(|ledger| {
                let step = admission::undo_clock_step(ledger, &rules, now);
                admission::reconcile(ledger, &rules, now, jitter);
                step
            });
            if let Ok(Some(step)) = reconciled {
                warn_clock_step(&targets[0].token_name, step);
            }
            let mut answers = storage
                .as_ref()
                .map(|s| s.load_answers(&targets[0].token_name))
                .unwrap_or_default();
            answers.retain(|key, _| rules.jobs.iter().any(|job| job.key == *key));

            let token = store.token(TokenState {
                calls_today: ledger.get().calls_on(now, &rules.zone),
                state_saved: ledger.saved(),
                pause: admission::pause(ledger.get(), &rules, now),
                ..TokenState::new(&targets[0])
            });
            let jobs = planned
                .iter()
                .zip(&rules.jobs)
                .map(|(&(target, api), job_rules)| {
                    let state = restored_state(
                        TargetState::new(&targets[target], api),
                        ledger.get().jobs.get(&job_rules.key),
                        answers.get(&job_rules.key),
                        now,
                    );
                    Job { id: store.job(state), target, api }
                })
                .collect();
            Lane {
                token,
                targets,
                jobs,
                rules: Arc::new(rules),
                ledger,
                answers: Arc::new(answers),
                storage: storage.clone(),
            }
        })
        .collect();
    (lanes, store.build(contracts, clock, storage))
}

/// A target as it was before the restart: its last good answer served at once, with its original
/// success time, and `wolkvox_up` from the last poll's outcome.
fn restored_state(
    mut state: TargetState,
    job: Option<&JobLedger>,
    answer: Option<&Answer>,
    now: Timestamp,
) -> TargetState {
    if let Some(answer) = answer {
        // Never in the future: a clock stepped back since would make it look fresh for as long.
        state.last_success =
            Some(Success { report: answer.report.clone(), at: answer.succeeded_at.min(now) });
    }
    if let Some(job) = job
        && let Some(end) = job.last_end
    {
        let failure = job.last_failure.map(|reason| Failure::new(reason, "before the restart"));
        state.last_poll = Some(LastPoll { finished_at: end, duration: Duration::ZERO, failure });
        state.consecutive_failures = job.failures_since_success;
    }
    state
}

/// Polls a lane's jobs one call at a time, through the driver, until `stop` turns true: then
/// between calls at once, or once the call in flight has ended and been recorded (a call cut short
/// would cost a call of the quota for nothing). Each outcome goes to the store, and a success to
/// the answers the state directory keeps.
pub async fn run_lane<S: UsageSource>(
    source: Arc<S>,
    lane: Lane,
    store: Arc<Store>,
    clock: Clock,
    stop: watch::Receiver<bool>,
) {
    let Lane { token, mut targets, jobs, rules, ledger, mut answers, storage } = lane;
    let token_name = targets[0].token_name.clone();
    let mut driver = ExporterDriver::new(rules.clone(), ledger);
    let mut pace = RealTime::new(clock.clone(), Stop::Shutdown(stop));
    let mut observer = Schedule {
        store: store.clone(),
        token,
        jobs: jobs.clone(),
        rules: rules.clone(),
        clock: clock.clone(),
    };
    let mut was_stretched = false;
    loop {
        let targets_now = &mut targets;
        let called = driver.next_call(&mut pace, &mut observer, |job| {
            let Job { target, api, .. } = jobs[job];
            refresh_token(&mut targets_now[target]);
            call(source.as_ref(), &targets_now[target], api, &clock)
        });
        let Some(Called { decision, started, ended, took, outcome }) = called.await else { return };
        let job = jobs[decision.job];
        // One report, shared by the store that serves it and the answers that keep it.
        let (outcome, info) = match outcome {
            Ok((report, info)) => (Ok(Arc::new(report)), info),
            Err(failure) => (Err(failure), None),
        };
        if let (Ok(report), Some(storage)) = (&outcome, &storage) {
            let answer = Answer { succeeded_at: ended, report: report.clone() };
            // The previous write has ended (it is awaited), so this does not copy the map.
            Arc::make_mut(&mut answers).insert(rules.jobs[decision.job].key.clone(), answer);
            save_answers(storage, &token_name, answers.clone()).await;
        }

        let ledger = driver.ledger();
        let calls_today = ledger.get().calls_on(clock.now(), &rules.zone);
        log_stretch(
            &token_name,
            rules.daily_budget,
            calls_today,
            decision.spacing,
            (was_stretched, decision.held_by_budget),
        );
        was_stretched = decision.held_by_budget;
        store.update_token(token, |state| {
            state.calls_today = calls_today;
            state.call_spacing = decision.spacing;
            state.stretched = decision.held_by_budget;
            state.info = info.or(state.info.take());
            state.state_saved = ledger.saved();
        });
        let due = ledger
            .get()
            .jobs
            .get(&rules.jobs[decision.job].key)
            .and_then(|j| j.due)
            .unwrap_or(started);
        log_outcome(&targets[job.target], job.api, &outcome, took, until(clock.now(), due));
        publish_schedule(&store, token, &jobs, ledger.get(), &rules, &clock);
        store.record(job.id, outcome, took, ended);
    }
}

/// What a lane shows while it waits: when each job may call next, on the landing page; and that
/// the state directory cannot be read.
struct Schedule {
    store: Arc<Store>,
    token: TokenId,
    jobs: Vec<Job>,
    rules: Arc<TokenRules>,
    clock: Clock,
}

impl Observer for Schedule {
    fn waiting(
        &mut self,
        ledger: &Ledger,
        _now: Timestamp,
        at: Timestamp,
        hold: Hold,
    ) -> Timestamp {
        match hold {
            Hold::Unreadable => {
                self.store.update_token(self.token, |state| state.state_saved = Some(false));
                self.store.publish();
            }
            Hold::Rules | Hold::ExportersTurn => publish_schedule(
                &self.store,
                self.token,
                &self.jobs,
                ledger,
                &self.rules,
                &self.clock,
            ),
        }
        at
    }

    fn clock_stepped_back(&mut self, now: Timestamp) {
        self.store.clock_stepped_back(now);
    }
}

/// Writes the answers off the async workers (the write ends with an fsync).
async fn save_answers(
    storage: &Arc<Storage>,
    token_name: &str,
    answers: Arc<BTreeMap<String, Answer>>,
) {
    let (storage, token_name) = (storage.clone(), token_name.to_owned());
    let _ = tokio::task::spawn_blocking(move || storage.save_answers(&token_name, &answers)).await;
}

/// One call of a job. `token_info` is recorded like any API (health, failures); its numbers,
/// which belong to the token, come back beside an empty report.
async fn call<S: UsageSource>(
    source: &S,
    target: &Target,
    api: &'static Api,
    clock: &Clock,
) -> Result<(Report, Option<TokenInfo>), Failure> {
    let now = clock.now();
    let window = Window::current_month(&now.to_zoned(target.timezone.clone()));
    let is_token_info = std::ptr::eq(api, &catalogue::TOKEN_INFO);
    let request = Request {
        base_url: &target.base_url,
        server: &target.server,
        call: if is_token_info {
            Call::TokenInfo
        } else {
            Call::Billing { api: api.name, window: &window }
        },
        token: &target.token,
        timeout: target.timeout,
        max_response_bytes: target.max_response_bytes,
        now,
    };
    if is_token_info {
        source.token_info(&request).await.map(|info| (Report::default(), Some(info)))
    } else {
        source.poll(&request).await.map(|report| (report, None))
    }
}

/// Tells the store when each job may call next, for the landing page: its own schedule and the
/// token's (a pause, the budget, the call in flight) together; and the pause that holds the token.
fn publish_schedule(
    store: &Store,
    token: TokenId,
    jobs: &[Job],
    ledger: &Ledger,
    rules: &TokenRules,
    clock: &Clock,
) {
    let now = clock.now();
    let pause = admission::pause(ledger, rules, now);
    store.update_token(token, |state| state.pause = pause);
    for (job, decision) in jobs.iter().zip(admission::schedule(ledger, rules, now)) {
        store.schedule(job.id, decision.at.max(now));
    }
}

/// Logs when the budget starts or stops holding the schedule back.
fn log_stretch(
    name: &str,
    budget: Option<u32>,
    calls_today: u32,
    spacing: Duration,
    (was_stretched, stretched): (bool, bool),
) {
    let budget = budget.unwrap_or(0);
    if stretched && !was_stretched {
        let every = humantime::format_duration(Duration::from_secs(spacing.as_secs())).to_string();
        tracing::info!(
            token_name = name,
            budget,
            calls_today,
            every,
            "the daily call budget stretches the schedule"
        );
    } else if !stretched && was_stretched {
        tracing::info!(
            token_name = name,
            budget,
            calls_today,
            "the schedule fits the daily call budget again"
        );
    }
}

/// Reads the token file again before each poll: a rotated token is used without a restart, and a
/// file that cannot be read (mid-rotation, say) leaves the previous token in use.
fn refresh_token(target: &mut Target) {
    let Some(path) = &target.token_file else { return };
    match config::read_token_file(path) {
        Ok(token) if token != target.token => {
            tracing::info!(server = %target.server, file = %path.display(), "the token file changed: polling with the new token");
            if let Some(warning) = config::readable_by_others(path) {
                tracing::warn!("{warning}");
            }
            target.token = token;
        }
        Ok(_) => {}
        Err(error) => {
            tracing::warn!(server = %target.server, %error, "cannot read the token file; polling with the previous token")
        }
    }
}

fn log_outcome(
    target: &Target,
    api: &Api,
    outcome: &Result<Arc<Report>, Failure>,
    took: Duration,
    wait: Duration,
) {
    let took_ms = took.as_millis() as u64;
    let next_poll_in = humantime::format_duration(Duration::from_secs(wait.as_secs())).to_string();
    match outcome {
        Ok(report) => tracing::info!(
            server = %target.server, api = api.name, series = report.series.len(), rows = report.rows, took_ms, next_poll_in,
            "poll succeeded"
        ),
        Err(failure) => tracing::warn!(
            server = %target.server, api = api.name, reason = failure.reason.as_str(), msg = %failure.detail, took_ms, next_poll_in,
            "poll failed; serving the last good values"
        ),
    }
}
