//! A token's ledger as one caller (an exporter's lane, a backfill) holds it: in memory only, or,
//! with a state directory, changed on disk under the token's lock, so that every process on that
//! directory decides from what the others did.

use std::sync::Arc;

use crate::admission::Ledger;
use crate::storage::Storage;

pub struct TokenLedger {
    ledger: Ledger,
    token_name: String,
    storage: Option<Arc<Storage>>,
}

impl TokenLedger {
    pub fn new(ledger: Ledger, token_name: &str, storage: Option<Arc<Storage>>) -> TokenLedger {
        TokenLedger { ledger, token_name: token_name.to_owned(), storage }
    }

    /// The ledger as last read or changed.
    pub fn get(&self) -> &Ledger {
        &self.ledger
    }

    /// Reads the ledger again, lets `change` edit it, and writes it back: a decision and the call
    /// it admits are one step that no other process can come between. Off the async workers: the
    /// lock may wait and the write ends with an fsync.
    pub async fn update<R: Send + 'static>(&mut self, change: impl FnOnce(&mut Ledger) -> R + Send + 'static) -> R {
        let Some(storage) = self.storage.clone() else { return change(&mut self.ledger) };
        let (token_name, mut ledger) = (self.token_name.clone(), std::mem::take(&mut self.ledger));
        let (ledger, result) = tokio::task::spawn_blocking(move || {
            let result = storage.update_ledger(&token_name, &mut ledger, change);
            (ledger, result)
        })
        .await
        .expect("a ledger update does not panic");
        self.ledger = ledger;
        result
    }
}
