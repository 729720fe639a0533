//! Contract budgets: the quantity of a billing API that an operation contracted, from the config
//! file's `budgets:`, checked against the servers and the APIs polled for each; and [`Contracts`],
//! the budgets with the prices and cost limits ([`prices`](super::prices)) that the metrics serve.

use serde::Deserialize;

use crate::config::error::ConfigError;
use crate::config::prices::{CostLimit, Prices};
use crate::wolkvox::{Api, catalogue};

/// One contracted quantity, exported as `wolkvox_billing_budget`.
#[derive(Clone, Debug, PartialEq)]
pub struct Budget {
    pub api: &'static Api,
    pub server: String,
    pub operation: String,
    pub description: String,
    pub quantity: f64,
}

/// What the config file says the operations contracted and pay: served beside the usage.
#[derive(Clone, Debug, Default)]
pub struct Contracts {
    pub budgets: Vec<Budget>,
    pub prices: Prices,
    pub cost_limits: Vec<CostLimit>,
}

/// A `budgets:` entry as written; checked by [`check`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileBudget {
    api: String,
    server: Option<String>,
    operation: String,
    description: String,
    quantity: f64,
}

/// A configured server and the billing APIs polled for it: all a budget is checked against.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Polled<'a> {
    pub server: &'a str,
    pub apis: &'a [&'static Api],
}

impl Polled<'_> {
    /// `api` is polled for this server; if not, an error on `field` that says to add it there or
    /// drop `what` (a budget, a price).
    pub(crate) fn require(&self, api: &Api, field: String, what: &str) -> Result<(), ConfigError> {
        if self.apis.contains(&api) {
            return Ok(());
        }
        let polled: Vec<&str> = self.apis.iter().map(|api| api.name).collect();
        Err(ConfigError::new(
            field,
            format!(
                "{api} is not polled for server {} (its apis: {}): add it there or drop {what}",
                self.server,
                polled.join(", ")
            ),
        ))
    }
}

/// The server an entry names, or the only one; `field` names the entry's keys.
pub(crate) fn target_of<'a, 't>(
    server: Option<&str>,
    targets: &'a [Polled<'t>],
    field: &dyn Fn(&str) -> String,
) -> Result<&'a Polled<'t>, ConfigError> {
    match server {
        Some(server) => targets.iter().find(|t| t.server == server.trim()).ok_or_else(|| {
            ConfigError::new(field("server"), format!("{server:?} is not the server of any target"))
        }),
        None if targets.len() == 1 => Ok(&targets[0]),
        None => {
            Err(ConfigError::new(field("server"), "required when the file lists several targets"))
        }
    }
}

/// Every entry must name a polled API of a configured server, once, with a quantity of 0 or more.
pub(crate) fn check(
    entries: Vec<FileBudget>,
    targets: &[Polled<'_>],
) -> Result<Vec<Budget>, ConfigError> {
    let mut budgets: Vec<Budget> = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        let field = |key: &str| format!("budgets[{i}].{key}");
        let api = catalogue::find(&entry.api).map_err(|why| ConfigError::new(field("api"), why))?;
        let target = target_of(entry.server.as_deref(), targets, &field)?;
        target.require(api, field("api"), "the budget")?;
        if !(entry.quantity.is_finite() && entry.quantity >= 0.0) {
            return Err(ConfigError::new(
                field("quantity"),
                format!("{} is not a quantity of 0 or more", entry.quantity),
            ));
        }
        let budget = Budget {
            api,
            server: target.server.to_owned(),
            operation: entry.operation,
            description: entry.description,
            quantity: entry.quantity,
        };
        if let Some(first) = budgets.iter().position(|b| {
            (b.api, &b.server, &b.operation, &b.description)
                == (api, &budget.server, &budget.operation, &budget.description)
        }) {
            return Err(ConfigError::new(
                format!("budgets[{i}]"),
                format!("duplicate of budgets[{first}]"),
            ));
        }
        budgets.push(budget);
    }
    Ok(budgets)
}
