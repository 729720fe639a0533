//! The call driver: the one loop that makes a token's calls. Each call is decided on the ledger
//! (as the state directory holds it, with its start recorded in the same step, so that no other
//! process calls meanwhile), waited for, made, and its end recorded. The exporter's lanes, the
//! backfill and the backfill's dry run all call through here. What differs between them is who
//! picks the job ([`ExporterDriver`]: admission, by the ledger's schedule; [`SideDriver`]: the side
//! command, on its own schedule), how time passes and stops ([`Pace`]: tokio's clock, or a dry
//! run's simulated one), and what a wait shows ([`Observer`]).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio::sync::watch;

use crate::calls::admission::{self, Decision, Ledger, TokenRules};
use crate::calls::ledger::{TokenLedger, UNREADABLE_RETRY, Unavailable, warn_clock_step};
use crate::clock::Clock;
use crate::storage::Storage;
use crate::wolkvox::{Consequence, Failure};

/// How often a side command waiting for a running exporter's turn looks whether it has called.
const EXPORTER_RECHECK: SignedDuration = SignedDuration::from_secs(5);

/// A stop was asked for (the exporter's shutdown, Ctrl-C of a command) before or during a call.
#[derive(Debug)]
pub(crate) struct Stopped;

/// What holds the next call back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hold {
    /// The API's rules: the floor, the spread, a pause, the budget, a call in flight.
    Rules,
    /// A running exporter is due for the same API: it calls first.
    ExportersTurn,
    /// The ledger cannot be read: nothing is called until it can.
    Unreadable,
}

/// One call made through the driver, its end recorded.
#[derive(Debug)]
pub(crate) struct Called<T> {
    pub decision: Decision,
    pub started: Timestamp,
    pub ended: Timestamp,
    pub took: Duration,
    pub outcome: Result<T, Failure>,
}

/// How time passes for a driver, and how its caller stops it.
pub(crate) trait Pace {
    /// The wall time.
    fn now(&self) -> Timestamp;
    /// Whether a stop has been asked for; looked at before each decision.
    fn stop_requested(&self) -> bool;
    /// Sleeps until the wall clock reads `at`, or until a stop is asked for.
    fn sleep_until(&mut self, at: Timestamp) -> impl Future<Output = Result<(), Stopped>> + Send;
    /// Runs a call to its end, unless a stop cuts it short: it then stays open in the ledger, as
    /// Wolkvox may still be answering it.
    fn finish<F: Future + Send>(
        &mut self,
        call: F,
    ) -> impl Future<Output = Result<F::Output, Stopped>> + Send;
}

/// What a driver's caller shows of its waits.
pub(crate) trait Observer {
    /// The driver waits until `at` for `hold`. Returns when to look again at the latest (the
    /// driver may look again sooner).
    fn waiting(&mut self, ledger: &Ledger, now: Timestamp, at: Timestamp, hold: Hold) -> Timestamp {
        let _ = (ledger, now, hold);
        at
    }

    /// A call failed in a way the failure table tries again: the driver will.
    fn trying_again(&mut self, failure: &Failure) {
        let _ = failure;
    }

    /// The wall clock was found stepped back since the ledger's last calls (the driver logs it).
    fn clock_stepped_back(&mut self, now: Timestamp) {
        let _ = now;
    }
}

/// An observer that shows nothing.
pub(crate) struct Quiet;

impl Observer for Quiet {}

/// How a caller on real time is stopped.
pub(crate) enum Stop {
    /// The exporter's shutdown: between calls at once; a call in flight is finished and recorded
    /// first (cut short, it would cost a call of the quota for nothing).
    Shutdown(watch::Receiver<bool>),
    /// Ctrl-C of a command: at once, a call in flight included.
    Interrupt,
}

/// Tokio's clock under the wall clock: what every caller that really calls runs on.
pub(crate) struct RealTime {
    clock: Clock,
    stop: Stop,
}

impl RealTime {
    pub(crate) fn new(clock: Clock, stop: Stop) -> RealTime {
        RealTime { clock, stop }
    }
}

impl Pace for RealTime {
    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn stop_requested(&self) -> bool {
        matches!(&self.stop, Stop::Shutdown(stop) if *stop.borrow())
    }

    async fn sleep_until(&mut self, at: Timestamp) -> Result<(), Stopped> {
        let sleep = tokio::time::sleep_until(self.clock.instant_at(at));
        match &mut self.stop {
            Stop::Shutdown(stop) => tokio::select! {
                () = sleep => Ok(()),
                () = shutdown(stop) => Err(Stopped),
            },
            Stop::Interrupt => tokio::select! {
                () = sleep => Ok(()),
                _ = tokio::signal::ctrl_c() => Err(Stopped),
            },
        }
    }

    async fn finish<F: Future + Send>(&mut self, call: F) -> Result<F::Output, Stopped> {
        match &self.stop {
            Stop::Shutdown(_) => Ok(call.await),
            Stop::Interrupt => tokio::select! {
                output = call => Ok(output),
                _ = tokio::signal::ctrl_c() => Err(Stopped),
            },
        }
    }
}

/// Resolves once a shutdown is asked for; never if nobody can ask any more.
async fn shutdown(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|&stopping| stopping).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// A dry run's time: every wait is over at once, and no stop comes.
pub(crate) struct SimulatedTime {
    now: Timestamp,
}

impl SimulatedTime {
    pub(crate) fn starting_at(now: Timestamp) -> SimulatedTime {
        SimulatedTime { now }
    }
}

impl Pace for SimulatedTime {
    fn now(&self) -> Timestamp {
        self.now
    }

    fn stop_requested(&self) -> bool {
        false
    }

    async fn sleep_until(&mut self, at: Timestamp) -> Result<(), Stopped> {
        self.now = self.now.max(at);
        Ok(())
    }

    async fn finish<F: Future + Send>(&mut self, call: F) -> Result<F::Output, Stopped> {
        Ok(call.await)
    }
}

/// The exporter's calls on one token: admission picks each job by the ledger's schedule, and a
/// call's end sets the job's next one (interval, backoff, `Retry-After`, the token's pauses).
pub(crate) struct ExporterDriver {
    core: Core,
}

impl ExporterDriver {
    pub(crate) fn new(rules: Arc<TokenRules>, ledger: TokenLedger) -> ExporterDriver {
        ExporterDriver { core: Core { rules, ledger } }
    }

    pub(crate) fn ledger(&self) -> &TokenLedger {
        &self.core.ledger
    }

    /// Makes the token's next call: waits until admission lets one in, calls `call` with its job
    /// (an index into the rules' jobs), and records its end. None once a stop is asked for, and
    /// for a token without jobs.
    pub(crate) async fn next_call<T, F>(
        &mut self,
        pace: &mut impl Pace,
        observer: &mut impl Observer,
        call: impl FnOnce(usize) -> F,
    ) -> Option<Called<T>>
    where
        F: Future<Output = Result<T, Failure>> + Send,
    {
        let called = self.core.call(|| Ask::Next, pace, observer, call).await.ok()??;
        let (rules, job, ended, failure) = (
            self.core.rules.clone(),
            called.decision.job,
            called.ended,
            called.outcome.as_ref().err().cloned(),
        );
        let jitter = fastrand::f64();
        self.core
            .ledger
            .record(move |ledger| {
                admission::record_end(ledger, &rules, job, ended, failure.as_ref(), jitter)
            })
            .await;
        Some(called)
    }
}

/// A side command tries one job's call at most this many times in a row while the failure table
/// says to try again (a transient failure, the quota's pause): each try costs a call of the quota.
pub(crate) const SIDE_ATTEMPTS: u32 = 4;

/// How a side command's call of a job came out, after the tries the failure table allows.
#[derive(Debug)]
pub(crate) enum SideOutcome<T> {
    Done(T),
    /// A lasting failure, or one retried [`SIDE_ATTEMPTS`] times: a later run may do better.
    Failed(Failure),
    /// Wolkvox rejected the token: no call with it can succeed until someone fixes it.
    TokenRejected(Failure),
}

/// A side command's calls on one token (the backfill): it names each job, and keeps a schedule of
/// its own (the interval after its last call, the backoff after a transient failure, or a longer
/// `Retry-After`); the API's floor, the token's pauses and its budget hold as for the exporter,
/// through the shared ledger, and it takes turns with an exporter running on the same state
/// directory.
pub(crate) struct SideDriver {
    core: Core,
    /// Where to see whether an exporter runs (None: nobody to take turns with).
    storage: Option<Arc<Storage>>,
    /// When the side command's own schedule lets it call again.
    own_due: Option<Timestamp>,
    /// When it started each job's last call, for the turns.
    own_starts: HashMap<usize, Timestamp>,
}

impl SideDriver {
    pub(crate) fn new(
        rules: Arc<TokenRules>,
        ledger: TokenLedger,
        storage: Option<Arc<Storage>>,
    ) -> SideDriver {
        SideDriver {
            core: Core { rules, ledger },
            storage,
            own_due: None,
            own_starts: HashMap::new(),
        }
    }

    pub(crate) fn rules(&self) -> &Arc<TokenRules> {
        &self.core.rules
    }

    /// Calls job `job` until it succeeds or the failure table says to stop, as the exporter reads
    /// it: a transient failure is tried again after the table's backoff, the quota's once its pause
    /// is over (up to [`SIDE_ATTEMPTS`] tries); a rejected token stops at once; any other failure
    /// is for a later run.
    pub(crate) async fn call<T, F>(
        &mut self,
        job: usize,
        pace: &mut impl Pace,
        observer: &mut impl Observer,
        mut call: impl FnMut(usize) -> F,
    ) -> Result<SideOutcome<T>, Stopped>
    where
        F: Future<Output = Result<T, Failure>> + Send,
    {
        let mut failures_in_a_row = 0;
        loop {
            let failure =
                match self.call_once(job, failures_in_a_row, pace, observer, &mut call).await? {
                    Ok(value) => return Ok(SideOutcome::Done(value)),
                    Err(failure) => failure,
                };
            if failure.rejects_token() {
                return Ok(SideOutcome::TokenRejected(failure));
            }
            failures_in_a_row += 1;
            let tried_again = failure.is_transient()
                || failure.consequence() == Consequence::PauseTokenUntilMidnight;
            if !tried_again || failures_in_a_row >= SIDE_ATTEMPTS {
                return Ok(SideOutcome::Failed(failure));
            }
            observer.trying_again(&failure);
        }
    }

    /// One call of job `job`: waits until the API's rules and a running exporter's turn let it
    /// in, calls, and records what its end means for the token (the job's schedule in the ledger
    /// is the exporter's, and is left alone) and for the side command's own schedule.
    async fn call_once<T, F>(
        &mut self,
        job: usize,
        failures_in_a_row: u32,
        pace: &mut impl Pace,
        observer: &mut impl Observer,
        call: impl FnOnce(usize) -> F,
    ) -> Result<Result<T, Failure>, Stopped>
    where
        F: Future<Output = Result<T, Failure>> + Send,
    {
        let (own_due, own_last_start, storage) =
            (self.own_due, self.own_starts.get(&job).copied(), &self.storage);
        let exporter_running = || storage.as_ref().is_some_and(|s| s.exporter_running());
        let ask =
            || Ask::Side { job, own_due, own_last_start, exporter_running: exporter_running() };
        let Some(called) = self.core.call(ask, pace, observer, call).await? else {
            unreachable!("a side call names its job: admission always answers it")
        };
        self.own_starts.insert(job, called.started);
        let (rules, ended, failure) =
            (self.core.rules.clone(), called.ended, called.outcome.as_ref().err().cloned());
        let wait = admission::wait_after(&rules, job, failures_in_a_row, failure.as_ref(), ended);
        self.own_due = Some(ended + SignedDuration::try_from(wait).unwrap_or(SignedDuration::MAX));
        self.core
            .ledger
            .record(move |ledger| {
                admission::record_side_end(ledger, &rules, job, ended, failure.as_ref())
            })
            .await;
        Ok(called.outcome)
    }
}

/// A token's rules and ledger, and the one loop over them.
struct Core {
    rules: Arc<TokenRules>,
    ledger: TokenLedger,
}

/// What is asked of admission.
#[derive(Clone, Copy)]
enum Ask {
    /// The exporter's next call, whichever job it is.
    Next,
    /// A side command's call of `job`, on its own schedule, taking turns with a running exporter.
    Side {
        job: usize,
        own_due: Option<Timestamp>,
        own_last_start: Option<Timestamp>,
        exporter_running: bool,
    },
}

/// Admission's answer, taken on the ledger in one step with the start of the call it admits.
enum Turn {
    /// Call now: the start is recorded.
    Call(Decision),
    /// The API's rules hold the call until then.
    Wait(Timestamp),
    /// A running exporter calls first, until then at the latest.
    Exporters(Timestamp),
    /// A token without jobs: nothing to call.
    Idle,
}

impl Core {
    /// One call: admitted, made by `call`, timed. Its end is for the caller to record.
    async fn call<T, F>(
        &mut self,
        ask: impl Fn() -> Ask,
        pace: &mut impl Pace,
        observer: &mut impl Observer,
        call: impl FnOnce(usize) -> F,
    ) -> Result<Option<Called<T>>, Stopped>
    where
        F: Future<Output = Result<T, Failure>> + Send,
    {
        let Some((decision, started)) = self.admit(ask, pace, observer).await? else {
            return Ok(None);
        };
        let timer = tokio::time::Instant::now();
        let outcome = pace.finish(call(decision.job)).await?;
        Ok(Some(Called { decision, started, ended: pace.now(), took: timer.elapsed(), outcome }))
    }

    /// Waits until admission lets a call in, and returns it with its start. With a state
    /// directory, each decision is taken on the ledger as the directory holds it, so that the
    /// other processes on it are seen.
    async fn admit(
        &mut self,
        ask: impl Fn() -> Ask,
        pace: &mut impl Pace,
        observer: &mut impl Observer,
    ) -> Result<Option<(Decision, Timestamp)>, Stopped> {
        loop {
            if pace.stop_requested() {
                return Err(Stopped);
            }
            let now = pace.now();
            let (rules, ask) = (self.rules.clone(), ask());
            // New jobs of the exporter come within a few random seconds, so that exporters started
            // together spread; a side command's at once.
            let jitter = if matches!(ask, Ask::Next) { fastrand::f64() } else { 0.0 };
            let decided =
                self.ledger.update(move |ledger| decide(ledger, &rules, now, ask, jitter)).await;
            let (hold, at) = match decided {
                Ok((step, turn)) => {
                    if let Some(step) = step {
                        warn_clock_step(self.ledger.token_name(), step);
                        observer.clock_stepped_back(now);
                    }
                    match turn {
                        Turn::Call(decision) => return Ok(Some((decision, now))),
                        Turn::Idle => return Ok(None),
                        Turn::Wait(at) => (Hold::Rules, at),
                        Turn::Exporters(until) => (Hold::ExportersTurn, until),
                    }
                }
                // The file may be good: nothing is called until it can be read (logged by storage).
                Err(Unavailable) => (
                    Hold::Unreadable,
                    now + SignedDuration::try_from(UNREADABLE_RETRY).unwrap_or_default(),
                ),
            };
            let wake = observer.waiting(self.ledger.get(), now, at, hold);
            // Look again sooner while another process's call is open, or while it is a running
            // exporter's turn: either ends as soon as that process has called. And, after a sleep,
            // ask again anyway: the wall clock may have moved otherwise than the sleep.
            let wake = match hold {
                Hold::Rules => admission::look_again_at(self.ledger.get(), wake, now),
                Hold::ExportersTurn => wake.min(now + EXPORTER_RECHECK),
                Hold::Unreadable => wake,
            };
            pace.sleep_until(wake).await?;
        }
    }
}

/// Decides on the ledger as it is at `now`, and records the start of a call admitted now.
fn decide(
    ledger: &mut Ledger,
    rules: &TokenRules,
    now: Timestamp,
    ask: Ask,
    jitter: f64,
) -> (Option<SignedDuration>, Turn) {
    let step = admission::undo_clock_step(ledger, rules, now);
    admission::add_jobs(ledger, rules, now, jitter);
    let turn = match ask {
        Ask::Next => match admission::next(ledger, rules, now) {
            None => Turn::Idle,
            Some(decision) if decision.at <= now => Turn::Call(decision),
            Some(decision) => Turn::Wait(decision.at),
        },
        Ask::Side { job, own_due, own_last_start, exporter_running } => {
            let decision = admission::next_side_call(ledger, rules, job, now, own_due);
            let turn = exporter_running.then(|| {
                admission::exporters_turn(ledger, rules, job, decision.at.max(now), own_last_start)
            });
            match turn.flatten() {
                Some(until) => Turn::Exporters(until),
                None if decision.at <= now => Turn::Call(decision),
                None => Turn::Wait(decision.at),
            }
        }
    };
    if let Turn::Call(decision) = &turn {
        admission::record_start(ledger, rules, decision.job, now);
    }
    (step, turn)
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use crate::calls::admission::JobRules;
    use crate::wolkvox::Reason;

    const NOON: &str = "2026-11-15T12:00:00-05:00";

    /// One job every 5 minutes, with fast polling (no floor), so that the backoff shows.
    fn driver() -> SideDriver {
        let job = JobRules {
            key: "0042/gamification".to_owned(),
            interval: Duration::from_secs(300),
            timeout: Duration::from_secs(60),
        };
        let rules = TokenRules {
            zone: jiff::tz::TimeZone::get("America/Bogota").unwrap(),
            daily_budget: None,
            fast_poll: true,
            jobs: vec![job],
        };
        SideDriver::new(Arc::new(rules), TokenLedger::new(Ledger::default(), "token", None), None)
    }

    /// Calls that answer from a script, then succeed.
    fn scripted(
        outcomes: Vec<Result<(), Failure>>,
    ) -> impl FnMut(usize) -> std::future::Ready<Result<(), Failure>> {
        let mut outcomes = VecDeque::from(outcomes);
        move |_| std::future::ready(outcomes.pop_front().unwrap_or(Ok(())))
    }

    /// Notes until when each wait lasts.
    #[derive(Default)]
    struct Waits(Vec<Timestamp>);

    impl Observer for Waits {
        fn waiting(&mut self, _: &Ledger, _: Timestamp, at: Timestamp, _: Hold) -> Timestamp {
            self.0.push(at);
            at
        }
    }

    #[tokio::test]
    async fn a_side_call_tries_a_transient_failure_again_after_the_tables_backoff() {
        let start: Timestamp = NOON.parse().unwrap();
        let (mut driver, mut time, mut waits) =
            (driver(), SimulatedTime::starting_at(start), Waits::default());
        let unavailable = Failure { status: Some(503), ..Failure::new(Reason::Http, "503") };
        let script = scripted(vec![Err(unavailable.clone()), Err(unavailable)]);
        let outcome = driver.call(0, &mut time, &mut waits, script).await.unwrap();
        assert!(matches!(outcome, SideOutcome::Done(())), "{outcome:?}");
        // 30 s after the first failure, then 60 s after the second: the table's backoff.
        let after: Vec<i64> = waits.0.iter().map(|at| at.duration_since(start).as_secs()).collect();
        assert_eq!(after, [30, 90]);
        assert_eq!(driver.core.ledger.get().calls_today, 3);
    }

    #[tokio::test]
    async fn a_rejected_token_stops_at_once_a_lasting_failure_is_not_tried_again_and_tries_are_counted()
     {
        let (mut driver, mut time) = (driver(), SimulatedTime::starting_at(NOON.parse().unwrap()));
        let rejected =
            Failure { status: Some(403), ..Failure::new(Reason::Auth, "PLEASE VALIDATE TOKEN") };
        let outcome =
            driver.call(0, &mut time, &mut Quiet, scripted(vec![Err(rejected)])).await.unwrap();
        assert!(
            matches!(outcome, SideOutcome::TokenRejected(ref f) if f.reason == Reason::Auth),
            "{outcome:?}"
        );
        let outcome = driver
            .call(
                0,
                &mut time,
                &mut Quiet,
                scripted(vec![Err(Failure::new(Reason::Decode, "not JSON"))]),
            )
            .await
            .unwrap();
        assert!(
            matches!(outcome, SideOutcome::Failed(ref f) if f.reason == Reason::Decode),
            "{outcome:?}"
        );
        let outcome = driver
            .call(
                0,
                &mut time,
                &mut Quiet,
                scripted(vec![Err(Failure::new(Reason::Transport, "reset")); 9]),
            )
            .await
            .unwrap();
        assert!(
            matches!(outcome, SideOutcome::Failed(ref f) if f.reason == Reason::Transport),
            "{outcome:?}"
        );
        assert_eq!(driver.core.ledger.get().calls_today, 2 + SIDE_ATTEMPTS);
    }
}
