//! The store: what lanes record, and the bytes `/metrics` serves.
//!
//! Lanes record each poll's outcome here (a short lock, never held across a poll). A renderer
//! task turns the state into exposition text once per change and swaps it in whole; scrapes only
//! ever load the last published [`Published`], so they cost the same whether a poll runs or not.
//! Targets and tokens are addressed by the [`JobId`] and [`TokenId`] the store handed out when it
//! was built: no index is shared by convention.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use jiff::Timestamp;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::clock::Clock;
use crate::config::contracts::Contracts;
use crate::serve::gzip::GzipPrefix;
use crate::serve::metrics;
use crate::serve::target_state::{LastPoll, Success, TargetState, TokenState};
use crate::storage::{Storage, StorageFailures};
use crate::wolkvox::{Failure, Report};

/// A target (one billing API of one server, or `token_info`) in the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct JobId(usize);

/// A token (one lane) in the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TokenId(usize);

/// Collects the states a store starts with, handing out their ids.
#[derive(Default)]
pub struct StoreBuilder {
    states: Vec<TargetState>,
    tokens: Vec<TokenState>,
}

impl StoreBuilder {
    pub fn token(&mut self, token: TokenState) -> TokenId {
        self.tokens.push(token);
        TokenId(self.tokens.len() - 1)
    }

    pub fn job(&mut self, state: TargetState) -> JobId {
        self.states.push(state);
        JobId(self.states.len() - 1)
    }

    /// The store, its first render published (restored answers included).
    pub fn build(
        self,
        contracts: &Contracts,
        clock: Clock,
        storage: Option<Arc<Storage>>,
    ) -> Arc<Store> {
        Store::new(self.states, self.tokens, contracts, clock, storage)
    }
}

/// What `/metrics`, `/` and `/-/ready` serve until the next change.
pub struct Published {
    /// Exposition text of everything but the per-scrape process metrics.
    pub text: Bytes,
    /// The same, gzip-compressed once here rather than on every scrape.
    pub gzip: GzipPrefix,
    pub targets: Vec<TargetState>,
    pub tokens: Vec<TokenState>,
}

impl Published {
    /// Every target (server) has had a successful poll of one of its APIs: one API the token may
    /// not call says what is wrong in its own wolkvox_up. For the landing page, not readiness.
    pub fn every_server_answered(&self) -> bool {
        let answered = |server: &str| {
            self.targets.iter().any(|t| t.server == server && t.last_success.is_some())
        };
        self.targets.iter().all(|t| answered(&t.server))
    }
}

impl Published {
    fn build(
        targets: Vec<TargetState>,
        tokens: Vec<TokenState>,
        contracts: &Contracts,
        now: Timestamp,
        storage_failures: Option<StorageFailures>,
        compress: fn(&[u8]) -> GzipPrefix,
    ) -> Published {
        let text = metrics::render(&targets, &tokens, contracts, now, storage_failures);
        let gzip = compress(text.as_bytes());
        Published { text: Bytes::from(text), gzip, targets, tokens }
    }
}

pub struct Store {
    states: Mutex<Vec<TargetState>>,
    tokens: Mutex<Vec<TokenState>>,
    contracts: Arc<Contracts>,
    clock: Clock,
    /// Its failures are metrics.
    storage: Option<Arc<Storage>>,
    published: ArcSwap<Published>,
    changed: Notify,
}

impl Store {
    /// A store that already holds these states, rendered and published (for benchmarks and
    /// tests; the poller builds its store with [`StoreBuilder`]).
    pub fn from_states(
        states: Vec<TargetState>,
        tokens: Vec<TokenState>,
        contracts: &Contracts,
        clock: Clock,
    ) -> Arc<Store> {
        Store::new(states, tokens, contracts, clock, None)
    }

    fn new(
        states: Vec<TargetState>,
        tokens: Vec<TokenState>,
        contracts: &Contracts,
        clock: Clock,
        storage: Option<Arc<Storage>>,
    ) -> Arc<Store> {
        let failures = storage.as_ref().map(|s| s.failures());
        // Restored answers may be megabytes: the first render compresses fast so that the first
        // scrape comes soon, and the renderer redoes it at once at the usual level.
        let published = Published::build(
            states.clone(),
            tokens.clone(),
            contracts,
            clock.now(),
            failures,
            GzipPrefix::fast,
        );
        let changed = Notify::new();
        changed.notify_one();
        Arc::new(Store {
            states: Mutex::new(states),
            tokens: Mutex::new(tokens),
            contracts: Arc::new(contracts.clone()),
            clock,
            storage,
            published: ArcSwap::from_pointee(published),
            changed,
        })
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn published(&self) -> Arc<Published> {
        self.published.load_full()
    }

    /// A copy of the current state (cheap: reports are shared), for tests and the renderer.
    pub fn states(&self) -> Vec<TargetState> {
        self.states.lock().expect("no panic while holding the lock").clone()
    }

    pub fn tokens(&self) -> Vec<TokenState> {
        self.tokens.lock().expect("no panic while holding the lock").clone()
    }

    /// Updates what is known of a token. Published with its lane's next recorded poll, so that a
    /// poll costs one render, not one per update.
    pub fn update_token(&self, token: TokenId, update: impl FnOnce(&mut TokenState)) {
        update(&mut self.tokens.lock().expect("no panic while holding the lock")[token.0]);
    }

    /// Renders what changed now, rather than with the next recorded poll.
    pub fn publish(&self) {
        self.changed.notify_one();
    }

    /// Notes when a job is due next; published with the next recorded poll.
    pub fn schedule(&self, job: JobId, next_poll_at: Timestamp) {
        self.states.lock().expect("no panic while holding the lock")[job.0].next_poll_at =
            Some(next_poll_at);
    }

    /// The wall clock has been stepped back past what the store holds: what happened happened at
    /// the latest now. (A success in the future would look fresh for as long as the error, and
    /// its staleness alert could never fire.)
    pub fn clock_stepped_back(&self, now: Timestamp) {
        for state in self.states.lock().expect("no panic while holding the lock").iter_mut() {
            if let Some(success) = &mut state.last_success {
                success.at = success.at.min(now);
            }
            if let Some(poll) = &mut state.last_poll {
                poll.finished_at = poll.finished_at.min(now);
            }
            if let Some((at, _)) = &mut state.last_failure {
                *at = (*at).min(now);
            }
        }
        self.changed.notify_one();
    }

    /// Records one poll of a job that took `duration` and finished at `finished_at`. A failure
    /// keeps the last good report.
    pub fn record(
        &self,
        job: JobId,
        outcome: Result<Arc<Report>, Failure>,
        duration: Duration,
        finished_at: Timestamp,
    ) {
        {
            let mut states = self.states.lock().expect("no panic while holding the lock");
            let state = &mut states[job.0];
            state.requests += 1;
            let failure = match outcome {
                Ok(report) => {
                    state.consecutive_failures = 0;
                    for &(reason, count) in &report.skipped {
                        state.skipped[reason as usize] += count;
                    }
                    state.last_success = Some(Success { report, at: finished_at });
                    None
                }
                Err(failure) => {
                    state.consecutive_failures += 1;
                    state.failures[failure.reason as usize] += 1;
                    state.last_failure = Some((finished_at, failure.clone()));
                    Some(failure)
                }
            };
            state.last_poll = Some(LastPoll { finished_at, duration, failure });
        }
        self.changed.notify_one();
    }

    /// Renders whenever a poll is recorded, when a target's series go stale, and at a month's end. Runs forever.
    /// The store published a first, fast-compressed render when it was built; this one starts by
    /// redoing it.
    pub async fn render_forever(self: Arc<Self>) {
        // Nothing can go stale, and no month end is due, before a first poll.
        let mut next_render: Option<Instant> = None;
        loop {
            match next_render {
                Some(deadline) => {
                    tokio::select! {
                        () = self.changed.notified() => {}
                        () = tokio::time::sleep_until(deadline) => {}
                    }
                }
                None => self.changed.notified().await,
            }
            let states = self.states();
            // Series going stale and the month's end change the text: render then too.
            let now = self.clock.now();
            let month_end = states.iter().filter_map(|s| s.month_end(now));
            let next = states.iter().filter_map(|s| s.stale_deadline(now)).chain(month_end).min();
            next_render = next.map(|at| self.clock.instant_at(at) + Duration::from_millis(1));
            // Rendering a large response takes milliseconds of CPU: keep it off the async workers.
            let (tokens, contracts) = (self.tokens(), self.contracts.clone());
            let storage_failures = self.storage.as_ref().map(|s| s.failures());
            let published = tokio::task::spawn_blocking(move || {
                Published::build(states, tokens, &contracts, now, storage_failures, GzipPrefix::new)
            })
            .await
            .expect("rendering does not panic");
            self.published.store(Arc::new(published));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wolkvox::Reason;

    #[test]
    fn failures_in_a_row_count_until_a_success_and_the_last_failure_stays() {
        let mut builder = StoreBuilder::default();
        let job =
            builder.job(TargetState::after_one_success(Report::default(), Timestamp::UNIX_EPOCH));
        let store = builder.build(&Contracts::default(), Clock::system(), None);
        let fail = || Err(Failure::new(Reason::Timeout, "no answer in 60s"));
        let at = |second| Timestamp::from_second(second).unwrap();
        store.record(job, fail(), Duration::from_secs(60), at(1));
        store.record(job, fail(), Duration::from_secs(60), at(2));
        assert_eq!(store.states()[0].consecutive_failures, 2);
        store.record(job, Ok(Arc::new(Report::default())), Duration::from_secs(1), at(3));
        let state = &store.states()[0];
        assert_eq!(state.consecutive_failures, 0);
        assert_eq!(
            state.last_failure.as_ref().map(|(_, f)| f.reason),
            Some(Reason::Timeout),
            "kept after the success"
        );
    }
}
