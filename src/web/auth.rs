//! Basic authentication against bcrypt hashes, as exporter-toolkit does it: a verified pair is
//! cached so that a scrape does not pay a full bcrypt every time, and an unknown user is checked
//! against a dummy hash at the highest cost among the users, so that refusing it takes as long as
//! refusing a known one (give every user the same cost for that to hold exactly).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use axum::http::{HeaderMap, header};
use base64::Engine;

/// Enough for every scraper of a fleet; past it the cache starts over.
const CACHE_ENTRIES: usize = 256;

/// Why `basic_auth_users` cannot be used; each message names the field.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("basic_auth_users.{user}: not a bcrypt hash (make one with htpasswd -nBC 10 \"\" | tr -d ':\\n')")]
    NotAHash { user: String },
    #[error("basic_auth_users: {0}")]
    Dummy(#[from] bcrypt::BcryptError),
}

pub struct Users {
    hashes: BTreeMap<String, String>,
    /// A hash of nothing anyone knows, at the highest cost of the configured ones.
    dummy: String,
    /// (user, password) -> verdict. Kept in memory only, like exporter-toolkit's cache.
    verdicts: Mutex<HashMap<(String, String), bool>>,
}

impl Users {
    pub fn none() -> Users {
        Users { hashes: BTreeMap::new(), dummy: String::new(), verdicts: Mutex::new(HashMap::new()) }
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
        let dummy = if hashes.is_empty() { String::new() } else { bcrypt::hash(fastrand::u64(..).to_string(), highest_cost)? };
        Ok(Users { hashes, dummy, verdicts: Mutex::new(HashMap::new()) })
    }

    pub fn enabled(&self) -> bool {
        !self.hashes.is_empty()
    }

    pub fn names(&self) -> Vec<&str> {
        self.hashes.keys().map(String::as_str).collect()
    }

    /// True when the request carries the credentials of a configured user.
    pub async fn allows(&self, headers: &HeaderMap) -> bool {
        let Some((user, password)) = credentials(headers) else { return false };
        let key = (user, password);
        if let Some(verdict) = self.verdicts.lock().expect("no panic while holding the lock").get(&key) {
            return *verdict;
        }
        let (hash, known) = match self.hashes.get(&key.0) {
            Some(hash) => (hash.clone(), true),
            None => (self.dummy.clone(), false),
        };
        let password = key.1.clone();
        // bcrypt costs tens of milliseconds of CPU on purpose: keep it off the async workers.
        let matches = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false)).await.unwrap_or(false);
        let verdict = known && matches;
        let mut verdicts = self.verdicts.lock().expect("no panic while holding the lock");
        if verdicts.len() >= CACHE_ENTRIES {
            verdicts.clear();
        }
        verdicts.insert(key, verdict);
        verdict
    }
}

/// The user and password of an `Authorization: Basic` header.
fn credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        headers.insert(header::AUTHORIZATION, format!("Basic {encoded}").parse().unwrap());
        headers
    }

    #[tokio::test]
    async fn verifies_known_users_and_refuses_the_rest() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let users = Users::new(BTreeMap::from([("prometheus".to_owned(), hash)])).unwrap();
        assert!(users.allows(&basic("prometheus", "s3cret")).await);
        assert!(users.allows(&basic("prometheus", "s3cret")).await, "cached");
        assert!(!users.allows(&basic("prometheus", "wrong")).await);
        assert!(!users.allows(&basic("stranger", "s3cret")).await);
        assert!(!users.allows(&HeaderMap::new()).await);
        let mut bearer = HeaderMap::new();
        bearer.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert!(!users.allows(&bearer).await);
    }

    #[test]
    fn a_value_that_is_not_a_bcrypt_hash_is_refused_with_the_user_named() {
        let error = Users::new(BTreeMap::from([("alice".to_owned(), "plaintext".to_owned())])).err().unwrap().to_string();
        assert!(error.starts_with("basic_auth_users.alice:"), "{error}");
    }
}
