//! Prices and cost limits: what Wolkvox charges per unit of each billing API, from the config
//! file's `prices:`, and the monthly money limits of `cost_limits:`; checked against the servers
//! and the APIs polled for each, like the budgets ([`contracts`](super::contracts)).
//!
//! A price names a product (server, API, `description`) and optionally one operation; the most
//! specific entry applies to a series. [`Prices`] indexes them once, when the configuration is
//! read, so that a render finds each series' price with two map lookups.

use std::collections::HashMap;

use serde::Deserialize;

use crate::config::contracts::{Polled, target_of};
use crate::config::error::ConfigError;
use crate::wolkvox::catalogue::Charge;
use crate::wolkvox::{Api, catalogue};

/// One price, exported as `wolkvox_unit_price` for each series it applies to.
#[derive(Clone, Debug, PartialEq)]
pub struct Price {
    pub api: &'static Api,
    pub server: String,
    /// None: every operation of the product that no entry names.
    pub operation: Option<String>,
    pub description: String,
    pub unit_price: f64,
    /// ISO 4217, three capital letters.
    pub currency: String,
    /// The entry's `charge`, else the API's.
    pub charge: Charge,
}

impl Price {
    /// The estimated cost of a series whose month so far peaked at `max` and ends at `latest`.
    pub fn cost(&self, latest: f64, max: f64) -> f64 {
        self.unit_price
            * match self.charge {
                Charge::Peak => max,
                Charge::Latest => latest,
            }
    }
}

/// A monthly money limit of a server, exported as `wolkvox_cost_limit`.
#[derive(Clone, Debug, PartialEq)]
pub struct CostLimit {
    pub server: String,
    pub currency: String,
    pub monthly: f64,
}

/// A `prices:` entry as written; checked by [`check`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FilePrice {
    api: String,
    server: Option<String>,
    operation: Option<String>,
    description: String,
    unit_price: f64,
    currency: String,
    charge: Option<String>,
}

/// A `cost_limits:` entry as written; checked by [`check`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileCostLimit {
    server: Option<String>,
    currency: String,
    monthly: f64,
}

/// The prices of one product (server, API, description): for every operation, and for some.
#[derive(Clone, Debug, Default)]
struct Product {
    every_operation: Option<usize>,
    by_operation: HashMap<String, usize>,
}

/// Every price, and an index from (server, API, description, operation) to the one that applies.
#[derive(Clone, Debug, Default)]
pub struct Prices {
    entries: Vec<Price>,
    /// server -> API name -> description -> its prices.
    index: HashMap<String, HashMap<&'static str, HashMap<String, Product>>>,
}

/// The prices of one server's API, for the lookups of its series.
#[derive(Clone, Copy)]
pub struct ApiPrices<'a> {
    entries: &'a [Price],
    products: &'a HashMap<String, Product>,
}

impl<'a> ApiPrices<'a> {
    /// The price of the series (operation, description): the entry naming the operation, else
    /// the product's entry for every operation, else none.
    pub fn of(&self, operation: &str, description: &str) -> Option<&'a Price> {
        let product = self.products.get(description)?;
        let i = product.by_operation.get(operation).copied().or(product.every_operation)?;
        Some(&self.entries[i])
    }
}

impl Prices {
    pub fn new(entries: Vec<Price>) -> Prices {
        let mut index: HashMap<String, HashMap<&'static str, HashMap<String, Product>>> =
            HashMap::new();
        for (i, price) in entries.iter().enumerate() {
            let product = index
                .entry(price.server.clone())
                .or_default()
                .entry(price.api.name)
                .or_default()
                .entry(price.description.clone())
                .or_default();
            match &price.operation {
                Some(operation) => {
                    product.by_operation.insert(operation.clone(), i);
                }
                None => product.every_operation = Some(i),
            }
        }
        Prices { entries, index }
    }

    pub fn entries(&self) -> &[Price] {
        &self.entries
    }

    /// The prices of `server`'s `api`; None when none is priced.
    pub fn for_api(&self, server: &str, api: &Api) -> Option<ApiPrices<'_>> {
        let products = self.index.get(server)?.get(api.name)?;
        Some(ApiPrices { entries: &self.entries, products })
    }
}

/// ISO 4217: three capital ASCII letters.
fn currency(text: &str, field: String) -> Result<String, ConfigError> {
    if text.len() == 3 && text.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(text.to_owned())
    } else {
        Err(ConfigError::new(
            field,
            format!("{text:?} is not an ISO 4217 currency code (three capital letters, as USD)"),
        ))
    }
}

/// Every price must name a polled API of a configured server, once per (server, API,
/// description, operation), with a finite unit price of 0 or more, a currency code and a known
/// charge; every cost limit a configured server, once per currency, with a finite amount over 0.
pub(crate) fn check(
    prices: Vec<FilePrice>,
    cost_limits: Vec<FileCostLimit>,
    targets: &[Polled<'_>],
) -> Result<(Prices, Vec<CostLimit>), ConfigError> {
    let mut checked: Vec<Price> = Vec::with_capacity(prices.len());
    for (i, entry) in prices.into_iter().enumerate() {
        let field = |key: &str| format!("prices[{i}].{key}");
        let api = catalogue::find(&entry.api).map_err(|why| ConfigError::new(field("api"), why))?;
        let target = target_of(entry.server.as_deref(), targets, &field)?;
        target.require(api, field("api"), "the price")?;
        if !(entry.unit_price.is_finite() && entry.unit_price >= 0.0) {
            return Err(ConfigError::new(
                field("unit_price"),
                format!("{} is not a price of 0 or more", entry.unit_price),
            ));
        }
        let currency = currency(&entry.currency, field("currency"))?;
        let charge = match entry.charge.as_deref() {
            None => api.charge,
            Some(text) => Charge::parse(text).ok_or_else(|| {
                ConfigError::new(
                    field("charge"),
                    format!("{text:?} is not peak (the month's highest value) or latest"),
                )
            })?,
        };
        let price = Price {
            api,
            server: target.server.to_owned(),
            operation: entry.operation,
            description: entry.description,
            unit_price: entry.unit_price,
            currency,
            charge,
        };
        if let Some(first) = checked.iter().position(|p| {
            (p.api, &p.server, &p.description, &p.operation)
                == (api, &price.server, &price.description, &price.operation)
        }) {
            return Err(ConfigError::new(
                format!("prices[{i}]"),
                format!("duplicate of prices[{first}]"),
            ));
        }
        checked.push(price);
    }
    let mut limits: Vec<CostLimit> = Vec::with_capacity(cost_limits.len());
    for (i, entry) in cost_limits.into_iter().enumerate() {
        let field = |key: &str| format!("cost_limits[{i}].{key}");
        let target = target_of(entry.server.as_deref(), targets, &field)?;
        let currency = currency(&entry.currency, field("currency"))?;
        if !(entry.monthly.is_finite() && entry.monthly > 0.0) {
            return Err(ConfigError::new(
                field("monthly"),
                format!("{} is not an amount over 0", entry.monthly),
            ));
        }
        let limit =
            CostLimit { server: target.server.to_owned(), currency, monthly: entry.monthly };
        if let Some(first) =
            limits.iter().position(|l| (&l.server, &l.currency) == (&limit.server, &limit.currency))
        {
            return Err(ConfigError::new(
                format!("cost_limits[{i}]"),
                format!(
                    "duplicate of cost_limits[{first}] (server {}, {})",
                    limit.server, limit.currency
                ),
            ));
        }
        limits.push(limit);
    }
    Ok((Prices::new(checked), limits))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(server: &str, operation: Option<&str>, unit_price: f64) -> Price {
        Price {
            api: catalogue::gamification(),
            server: server.to_owned(),
            operation: operation.map(str::to_owned),
            description: "Gamification".to_owned(),
            unit_price,
            currency: "USD".to_owned(),
            charge: Charge::Peak,
        }
    }

    #[test]
    fn the_entry_naming_the_operation_wins_over_the_products_and_servers_stay_apart() {
        let prices = Prices::new(vec![
            price("0042", None, 2.5),
            price("0042", Some("ventas"), 3.0),
            price("0043", Some("soporte"), 4.0),
        ]);
        let gamification = catalogue::gamification();
        let here = prices.for_api("0042", gamification).unwrap();
        assert_eq!(here.of("ventas", "Gamification").map(|p| p.unit_price), Some(3.0));
        assert_eq!(here.of("soporte", "Gamification").map(|p| p.unit_price), Some(2.5));
        assert_eq!(here.of("ventas", "Other product"), None);
        let there = prices.for_api("0043", gamification).unwrap();
        assert_eq!(there.of("soporte", "Gamification").map(|p| p.unit_price), Some(4.0));
        assert_eq!(there.of("ventas", "Gamification"), None, "no price for every operation there");
        assert!(prices.for_api("0044", gamification).is_none());
        assert!(prices.for_api("0042", catalogue::find("chat_licenses").unwrap()).is_none());
    }

    #[test]
    fn the_cost_is_the_price_times_the_peak_or_the_latest_row() {
        let peak = price("0042", None, 2.5);
        assert_eq!(peak.cost(4.0, 10.0), 25.0);
        let latest = Price { charge: Charge::Latest, ..peak };
        assert_eq!(latest.cost(4.0, 10.0), 10.0);
    }

    fn polled() -> Vec<Polled<'static>> {
        static APIS: std::sync::LazyLock<[&'static Api; 2]> = std::sync::LazyLock::new(|| {
            [catalogue::gamification(), catalogue::find("ivr_minutes").unwrap()]
        });
        vec![Polled { server: "0042", apis: &*APIS }]
    }

    fn file_price(api: &str, charge: Option<&str>) -> FilePrice {
        FilePrice {
            api: api.to_owned(),
            server: None,
            operation: None,
            description: "d".to_owned(),
            unit_price: 1.0,
            currency: "COP".to_owned(),
            charge: charge.map(str::to_owned),
        }
    }

    #[test]
    fn the_charge_defaults_to_the_apis_and_an_entry_may_set_it() {
        let (prices, _) = check(
            vec![
                file_price("gamification", None),
                file_price("ivr_minutes", None),
                FilePrice {
                    operation: Some("ventas".into()),
                    ..file_price("gamification", Some("latest"))
                },
            ],
            vec![],
            &polled(),
        )
        .unwrap();
        let charges: Vec<Charge> = prices.entries().iter().map(|p| p.charge).collect();
        assert_eq!(charges, [Charge::Peak, Charge::Latest, Charge::Latest]);
        assert_eq!(prices.entries()[0].server, "0042", "the only server");
    }
}
