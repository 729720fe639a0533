//! Call admission over random sequences of calls, outcomes, crashes during calls, restarts and
//! wall clocks stepped backwards, with the ledger carried across each restart the way the state
//! directory carries it (as JSON); and with a backfill sharing the exporter's ledger, each taking
//! its turn and either dying during a call. Whatever happens, in real time: no two calls of the
//! token on Wolkvox at once, no API called twice within 5 minutes (unless fast polling is allowed),
//! and no day over the budget.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use wolkvox_exporter::calls::admission::{self, FLOOR, JobRules, Ledger, TokenRules};
use wolkvox_exporter::wolkvox::{Failure, Reason};

#[derive(Clone, Debug)]
struct Step {
    outcome: u8,
    /// How long Wolkvox takes to answer.
    duration: u64,
    /// The process dies this far into the call (seconds), if at all.
    crash_after: Option<u64>,
    restart_after: bool,
    /// The wall clock is set back this far after the step.
    clock_back: u64,
    jitter: f64,
}

fn step() -> impl Strategy<Value = Step> {
    (
        0u8..8,
        0u64..90,
        prop::option::weighted(0.15, 0u64..90),
        prop::bool::weighted(0.2),
        prop_oneof![9 => Just(0u64), 1 => 1u64..3600],
        0.0..1.0f64,
    )
        .prop_map(|(outcome, duration, crash_after, restart_after, clock_back, jitter)| Step {
            outcome,
            duration,
            crash_after,
            restart_after,
            clock_back,
            jitter,
        })
}

/// Mostly production rules; a fifth with fast polling (simulators), where only the floor is lifted.
fn rules() -> impl Strategy<Value = TokenRules> {
    let fast_poll = prop::bool::weighted(0.2);
    let intervals = prop::collection::vec(
        prop_oneof![Just(1u64), Just(30), Just(300), Just(600), Just(3600)],
        1..4,
    );
    (
        fast_poll,
        intervals,
        prop_oneof![Just(None), Just(Some(3u32)), Just(Some(20)), Just(Some(100))],
    )
        .prop_map(|(fast_poll, intervals, daily_budget)| TokenRules {
            zone: jiff::tz::TimeZone::get("America/Bogota").unwrap(),
            daily_budget,
            fast_poll,
            jobs: intervals
                .iter()
                .enumerate()
                .map(|(i, &seconds)| JobRules {
                    key: format!("0042/api{i}"),
                    // Without fast polling the configuration refuses intervals under 5 minutes.
                    interval: Duration::from_secs(if fast_poll {
                        seconds
                    } else {
                        seconds.max(300)
                    }),
                    timeout: Duration::from_secs(60),
                })
                .collect(),
        })
}

fn failure(outcome: u8) -> Option<Failure> {
    let reason = match outcome {
        0..=2 => return None,
        3 => Reason::Transport,
        4 => Reason::Quota,
        5 => Reason::Auth,
        6 => Reason::Http,
        _ => Reason::RateLimited,
    };
    let retry_after = (reason == Reason::RateLimited).then_some(Duration::from_secs(45));
    Some(Failure {
        status: Some(if reason == Reason::Http { 503 } else { 429 }),
        retry_after,
        ..Failure::new(reason, "random")
    })
}

/// What the state directory gives a restarted process.
fn restart(persisted: &Ledger, rules: &TokenRules, wall: Timestamp, jitter: f64) -> Ledger {
    let mut ledger: Ledger =
        serde_json::from_str(&serde_json::to_string(persisted).unwrap()).unwrap();
    admission::reconcile(&mut ledger, rules, wall, jitter);
    ledger
}

fn secs(seconds: u64) -> SignedDuration {
    SignedDuration::from_secs(seconds as i64)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn the_apis_rules_hold_across_restarts_crashes_and_clock_steps(rules in rules(), steps in prop::collection::vec(step(), 1..120)) {
        // Close to midnight in Bogota, so that days turn, and clocks step back over midnight.
        let start: Timestamp = "2026-11-15T23:40:00-05:00".parse().unwrap();
        let (mut real, mut clock_offset) = (start, SignedDuration::ZERO);
        let wall = |real: Timestamp, offset: SignedDuration| real + offset;
        let mut ledger = restart(&Ledger::default(), &rules, start, 0.0);
        // Wolkvox works on a call until it answers, or 60 s at most.
        let mut wolkvox_busy_until = start;
        let mut last_start: BTreeMap<usize, Timestamp> = BTreeMap::new();
        let mut per_day: BTreeMap<jiff::civil::Date, u32> = BTreeMap::new();

        for step in steps {
            // Sleep until admission says yes, asking again after each sleep, as the lane does.
            let decision = loop {
                let now = wall(real, clock_offset);
                let decision = admission::next(&ledger, &rules, now).unwrap();
                if decision.at <= now {
                    break decision;
                }
                real += decision.at.duration_since(now);
            };
            let now = wall(real, clock_offset);
            prop_assert!(real >= wolkvox_busy_until, "a call at {real} while Wolkvox works until {wolkvox_busy_until}");
            if let Some(previous) = last_start.insert(decision.job, real)
                && !rules.fast_poll
            {
                prop_assert!(real.duration_since(previous) >= secs(FLOOR.as_secs()), "job {} called at {previous} and {real}", decision.job);
            }
            let day = now.to_zoned(rules.zone.clone()).date();
            let calls = per_day.entry(day).or_default();
            *calls += 1;
            if let Some(budget) = rules.daily_budget {
                prop_assert!(*calls <= budget, "{calls} calls on {day}, budget {budget}");
            }

            admission::record_start(&mut ledger, &rules, decision.job, now);
            let persisted = ledger.clone();
            let answered_after = step.duration.min(60);
            wolkvox_busy_until = real + secs(answered_after);
            match step.crash_after {
                Some(after) if after < answered_after => {
                    real += secs(after);
                    ledger = restart(&persisted, &rules, wall(real, clock_offset), step.jitter);
                }
                _ => {
                    real += secs(answered_after);
                    let failure = if step.duration >= 60 { Some(Failure::new(Reason::Timeout, "60 s")) } else { failure(step.outcome) };
                    admission::record_end(&mut ledger, &rules, decision.job, wall(real, clock_offset), failure.as_ref(), step.jitter);
                    if step.restart_after {
                        ledger = restart(&ledger, &rules, wall(real, clock_offset), step.jitter);
                    }
                }
            }
            clock_offset -= secs(step.clock_back);
        }
    }
}

/// What Wolkvox saw of the token's calls, checked as each one starts.
#[derive(Default)]
struct Wolkvox {
    busy_until: Option<Timestamp>,
    last_start: BTreeMap<usize, Timestamp>,
    per_day: BTreeMap<jiff::civil::Date, u32>,
}

impl Wolkvox {
    fn call(
        &mut self,
        rules: &TokenRules,
        job: usize,
        at: Timestamp,
        answered_after: u64,
    ) -> Result<(), TestCaseError> {
        prop_assert!(
            self.busy_until.is_none_or(|busy| at >= busy),
            "a call at {at} while Wolkvox works until {:?}",
            self.busy_until
        );
        if let Some(previous) = self.last_start.insert(job, at)
            && !rules.fast_poll
        {
            prop_assert!(
                at.duration_since(previous) >= secs(FLOOR.as_secs()),
                "job {job} called at {previous} and {at}"
            );
        }
        let day = at.to_zoned(rules.zone.clone()).date();
        let calls = self.per_day.entry(day).or_default();
        *calls += 1;
        if let Some(budget) = rules.daily_budget {
            prop_assert!(*calls <= budget, "{calls} calls on {day}, budget {budget}");
        }
        self.busy_until = Some(at + secs(answered_after));
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn an_exporter_and_a_backfill_on_one_ledger_keep_the_rules_between_them(
        rules in rules(),
        side_job in 0usize..3,
        steps in prop::collection::vec(step(), 1..120),
    ) {
        let side_job = side_job % rules.jobs.len();
        let start: Timestamp = "2026-11-15T23:40:00-05:00".parse().unwrap();
        let mut now = start;
        let mut ledger = restart(&Ledger::default(), &rules, start, 0.0);
        // The backfill's own schedule, lost when it dies.
        let (mut own_due, mut own_start) = (None, None);
        let mut wolkvox = Wolkvox::default();

        for step in steps {
            // Each process sleeps until admission says yes and asks again; the first to be let in
            // records its start under the token's lock, and the other sees it.
            let backfill_first = step.jitter < 0.5;
            let (is_backfill, job) = loop {
                let exporter = admission::next(&ledger, &rules, now).unwrap();
                let side = admission::next_side_call(&ledger, &rules, side_job, now, own_due);
                let turn = admission::exporters_turn(&ledger, &rules, side_job, side.at.max(now), own_start);
                let side_ready = turn.is_none() && side.at <= now;
                match (exporter.at <= now, side_ready) {
                    (true, true) => break (backfill_first, if backfill_first { side_job } else { exporter.job }),
                    (true, false) => break (false, exporter.job),
                    (false, true) => break (true, side_job),
                    (false, false) => now = exporter.at.min(turn.unwrap_or(side.at)),
                }
            };
            admission::record_start(&mut ledger, &rules, job, now);
            let answered_after = step.duration.min(60);
            wolkvox.call(&rules, job, now, answered_after)?;
            if is_backfill {
                own_start = Some(now);
            }
            // While the call is open, neither process is let in.
            let during = now + secs(answered_after / 2);
            prop_assert!(admission::next(&ledger, &rules, during).unwrap().at > during);
            prop_assert!(admission::next_side_call(&ledger, &rules, side_job, during, None).at > during);

            match step.crash_after {
                Some(after) if after < answered_after => {
                    now += secs(after);
                    if is_backfill {
                        // The backfill dies: its call stays open in the ledger; a new one starts.
                        (own_due, own_start) = (None, None);
                    } else {
                        ledger = restart(&ledger, &rules, now, step.jitter);
                    }
                }
                _ => {
                    now += secs(answered_after);
                    let failure = if step.duration >= 60 { Some(Failure::new(Reason::Timeout, "60 s")) } else { failure(step.outcome) };
                    if is_backfill {
                        admission::record_side_end(&mut ledger, &rules, job, now, failure.as_ref());
                        own_due = Some(now + secs(rules.jobs[job].interval.as_secs()));
                    } else {
                        admission::record_end(&mut ledger, &rules, job, now, failure.as_ref(), step.jitter);
                    }
                }
            }
        }
    }
}
