//! A backfill's calls: the tokens at once, each one call at a time through the exporter's call
//! driver (the API's rules and the failure table hold as for the exporter), and the dry run, which
//! is the same driver on a simulated clock with calls that reach nobody.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use crate::backfill::BackfillError;
use crate::backfill::fetch::{fetch_month, keep};
use crate::backfill::plan::{Month, still_to_fetch};
use crate::backfill::progress::Progress;
use crate::calls::admission::{Ledger, TokenRules};
use crate::calls::driver::{
    Hold, Observer, Pace, Quiet, RealTime, SideDriver, SideOutcome, SimulatedTime, Stop, Stopped,
};
use crate::calls::jobs;
use crate::calls::ledger::TokenLedger;
use crate::clock::{Clock, until};
use crate::config::Target;
use crate::storage::Storage;
use crate::wolkvox::model::DatedRow;
use crate::wolkvox::{Client, Failure};

/// What every token's calls share: the run's targets, months, state directory, client, clock and
/// progress.
pub(super) struct Calls<'a> {
    pub targets: &'a [Target],
    pub months: &'a [Month],
    pub storage: &'a Option<Arc<Storage>>,
    pub client: &'a Client,
    pub clock: &'a Clock,
    pub progress: &'a Progress,
}

impl Calls<'_> {
    /// Fetches the months without rows in `results`, the tokens (`lanes`: the targets of each) at
    /// once, each one call at a time: the API's rules are per token.
    pub(super) async fn fetch_all(
        &self,
        lanes: &[Vec<usize>],
        results: &[Option<Vec<DatedRow>>],
    ) -> Result<Vec<TokenMonths>, BackfillError> {
        let tokens = lanes.iter().map(|members| {
            self.fetch_token(members, still_to_fetch(self.months, results, members))
        });
        futures_util::future::try_join_all(tokens).await
    }

    /// Fetches months `todo` (indices into the months) of the token of targets `members`, one call
    /// at a time, trying a month again as the failure table says; a rejected token stops them.
    async fn fetch_token(
        &self,
        members: &[usize],
        todo: Vec<usize>,
    ) -> Result<TokenMonths, BackfillError> {
        let mut done = TokenMonths::default();
        let Some(&first) = members.first() else { return Ok(done) };
        let token_name = &self.targets[first].token_name;
        let ledger = TokenLedger::new(Ledger::default(), token_name, self.storage.clone());
        let mut driver = SideDriver::new(
            Arc::new(rules_of(self.targets, members)),
            ledger,
            self.storage.clone(),
        );
        let mut pace = RealTime::new(self.clock.clone(), Stop::Interrupt);
        for (k, &m) in todo.iter().enumerate() {
            let (month, left) = (&self.months[m], todo.len() - k);
            let name = month.name(self.targets);
            let job = job_of(driver.rules(), month, self.targets);
            let mut waiting = Waiting { progress: self.progress, month: &name, left };
            let fetch_month =
                |_| fetch_month(self.client, &self.targets[month.target], month, self.clock);
            // Interrupted during a call, the call stays open in the ledger: Wolkvox may still be answering it.
            let outcome = driver
                .call(job, &mut pace, &mut waiting, fetch_month)
                .await
                .map_err(|Stopped| BackfillError::Interrupted)?;
            match outcome {
                SideOutcome::Done(rows) => {
                    self.progress.fetched(&name, rows.len(), left - 1);
                    if !month.current
                        && let Some(storage) = self.storage
                    {
                        keep(storage, self.targets, month, &rows);
                    }
                    done.fetched.push((m, rows));
                }
                SideOutcome::Failed(failure) => {
                    self.progress.failed(&name, &failure);
                    done.failed.push(name);
                }
                SideOutcome::TokenRejected(failure) => {
                    self.progress.failed(&name, &failure);
                    done.rejected = Some(format!(
                        "Wolkvox rejected the token {token_name} ({}: {}) when calling for {name}: its {} other month(s) were not called; fix the token and run again",
                        failure.reason,
                        failure.detail,
                        left - 1
                    ));
                    break;
                }
            }
        }
        Ok(done)
    }
}

/// What one token's months came to.
#[derive(Default)]
pub(super) struct TokenMonths {
    /// The rows of each month fetched, by index into the months.
    pub fetched: Vec<(usize, Vec<DatedRow>)>,
    /// The names of the months that failed.
    pub failed: Vec<String>,
    /// Why the token's calls stopped, when Wolkvox rejected it.
    pub rejected: Option<String>,
}

/// What a backfill shows while a month's call waits.
struct Waiting<'a> {
    progress: &'a Progress,
    month: &'a str,
    /// Months to go, this one included.
    left: usize,
}

impl Observer for Waiting<'_> {
    fn waiting(
        &mut self,
        _ledger: &Ledger,
        now: Timestamp,
        at: Timestamp,
        hold: Hold,
    ) -> Timestamp {
        let why = match hold {
            Hold::ExportersTurn => "the exporter on this state directory, whose turn it is",
            Hold::Rules | Hold::Unreadable => "the API's rules",
        };
        self.progress.waiting(self.month, now, at, why, self.left)
    }

    fn trying_again(&mut self, failure: &Failure) {
        self.progress.trying_again(self.month, failure);
    }
}

/// The token's admission rules: one job per target and billing API, keyed as the exporter keys
/// them, so that the floor and the budget are shared with it through the ledger.
fn rules_of(targets: &[Target], members: &[usize]) -> TokenRules {
    let token: Vec<&Target> = members.iter().map(|&i| &targets[i]).collect();
    jobs::token_rules(&token, &jobs::billing_jobs(&token))
}

/// `month`'s job in the token's rules.
fn job_of(rules: &TokenRules, month: &Month, targets: &[Target]) -> usize {
    let key = month.key(targets);
    rules.jobs.iter().position(|job| job.key == key).expect("every month's job is in the rules")
}

/// What a dry run prints: per token the calls to make and when the last can be made at the
/// earliest, from its ledger. A reader that stops early (`| head`) ends the printing, nothing else.
pub(super) async fn print_plan(
    targets: &[Target],
    months: &[Month],
    results: &[Option<Vec<DatedRow>>],
    lanes: &[Vec<usize>],
    storage: Option<&Storage>,
    clock: &Clock,
) {
    let mut plan = String::new();
    let mut say = |line: String| {
        plan.push_str(&line);
        plan.push('\n');
    };
    say(format!(
        "backfill plan: {} month(s) of API answers, {} already kept",
        months.len(),
        results.iter().filter(|r| r.is_some()).count()
    ));
    for members in lanes {
        let target = &targets[members[0]];
        let ledger = storage
            .and_then(|s| s.load_ledger(&target.token_name).ok().flatten())
            .unwrap_or_default();
        // The real calls' driver, on a copy of the ledger and a simulated clock, and calls that
        // reach nobody: each at the earliest the API's rules let it.
        let ledger = TokenLedger::new(ledger, &target.token_name, None);
        let mut driver = SideDriver::new(Arc::new(rules_of(targets, members)), ledger, None);
        let mut time = SimulatedTime::starting_at(clock.now());
        let mut calls = 0;
        for month in still_to_fetch(months, results, members).into_iter().map(|m| &months[m]) {
            let job = job_of(driver.rules(), month, targets);
            let Ok(SideOutcome::Done(())) =
                driver.call(job, &mut time, &mut Quiet, |_| async { Ok::<(), Failure>(()) }).await
            else {
                break;
            };
            // A call that reaches nobody takes no time: it started when the clock reads now.
            say(format!(
                "  {} at {}",
                month.name(targets),
                time.now().to_zoned(target.timezone.clone()).strftime("%Y-%m-%d %H:%M:%S %Z")
            ));
            calls += 1;
        }
        let wait = humantime::format_duration(Duration::from_secs(
            until(clock.now(), time.now()).as_secs(),
        ));
        say(format!(
            "token {}: {calls} call(s), the last at the earliest in {wait}",
            target.token_name
        ));
        if storage.is_some_and(Storage::exporter_running) {
            say("  an exporter runs on this state directory: the backfill takes turns with it, and may finish later".to_owned());
        }
    }
    let _ = std::io::stdout().lock().write_all(plan.as_bytes());
}
