//! A token's ledger as one caller (an exporter's lane, a backfill) holds it: in memory only, or,
//! with a state directory, changed on disk under the token's lock, so that every process on that
//! directory decides from what the others did.
//!
//! The rules hold from memory when the directory fails. After a write that failed, the file lacks
//! what this process did: the file is then merged into what it holds (the more restrictive of
//! each), never taken in its place. A file that cannot be read (or locked) may be good: nothing is
//! decided on it until it can be.

use std::sync::Arc;
use std::time::Duration;

use crate::calls::admission::Ledger;
use crate::storage::Storage;

/// How soon a caller tries again a ledger it could not read (nothing is called meanwhile).
pub(crate) const UNREADABLE_RETRY: Duration = Duration::from_secs(2);

/// Says that the ledger's times were taken back by a clock step (`admission::undo_clock_step`).
pub(crate) fn warn_clock_step(token_name: &str, step: jiff::SignedDuration) {
    let step =
        humantime::format_duration(Duration::from_secs(step.as_secs().unsigned_abs())).to_string();
    tracing::warn!(
        token_name,
        step,
        "the wall clock was stepped back since the last calls were recorded: their times are taken back by as much, and every wait counts from now"
    );
}

pub struct TokenLedger {
    held: Held,
    /// The last read (and lock) of the file worked.
    readable: bool,
    token_name: String,
    storage: Option<Arc<Storage>>,
}

/// The ledger, and whether it holds changes that the file lacks (a write failed).
#[derive(Default)]
struct Held {
    ledger: Ledger,
    ahead_of_file: bool,
}

/// The state directory could not be read or locked: nothing was decided.
#[derive(Debug)]
pub struct Unavailable;

impl TokenLedger {
    pub fn new(ledger: Ledger, token_name: &str, storage: Option<Arc<Storage>>) -> TokenLedger {
        TokenLedger {
            held: Held { ledger, ahead_of_file: false },
            readable: true,
            token_name: token_name.to_owned(),
            storage,
        }
    }

    /// Whether the file holds all that this process did (None without a state directory).
    pub fn saved(&self) -> Option<bool> {
        self.storage.as_ref().map(|_| self.readable && !self.held.ahead_of_file)
    }

    pub fn token_name(&self) -> &str {
        &self.token_name
    }

    /// The ledger as last read or changed.
    pub fn get(&self) -> &Ledger {
        &self.held.ledger
    }

    /// Reads the ledger again, lets `change` edit it, and writes it back: a decision and the call
    /// it admits are one step that no other process can come between. Blocks on the lock and the
    /// write's fsync.
    pub fn update_blocking<R>(
        &mut self,
        change: impl FnOnce(&mut Ledger) -> R,
    ) -> Result<R, Unavailable> {
        let result = match &self.storage {
            None => Ok(change(&mut self.held.ledger)),
            Some(storage) => self.held.update(storage, &self.token_name, change),
        };
        self.readable = result.is_ok();
        result
    }

    /// [`Self::update_blocking`] off the async workers.
    pub async fn update<R: Send + 'static>(
        &mut self,
        change: impl FnOnce(&mut Ledger) -> R + Send + 'static,
    ) -> Result<R, Unavailable> {
        let Some(storage) = self.storage.clone() else { return Ok(change(&mut self.held.ledger)) };
        let (token_name, mut held) = (self.token_name.clone(), std::mem::take(&mut self.held));
        let (held, result) = tokio::task::spawn_blocking(move || {
            let result = held.update(&storage, &token_name, change);
            (held, result)
        })
        .await
        .expect("a ledger update does not panic");
        self.held = held;
        self.readable = result.is_ok();
        result
    }

    /// Records what happened (a call's end) whatever the directory does: changed on the file as
    /// [`Self::update`] does, or, when it cannot be read, in memory, to be merged into the file
    /// once it can.
    pub async fn record<R: Send + 'static>(
        &mut self,
        change: impl FnOnce(&mut Ledger) -> R + Clone + Send + 'static,
    ) -> R {
        match self.update(change.clone()).await {
            Ok(result) => result,
            Err(Unavailable) => {
                self.held.ahead_of_file = true;
                change(&mut self.held.ledger)
            }
        }
    }
}

impl Held {
    fn update<R>(
        &mut self,
        storage: &Storage,
        token_name: &str,
        change: impl FnOnce(&mut Ledger) -> R,
    ) -> Result<R, Unavailable> {
        // The storage counts and logs the failure; the caller only needs to know nothing was done.
        let _lock = storage.lock_token(token_name).map_err(|_| Unavailable)?;
        match storage.load_ledger(token_name).map_err(|_| Unavailable)? {
            Some(on_disk) if self.ahead_of_file => self.ledger.merge(&on_disk),
            Some(on_disk) => self.ledger = on_disk,
            // No file, or one set aside: what this process knows stands.
            None => {}
        }
        let before = self.ledger.clone();
        let result = change(&mut self.ledger);
        if self.ahead_of_file || self.ledger != before {
            self.ahead_of_file = !storage.save_ledger(token_name, &self.ledger);
        }
        Ok(result)
    }
}
