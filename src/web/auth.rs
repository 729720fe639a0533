//! Basic authentication against bcrypt hashes, as exporter-toolkit does it: a verified pair is
//! remembered so that a scrape does not pay a full bcrypt every time, and an unknown user is checked
//! against a dummy hash at the highest cost among the users, so that refusing it takes as long as
//! refusing a known one (give every user the same cost for that to hold exactly). Pairs not
//! verified before take turns at bcrypt, one at a time, so that a flood of guesses costs one core
//! and one request slot at most, and the scrapers already verified are served all along.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, header};
use base64::Engine;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Enough for every scraper of a fleet. Only a correct password gets in, so guesses never push a
/// good pair out; when full, further pairs are checked each time instead of being remembered.
const VERIFIED_ENTRIES: usize = 256;

/// bcrypt checks at once of pairs not verified before: one core at most (exporter-toolkit holds a
/// lock around bcrypt too), and the other left to the scrapes.
const BCRYPT_TURNS: usize = 1;

/// How long a request waits for its turn at bcrypt before it is answered 503 unchecked: it lets a
/// new scraper in among a flood of guesses, each of which then costs its sender a second, and is
/// short next to a scrape timeout. The wait holds no request slot.
const BCRYPT_TURN_WAIT: Duration = Duration::from_secs(1);

/// Why `basic_auth_users` cannot be used; each message names the field.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error(
        "basic_auth_users.{user}: not a bcrypt hash (make one with htpasswd -nBC 10 \"\" | tr -d ':\\n')"
    )]
    NotAHash { user: String },
    #[error("basic_auth_users: {0}")]
    Dummy(#[from] bcrypt::BcryptError),
}

/// What a request's credentials come to.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Refused,
    /// Not checked, for the reason given (the body of the 503 it gets).
    Busy(&'static str),
}

/// The turns at bcrypt, shared by every configuration the file is reloaded into.
#[derive(Clone)]
pub struct BcryptTurns {
    turns: Arc<Semaphore>,
    /// The server's request slots: a check is work like a request's and takes one while it runs.
    request_slots: Option<Arc<Semaphore>>,
    wait: Duration,
}

/// Held until the hash is checked, even if the request that asked for it is gone.
pub(crate) struct BcryptTurn {
    _turn: OwnedSemaphorePermit,
    _request_slot: Option<OwnedSemaphorePermit>,
}

impl BcryptTurns {
    pub fn new(request_slots: Option<Arc<Semaphore>>) -> BcryptTurns {
        BcryptTurns {
            turns: Arc::new(Semaphore::new(BCRYPT_TURNS)),
            request_slots,
            wait: BCRYPT_TURN_WAIT,
        }
    }

    /// The next turn, first come first served, with a request slot for it.
    async fn take(&self) -> Result<BcryptTurn, &'static str> {
        let turn = tokio::time::timeout(self.wait, self.turns.clone().acquire_owned())
            .await
            .map_err(|_| "Too many password checks at once\n")?
            .expect("the semaphore is never closed");
        let request_slot = match &self.request_slots {
            Some(slots) => Some(
                slots.clone().try_acquire_owned().map_err(|_| "Too many concurrent requests\n")?,
            ),
            None => None,
        };
        Ok(BcryptTurn { _turn: turn, _request_slot: request_slot })
    }
}

/// A user and password as sent in an `Authorization: Basic` header.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Credentials {
    user: String,
    password: String,
}

pub struct Users {
    hashes: BTreeMap<String, String>,
    /// A hash of nothing anyone knows, at the highest cost of the configured ones.
    dummy: String,
    /// Pairs that matched their user's hash; in memory only, like exporter-toolkit's cache.
    /// Failures are not remembered: a guess is not worth a place, and a wrong pair sent again
    /// costs one more turn at bcrypt, no more.
    verified: Mutex<HashSet<Credentials>>,
}

impl Users {
    pub fn none() -> Users {
        Users {
            hashes: BTreeMap::new(),
            dummy: String::new(),
            verified: Mutex::new(HashSet::new()),
        }
    }

    pub fn new(hashes: BTreeMap<String, String>) -> Result<Users, UsersError> {
        let mut highest_cost = 0;
        for (user, hash) in &hashes {
            let not_a_hash = |_| UsersError::NotAHash { user: user.clone() };
            let parts: bcrypt::HashParts = hash.parse().map_err(not_a_hash)?;
            // A hash that parses but cannot be checked (a bad salt) would refuse that user for ever.
            bcrypt::verify("", hash).map_err(not_a_hash)?;
            highest_cost = highest_cost.max(parts.get_cost());
        }
        let dummy = if hashes.is_empty() {
            String::new()
        } else {
            bcrypt::hash(fastrand::u64(..).to_string(), highest_cost)?
        };
        Ok(Users { hashes, dummy, verified: Mutex::new(HashSet::new()) })
    }

    pub fn enabled(&self) -> bool {
        !self.hashes.is_empty()
    }

    pub fn names(&self) -> Vec<&str> {
        self.hashes.keys().map(String::as_str).collect()
    }

    /// Whether the request carries the credentials of a configured user: at once if they were
    /// verified before, else after a turn at bcrypt.
    pub async fn check(&self, headers: &HeaderMap, turns: &BcryptTurns) -> Verdict {
        let Some(credentials) = credentials(headers) else { return Verdict::Refused };
        if self.verified.lock().expect("no panic while holding the lock").contains(&credentials) {
            return Verdict::Allowed;
        }
        let turn = match turns.take().await {
            Ok(turn) => turn,
            Err(why) => return Verdict::Busy(why),
        };
        let (hash, known) = match self.hashes.get(&credentials.user) {
            Some(hash) => (hash.clone(), true),
            None => (self.dummy.clone(), false),
        };
        let password = credentials.password.clone();
        // bcrypt costs tens of milliseconds of CPU on purpose: keep it off the async workers. The
        // turn ends with the check, not with the request, which its client can drop.
        let matches = tokio::task::spawn_blocking(move || {
            let matches = bcrypt::verify(password, &hash).unwrap_or(false);
            drop(turn);
            matches
        })
        .await
        .unwrap_or(false);
        if !(known && matches) {
            return Verdict::Refused;
        }
        let mut verified = self.verified.lock().expect("no panic while holding the lock");
        if verified.len() < VERIFIED_ENTRIES {
            verified.insert(credentials);
        }
        Verdict::Allowed
    }

    /// Takes over the pairs `previous` verified whose user kept the same hash, so that a reload (a
    /// renewed certificate) does not send every scraper back to wait for a turn at bcrypt.
    pub fn keep_verified_from(&self, previous: &Users) {
        // Collected first, so that one lock is held at a time.
        let kept: Vec<Credentials> = previous
            .verified
            .lock()
            .expect("no panic while holding the lock")
            .iter()
            .filter(|c| self.hashes.get(&c.user) == previous.hashes.get(&c.user))
            .cloned()
            .collect();
        let mut verified = self.verified.lock().expect("no panic while holding the lock");
        let room = VERIFIED_ENTRIES.saturating_sub(verified.len());
        verified.extend(kept.into_iter().take(room));
    }
}

/// The user and password of an `Authorization: Basic` header.
fn credentials(headers: &HeaderMap) -> Option<Credentials> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some(Credentials { user: user.to_owned(), password: password.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        headers.insert(header::AUTHORIZATION, format!("Basic {encoded}").parse().unwrap());
        headers
    }

    fn prometheus(password: &str) -> Users {
        Users::new(BTreeMap::from([("prometheus".to_owned(), bcrypt::hash(password, 4).unwrap())]))
            .unwrap()
    }

    /// Turns that are all taken: only pairs verified before get an answer.
    async fn no_turn_left() -> (BcryptTurns, BcryptTurn) {
        let turns = BcryptTurns { wait: Duration::ZERO, ..BcryptTurns::new(None) };
        let taken = turns.take().await.unwrap();
        (turns, taken)
    }

    #[tokio::test]
    async fn verifies_known_users_and_refuses_the_rest() {
        let users = prometheus("s3cret");
        let turns = BcryptTurns::new(None);
        assert_eq!(users.check(&basic("prometheus", "s3cret"), &turns).await, Verdict::Allowed);
        assert_eq!(users.check(&basic("prometheus", "wrong"), &turns).await, Verdict::Refused);
        assert_eq!(users.check(&basic("stranger", "s3cret"), &turns).await, Verdict::Refused);
        assert_eq!(users.check(&HeaderMap::new(), &turns).await, Verdict::Refused);
        let mut bearer = HeaderMap::new();
        bearer.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(users.check(&bearer, &turns).await, Verdict::Refused);

        // Verified once, let in without a turn at bcrypt; never verified, not checked at all.
        let (no_turn, _taken) = no_turn_left().await;
        assert_eq!(users.check(&basic("prometheus", "s3cret"), &no_turn).await, Verdict::Allowed);
        assert!(matches!(
            users.check(&basic("prometheus", "guess"), &no_turn).await,
            Verdict::Busy(_)
        ));
    }

    #[tokio::test]
    async fn wrong_guesses_never_push_out_a_verified_pair() {
        let users = prometheus("s3cret");
        let turns = BcryptTurns::new(None);
        assert_eq!(users.check(&basic("prometheus", "s3cret"), &turns).await, Verdict::Allowed);
        for guess in 0..2 * VERIFIED_ENTRIES {
            assert_eq!(
                users.check(&basic("prometheus", &format!("guess-{guess}")), &turns).await,
                Verdict::Refused
            );
        }
        let (no_turn, _taken) = no_turn_left().await;
        assert_eq!(users.check(&basic("prometheus", "s3cret"), &no_turn).await, Verdict::Allowed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_check_waits_for_its_turn_but_not_past_the_wait() {
        let users = Arc::new(prometheus("s3cret"));
        let turns = BcryptTurns::new(None);
        let taken = turns.take().await.unwrap();
        let waiting = tokio::spawn({
            let (users, turns) = (users.clone(), turns.clone());
            async move { users.check(&basic("prometheus", "s3cret"), &turns).await }
        });
        tokio::time::sleep(BCRYPT_TURN_WAIT / 2).await;
        drop(taken);
        assert_eq!(waiting.await.unwrap(), Verdict::Allowed, "the turn freed within the wait");

        let _taken = turns.take().await.unwrap();
        let verdict = users.check(&basic("prometheus", "another"), &turns).await;
        assert_eq!(verdict, Verdict::Busy("Too many password checks at once\n"));
    }

    #[tokio::test]
    async fn a_check_needs_a_free_request_slot() {
        let users = prometheus("s3cret");
        let slots = Arc::new(Semaphore::new(1));
        let turns = BcryptTurns::new(Some(slots.clone()));
        let _every_slot = slots.clone().try_acquire_owned().unwrap();
        let verdict = users.check(&basic("prometheus", "s3cret"), &turns).await;
        assert_eq!(verdict, Verdict::Busy("Too many concurrent requests\n"));
    }

    #[tokio::test]
    async fn a_reload_keeps_the_pairs_verified_for_unchanged_hashes_only() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let before = Users::new(BTreeMap::from([
            ("prometheus".to_owned(), hash.clone()),
            ("grafana".to_owned(), hash.clone()),
        ]))
        .unwrap();
        let turns = BcryptTurns::new(None);
        for user in ["prometheus", "grafana"] {
            assert_eq!(before.check(&basic(user, "s3cret"), &turns).await, Verdict::Allowed);
        }
        // grafana's password changed (to the same text, but a new hash: a new salt).
        let after = Users::new(BTreeMap::from([
            ("prometheus".to_owned(), hash),
            ("grafana".to_owned(), bcrypt::hash("s3cret", 4).unwrap()),
        ]))
        .unwrap();
        after.keep_verified_from(&before);
        let (no_turn, _taken) = no_turn_left().await;
        assert_eq!(after.check(&basic("prometheus", "s3cret"), &no_turn).await, Verdict::Allowed);
        assert!(matches!(
            after.check(&basic("grafana", "s3cret"), &no_turn).await,
            Verdict::Busy(_)
        ));
    }

    #[test]
    fn a_value_that_is_not_a_bcrypt_hash_is_refused_with_the_user_named() {
        let error = Users::new(BTreeMap::from([("alice".to_owned(), "plaintext".to_owned())]))
            .err()
            .unwrap()
            .to_string();
        assert!(error.starts_with("basic_auth_users.alice:"), "{error}");
    }
}
