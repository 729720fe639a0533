//! A token's jobs and their rules, from the configuration: the one place that names a job in the
//! ledger. The exporter's lanes and the backfill both build their rules here, so that on a shared
//! state directory they find each other's calls under the same keys, and so share each API's
//! floor and the token's budget.

use std::borrow::Borrow;

use crate::calls::admission::{JobRules, TokenRules};
use crate::config::Target;
use crate::wolkvox::{Api, catalogue};

/// One job of a token: an API of one of its targets (an index into the token's targets).
pub(crate) type TokenJob = (usize, &'static Api);

/// The key of a job in the ledger: stable across restarts, never the token.
pub(crate) fn job_key(target: &Target, api: &Api) -> String {
    format!("{}/{}", target.server, api.name)
}

/// The billing APIs of a token's targets: each target's APIs, in configuration order.
pub(crate) fn billing_jobs<T: Borrow<Target>>(targets: &[T]) -> Vec<TokenJob> {
    let apis = targets
        .iter()
        .enumerate()
        .flat_map(|(index, target)| target.borrow().apis.iter().map(move |&api| (index, api)));
    apis.collect()
}

/// What an exporter's lane polls: the billing APIs, then `token_info` when the token's first
/// target asks for it (called with that target).
pub(crate) fn lane_jobs<T: Borrow<Target>>(targets: &[T]) -> Vec<TokenJob> {
    let mut jobs = billing_jobs(targets);
    if targets.first().is_some_and(|first| first.borrow().token_info) {
        jobs.push((0, &catalogue::TOKEN_INFO));
    }
    jobs
}

/// The admission rules of a token for `jobs`. Its zone, budget and fast polling are those of its
/// first target (the configuration checked that its targets agree).
pub(crate) fn token_rules<T: Borrow<Target>>(targets: &[T], jobs: &[TokenJob]) -> TokenRules {
    let first = targets[0].borrow();
    TokenRules {
        zone: first.timezone.clone(),
        daily_budget: first.daily_call_budget,
        fast_poll: first.allow_fast_poll,
        jobs: jobs
            .iter()
            .map(|&(index, api)| {
                let target = targets[index].borrow();
                JobRules {
                    key: job_key(target, api),
                    interval: target.poll_interval,
                    timeout: target.timeout,
                }
            })
            .collect(),
    }
}
