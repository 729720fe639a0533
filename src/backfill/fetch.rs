//! One month's answer as dated rows: the call's window (the whole month in the target's zone, the
//! current one up to now), the rows the API dated inside it, and the past months the state
//! directory keeps so that a second run calls only for what is missing.

use crate::backfill::plan::Month;
use crate::clock::Clock;
use crate::config::Target;
use crate::storage::Storage;
use crate::wolkvox::client::{Call, Request};
use crate::wolkvox::model::DatedRow;
use crate::wolkvox::window::Window;
use crate::wolkvox::{Client, Failure};

/// One month's call: the whole month in the target's zone (the current one up to now).
pub(super) async fn fetch_month(
    client: &Client,
    target: &Target,
    month: &Month,
    clock: &Clock,
) -> Result<Vec<DatedRow>, Failure> {
    let now = clock.now().to_zoned(target.timezone.clone());
    let first = month.month.to_datetime(jiff::civil::time(0, 0, 0, 0));
    let last = if month.current {
        now.datetime()
    } else {
        month.month.last_of_month().to_datetime(jiff::civil::time(23, 59, 59, 0))
    };
    let window = Window::between(first, last);
    let request = Request {
        base_url: &target.base_url,
        server: &target.server,
        call: Call::Billing { api: month.api.name, window: &window },
        token: &target.token,
        timeout: target.timeout,
        max_response_bytes: target.max_response_bytes,
        now: now.timestamp(),
    };
    let answer = client.fetch_rows(&request).await?;
    let (undated, mut rows) = (answer.undated, answer.rows);
    let before = rows.len();
    rows.retain(|row| window.contains(row.at.date()));
    let outside = before - rows.len();
    if outside > 0 {
        tracing::warn!(server = %target.server, api = month.api.name, month = %month.month.strftime("%Y-%m"), rows = outside, "rows dated outside the window asked for were not placed (the API ignored the window?)");
    }
    if undated > 0 {
        tracing::warn!(server = %target.server, api = month.api.name, month = %month.month.strftime("%Y-%m"), rows = undated, "rows whose date could not be read were skipped");
    }
    Ok(rows)
}

/// A past month kept by an earlier run; None if there is none, or one that cannot be used (set
/// aside by the storage, with a warning).
pub(super) fn read_kept(
    storage: &Storage,
    targets: &[Target],
    month: &Month,
) -> Option<Vec<DatedRow>> {
    storage.load_kept_month(&targets[month.target].server, month.api.name, month.month)
}

/// Keeps a past month's rows, so that the next run need not call for it.
pub(super) fn keep(storage: &Storage, targets: &[Target], month: &Month, rows: &[DatedRow]) {
    storage.save_kept_month(&targets[month.target].server, month.api.name, month.month, rows);
}
