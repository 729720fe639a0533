//! What must hold across targets, because targets that share a token share one lane of calls: one
//! name per token and one token per name, one daily budget per token (and so one time zone for its
//! day), and a budget that lets every API of the token be polled at least once a day, and often
//! enough for `stale_after`. A name, budget or `token_info` given on any of a token's targets then
//! becomes that of all of them, and a budget that cannot pay for the intervals lengthens them to
//! the interval the admission's rule gives (`calls::admission::budget_interval`).

use std::collections::HashMap;
use std::time::Duration;

use crate::calls::admission;
use crate::config::error::ConfigError;
use crate::config::target::Target;
use crate::config::token::Token;

/// Names the field of target `i` for a key (`token_name`, `daily_call_budget`, `timezone`).
pub(super) type FieldOf<'a> = &'a dyn Fn(usize, &str) -> String;

/// Targets that share a token must share one lane: grouped by token, in configuration order.
pub fn group_by_token(targets: &[Target]) -> Vec<Vec<usize>> {
    let mut lanes: Vec<Vec<usize>> = Vec::new();
    let mut lane_of: HashMap<&Token, usize> = HashMap::new();
    for (i, target) in targets.iter().enumerate() {
        let lane = *lane_of.entry(&target.token).or_insert_with(|| {
            lanes.push(Vec::new());
            lanes.len() - 1
        });
        lanes[lane].push(i);
    }
    lanes
}

/// Checks the targets of each token against each other and gives them the token's settings.
pub(super) fn check_tokens(
    targets: &mut [Target],
    field_of: FieldOf<'_>,
) -> Result<(), ConfigError> {
    let lanes = group_by_token(targets);
    for lane in &lanes {
        let shared = Shared::agreed(targets, lane, field_of)?;
        let budget_period = shared.budget_period(field_of)?;
        for &i in lane {
            shared.check_stale_after(&targets[i], i, budget_period, field_of)?;
            let target = &mut targets[i];
            target.token_name.clone_from(&shared.name);
            target.daily_call_budget = shared.budget;
            target.token_info = shared.token_info;
            target.poll_interval = target.poll_interval.max(budget_period);
        }
    }
    one_token_per_name(targets, &lanes, field_of)
}

/// The settings of one token, agreed by its targets (`lane`).
struct Shared<'a> {
    lane: &'a [usize],
    name: String,
    budget: Option<u32>,
    /// The target that gives the budget.
    budgeted: Option<usize>,
    token_info: bool,
    /// Calls the token makes per round: one per API of each target, and `token_info`.
    calls: usize,
}

impl<'a> Shared<'a> {
    /// The name given on any target (or the first's default), the budget and `token_info` given on
    /// any; names and budgets that differ are refused, and so are time zones under a budget.
    fn agreed(
        targets: &[Target],
        lane: &'a [usize],
        field_of: FieldOf<'_>,
    ) -> Result<Shared<'a>, ConfigError> {
        let named =
            lane.iter().copied().find(|&i| !targets[i].token_name_is_default).unwrap_or(lane[0]);
        let budgeted = lane.iter().copied().find(|&i| targets[i].daily_call_budget.is_some());
        let (name, budget) = (
            targets[named].token_name.clone(),
            budgeted.and_then(|i| targets[i].daily_call_budget),
        );
        for &i in lane {
            if !targets[i].token_name_is_default && targets[i].token_name != name {
                return Err(ConfigError::new(
                    field_of(i, "token_name"),
                    format!(
                        "{:?} differs from {name:?}, given to the same token: give both the same token_name",
                        targets[i].token_name
                    ),
                ));
            }
            if budget.is_some() && targets[i].timezone_name != targets[lane[0]].timezone_name {
                return Err(ConfigError::new(
                    field_of(i, "timezone"),
                    format!(
                        "differs from {:?} of the target with the same token: a daily_call_budget needs one day, so one time zone",
                        targets[lane[0]].timezone_name
                    ),
                ));
            }
            if targets[i].daily_call_budget.is_some_and(|b| Some(b) != budget) {
                return Err(ConfigError::new(
                    field_of(i, "daily_call_budget"),
                    "differs from the budget another target gives the same token",
                ));
            }
        }
        let token_info = lane.iter().any(|&i| targets[i].token_info);
        let calls: usize =
            lane.iter().map(|&i| targets[i].apis.len()).sum::<usize>() + usize::from(token_info);
        Ok(Shared { lane, name, budget, budgeted, token_info, calls })
    }

    /// The interval the budget allows each API of the token (zero without a budget), by the
    /// admission's rule ([`admission::budget_interval`]); a budget too small to poll each of them
    /// once a day is refused.
    fn budget_period(&self, field_of: FieldOf<'_>) -> Result<Duration, ConfigError> {
        let (name, calls) = (&self.name, self.calls);
        let Some(budget) = self.budget else { return Ok(Duration::ZERO) };
        admission::budget_interval(budget, calls).ok_or_else(|| {
            ConfigError::new(
                field_of(self.budgeted.unwrap_or(self.lane[0]), "daily_call_budget"),
                format!("{budget} calls a day cannot poll the {calls} APIs (token_info included) that use token {name:?} even once a day"),
            )
        })
    }

    /// A budget that polls less often than series go stale would let them vanish between polls.
    fn check_stale_after(
        &self,
        target: &Target,
        i: usize,
        budget_period: Duration,
        field_of: FieldOf<'_>,
    ) -> Result<(), ConfigError> {
        if budget_period > target.stale_after {
            return Err(ConfigError::new(
                field_of(self.budgeted.unwrap_or(i), "daily_call_budget"),
                format!(
                    "{} calls a day for the {} APIs of token {:?} poll each about every {}, longer than --wolkvox.stale-after {}: raise one of them",
                    self.budget.unwrap_or(0),
                    self.calls,
                    self.name,
                    humantime::format_duration(budget_period),
                    humantime::format_duration(target.stale_after)
                ),
            ));
        }
        Ok(())
    }
}

/// Two tokens may not share a name: their series would merge.
fn one_token_per_name(
    targets: &[Target],
    lanes: &[Vec<usize>],
    field_of: FieldOf<'_>,
) -> Result<(), ConfigError> {
    for lane in lanes {
        let name = &targets[lane[0]].token_name;
        if let Some(other) =
            lanes.iter().find(|other| other[0] != lane[0] && targets[other[0]].token_name == *name)
        {
            return Err(ConfigError::new(
                field_of(other[0].max(lane[0]), "token_name"),
                format!("{name:?} already names another token: give each token its own token_name"),
            ));
        }
    }
    Ok(())
}
