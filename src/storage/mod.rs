//! The state directory (`--storage.path`): what a restart must not forget. Per token, named by its
//! token name (never the token): its call ledger, written before and after every call so that a
//! crash during a call is remembered as a call in flight; and the last good answer of each of its
//! jobs, written after each success, so that a restart serves them at once. And, for the backfill,
//! each past month it fetched (`backfill/`), so that a second run calls only for what is missing.
//!
//! Every file is versioned JSON, written atomically (temporary file, fsync, rename, fsync of the
//! directory), mode 0600 in a 0700 directory, never through a link (see `files`). A file read
//! whole and found unusable is set aside with one warning and the token starts clean (a kept month
//! is fetched again); a file that cannot be read is kept, and its token waits (`token_ledger`); a
//! write that fails is counted and logged at most once a minute, and polling goes on with the rules
//! held from memory.
//!
//! Locks: `lock` keeps a second exporter out, `backfill.lock` a second backfill; an exporter and a
//! backfill share the directory, and each change of a token's ledger is made under that token's
//! lock on the ledger as the file holds it, so that the two take turns by the same rules.

pub(crate) mod read_file;

pub(crate) mod files;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use jiff::civil::Date;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::calls::admission::Ledger;
use crate::clock::Clock;
use crate::wolkvox::Report;
use crate::wolkvox::model::{DatedRow, Series};
use files::Contents;

/// The format of every file; a file of another version is set aside.
pub const VERSION: u32 = 1;
/// Held by the exporter, for its life.
const EXPORTER_LOCK: &str = "lock";
/// Held by a backfill, for its life.
const BACKFILL_LOCK: &str = "backfill.lock";
/// A backfill looking whether an exporter runs holds the exporter's lock for an instant: an
/// exporter starting then tries again for this long.
const LOCK_PATIENCE: Duration = Duration::from_secs(1);
/// Failures are logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(60);
/// The backfill's subdirectory, for the months it keeps.
const KEPT_MONTHS: &str = "backfill";

/// A kind of state file: the most of it read, whose it is, and what follows when one cannot be used.
struct Kind {
    limit: u64,
    /// What a file names to say whose it is ("token name").
    owner: &'static str,
    /// Said when one is set aside.
    unusable: &'static str,
    /// Said when one cannot be read.
    unreadable: &'static str,
}

/// Thousands of jobs fit in a small part of the bound.
const LEDGER: Kind = Kind {
    limit: 16 << 20,
    owner: "token name",
    unusable: "starting this token clean",
    unreadable: "the file is kept and no call is made until it can be read",
};
/// Millions of series.
const ANSWERS: Kind = Kind { limit: 512 << 20, ..LEDGER };
/// A month of one API's rows.
const KEPT_MONTH: Kind = Kind {
    limit: 512 << 20,
    owner: "server, API and month",
    unusable: "fetching the month again",
    unreadable: "the file is kept and the month fetched again",
};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("invalid configuration: --storage.path {}: {source}", path.display())]
    Unusable { path: PathBuf, source: io::Error },
    #[error("invalid configuration: --storage.path {}: in use by another {role} ({holder}); give each {role} its own path", path.display())]
    Locked { path: PathBuf, role: Role, holder: String },
}

/// Who opens the state directory: one of each may use it at a time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Role {
    Exporter,
    Backfill,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Exporter => "exporter",
            Role::Backfill => "backfill",
        })
    }
}

/// The last good answer of one job: the report the store serves, shared with it rather than
/// copied (at 60,000 series a copy is megabytes).
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub succeeded_at: Timestamp,
    pub report: Arc<Report>,
}

/// An answer as its file holds it: `S`, its series, owned when read and borrowed when written.
#[derive(Serialize, Deserialize)]
struct AnswerFields<S> {
    succeeded_at: Timestamp,
    rows: usize,
    series: S,
}

impl Serialize for Answer {
    fn serialize<W: serde::Serializer>(&self, serializer: W) -> Result<W::Ok, W::Error> {
        AnswerFields {
            succeeded_at: self.succeeded_at,
            rows: self.report.rows,
            series: &self.report.series,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Answer {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Answer, D::Error> {
        let AnswerFields { succeeded_at, rows, series } =
            AnswerFields::<Vec<Series>>::deserialize(deserializer)?;
        Ok(Answer { succeeded_at, report: Arc::new(Report { rows, series, skipped: Vec::new() }) })
    }
}

/// The ledger file: `L` is the ledger, owned when read and borrowed when written.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LedgerFile<L> {
    version: u32,
    token_name: String,
    ledger: L,
}

/// The answers file, likewise: written from a borrowed map, never a copy of it.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswersFile<A> {
    version: u32,
    token_name: String,
    answers: A,
}

/// A past month the backfill fetched, likewise: its usable rows, dates read.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeptMonthFile<R> {
    version: u32,
    server: String,
    api: String,
    /// `YYYY-MM`.
    month: String,
    rows: R,
}

/// Only the version, read when a file does not parse, to name a newer format as such.
#[derive(Deserialize)]
struct Versioned {
    version: u32,
}

/// Failures of the state directory since start-up.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StorageFailures {
    pub writes: u64,
    /// Reads and locks: the file may be good, so it was kept and the read is tried again.
    pub reads: u64,
}

pub struct Storage {
    dir: PathBuf,
    /// Dates the name of a file set aside.
    clock: Clock,
    /// Held for the life of the process: the OS releases it however the process ends.
    _lock: File,
    write_failures: AtomicU64,
    read_failures: AtomicU64,
    last_logged: Mutex<Option<Instant>>,
}

impl Storage {
    /// Creates the directory if needed (0700), checks that it is a private directory and writable,
    /// and takes the role's lock.
    pub fn open(dir: &Path, role: Role, clock: Clock) -> Result<Storage, StorageError> {
        let unusable = |source| StorageError::Unusable { path: dir.to_owned(), source };
        let dir = &files::private_directory(dir).map_err(unusable)?;
        let name = match role {
            Role::Exporter => EXPORTER_LOCK,
            Role::Backfill => BACKFILL_LOCK,
        };
        let mut lock =
            files::open_lock(&dir.join(name), &aside(&dir.join(name), &clock)).map_err(unusable)?;
        let patience = Instant::now() + LOCK_PATIENCE;
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(fs::TryLockError::WouldBlock)
                    if role == Role::Exporter && Instant::now() < patience =>
                {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(fs::TryLockError::WouldBlock) => {
                    let mut holder = String::new();
                    let _ = (&lock).take(256).read_to_string(&mut holder);
                    let holder = holder.trim();
                    let holder = if holder.is_empty() {
                        "a process that wrote no pid".to_owned()
                    } else {
                        holder.to_owned()
                    };
                    return Err(StorageError::Locked { path: dir.to_owned(), role, holder });
                }
                Err(fs::TryLockError::Error(error)) => return Err(unusable(error)),
            }
        }
        // The pid only says who holds the lock: a full disk must not keep the exporter down.
        if let Err(error) = lock.set_len(0).and_then(|()| {
            lock.write_all(format!("pid {} on {}\n", std::process::id(), hostname()).as_bytes())
        }) {
            tracing::warn!(path = %dir.display(), %error, "cannot write the pid into the lock file");
        }
        Ok(Storage {
            dir: dir.to_owned(),
            clock,
            _lock: lock,
            write_failures: AtomicU64::new(0),
            read_failures: AtomicU64::new(0),
            last_logged: Mutex::new(None),
        })
    }

    /// Whether an exporter holds this directory now (for a backfill, which then leaves it turns).
    pub fn exporter_running(&self) -> bool {
        let path = self.dir.join(EXPORTER_LOCK);
        let Ok(lock) = files::open_lock(&path, &aside(&path, &self.clock)) else { return false };
        matches!(lock.try_lock(), Err(fs::TryLockError::WouldBlock))
    }

    #[cfg(test)]
    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }

    /// What failed since start-up.
    pub fn failures(&self) -> StorageFailures {
        StorageFailures {
            writes: self.write_failures.load(Ordering::Relaxed),
            reads: self.read_failures.load(Ordering::Relaxed),
        }
    }

    /// The token's ledger: None when there is no file, or one that cannot be used (set aside); an
    /// error when it could not be read, which may pass (the file is left as it is).
    pub fn load_ledger(&self, token_name: &str) -> io::Result<Option<Ledger>> {
        let path = self.ledger_path(token_name);
        let file = self.read::<LedgerFile<Ledger>>(&path, &LEDGER, token_name, |f| {
            (f.version, f.token_name.clone())
        });
        file.map(|file| file.map(|f| f.ledger))
            .inspect_err(|error| self.count_read_failure(&path, &LEDGER, error))
    }

    /// The last good answers of the token's jobs, by job key (none if the file cannot be used or
    /// read: they come back with the next poll).
    pub fn load_answers(&self, token_name: &str) -> BTreeMap<String, Answer> {
        let path = self.answers_path(token_name);
        match self.read::<AnswersFile<BTreeMap<String, Answer>>>(&path, &ANSWERS, token_name, |f| {
            (f.version, f.token_name.clone())
        }) {
            Ok(file) => file.map(|f| f.answers).unwrap_or_default(),
            Err(error) => {
                self.count_read_failure(&path, &ANSWERS, &error);
                BTreeMap::new()
            }
        }
    }

    /// Writes the token's ledger; false (counted and logged) when the write failed.
    pub fn save_ledger(&self, token_name: &str, ledger: &Ledger) -> bool {
        let file = LedgerFile { version: VERSION, token_name: token_name.to_owned(), ledger };
        self.write(&self.ledger_path(token_name), &file)
    }

    /// Takes the token's lock, held until the guard is dropped: each change of the ledger is made
    /// under it, on the ledger as the file holds it, so that an exporter and a backfill on this
    /// directory take turns. Blocks while the other process holds it.
    pub fn lock_token(&self, token_name: &str) -> io::Result<File> {
        let path = self.dir.join(format!("token-{token_name}.lock"));
        files::open_lock(&path, &aside(&path, &self.clock))
            .and_then(|lock| lock.lock().map(|()| lock))
            .inspect_err(|error| self.count_read_failure(&path, &LEDGER, error))
    }

    pub fn save_answers(&self, token_name: &str, answers: &BTreeMap<String, Answer>) {
        let file = AnswersFile { version: VERSION, token_name: token_name.to_owned(), answers };
        self.write(&self.answers_path(token_name), &file);
    }

    /// A past month of `server`'s `api` the backfill kept: None when there is none, or one that
    /// cannot be used (set aside) or read; the backfill then fetches it again.
    pub fn load_kept_month(&self, server: &str, api: &str, month: Date) -> Option<Vec<DatedRow>> {
        let month = month.strftime("%Y-%m").to_string();
        let path = self.kept_month_path(server, api, &month);
        // Not read through a link in the subdirectory's place, which a write would refuse too.
        if let Some(error) = path.parent().and_then(|dir| files::existing_subdirectory(dir).err()) {
            self.count_read_failure(&path, &KEPT_MONTH, &error);
            return None;
        }
        let identity = |f: &KeptMonthFile<Vec<DatedRow>>| {
            (f.version, kept_month_name(&f.server, &f.api, &f.month))
        };
        match self.read(&path, &KEPT_MONTH, &kept_month_name(server, api, &month), identity) {
            Ok(file) => file.map(|f| f.rows),
            Err(error) => {
                self.count_read_failure(&path, &KEPT_MONTH, &error);
                None
            }
        }
    }

    /// Keeps a past month's rows, in a subdirectory made if needed, so that the next backfill need
    /// not call for it.
    pub fn save_kept_month(&self, server: &str, api: &str, month: Date, rows: &[DatedRow]) {
        let month = month.strftime("%Y-%m").to_string();
        let path = self.kept_month_path(server, api, &month);
        if let Some(dir) = path.parent()
            && let Err(error) = files::subdirectory(dir)
        {
            self.count_failure(dir, &error);
            return;
        }
        let file = KeptMonthFile {
            version: VERSION,
            server: server.to_owned(),
            api: api.to_owned(),
            month,
            rows,
        };
        self.write(&path, &file);
    }

    fn ledger_path(&self, token_name: &str) -> PathBuf {
        self.dir.join(format!("token-{token_name}.ledger.json"))
    }

    fn answers_path(&self, token_name: &str) -> PathBuf {
        self.dir.join(format!("token-{token_name}.answers.json"))
    }

    /// One file per server, API and month (`YYYY-MM`).
    fn kept_month_path(&self, server: &str, api: &str, month: &str) -> PathBuf {
        self.dir.join(KEPT_MONTHS).join(format!("{server}-{api}-{month}.json"))
    }

    /// A state file: Ok(None) when missing or unusable (then set aside), an error when it could not
    /// be read. Only a file read whole is judged: an error reading it says nothing of its contents.
    /// `identity` gives a file's version and whose it is, to be `wanted`.
    fn read<T: DeserializeOwned>(
        &self,
        path: &Path,
        kind: &Kind,
        wanted: &str,
        identity: impl Fn(&T) -> (u32, String),
    ) -> io::Result<Option<T>> {
        let text = match files::read_bounded(path, kind.limit)? {
            Contents::Missing => return Ok(None),
            Contents::Unusable(why) => return Ok(self.set_aside(path, &why, kind)),
            Contents::Read(text) => text,
        };
        // One parse when the file is good; the version is looked at only to say why one is not.
        let problem = match serde_json::from_slice::<T>(&text) {
            Ok(file) => match identity(&file) {
                (version, _) if version != VERSION => {
                    format!("has format version {version}, this exporter reads version {VERSION}")
                }
                (_, name) if name != wanted => {
                    format!("belongs to {} {name:?}, not {wanted:?}", kind.owner)
                }
                _ => return Ok(Some(file)),
            },
            Err(error) => match serde_json::from_slice::<Versioned>(&text) {
                Ok(Versioned { version }) if version != VERSION => {
                    format!("has format version {version}, this exporter reads version {VERSION}")
                }
                Ok(_) => format!("is damaged: {error}"),
                Err(error) => format!("is not a state file of this exporter: {error}"),
            },
        };
        Ok(self.set_aside(path, &problem, kind))
    }

    /// Moves a file that cannot be used out of the way, kept for inspection (a link is moved as a
    /// link: what it points at is left alone).
    fn set_aside<T>(&self, path: &Path, problem: &str, kind: &Kind) -> Option<T> {
        let aside = aside(path, &self.clock);
        let instead = kind.unusable;
        match fs::rename(path, &aside) {
            Ok(()) => {
                tracing::warn!(file = %path.display(), moved_to = %aside.display(), "the state file {problem}; {instead}")
            }
            Err(error) => {
                tracing::warn!(file = %path.display(), %error, "the state file {problem}, and cannot be moved aside; {instead}")
            }
        }
        None
    }

    fn write(&self, path: &Path, value: &impl Serialize) -> bool {
        let written = serde_json::to_vec(value).map_err(io::Error::other).and_then(|mut text| {
            text.push(b'\n');
            files::write_atomically(path, &text)
        });
        written.inspect_err(|error| self.count_failure(path, error)).is_ok()
    }

    fn count_failure(&self, path: &Path, error: &io::Error) {
        self.write_failures.fetch_add(1, Ordering::Relaxed);
        if self.time_to_log() {
            tracing::error!(file = %path.display(), %error, "cannot write the state file; the API's rules hold from memory, but a restart now may call early");
        }
    }

    fn count_read_failure(&self, path: &Path, kind: &Kind, error: &io::Error) {
        self.read_failures.fetch_add(1, Ordering::Relaxed);
        if self.time_to_log() {
            tracing::error!(file = %path.display(), %error, "cannot read the state file; {}", kind.unreadable);
        }
    }

    /// Failures are logged at most once a [`LOG_EVERY`].
    fn time_to_log(&self) -> bool {
        let mut last = self.last_logged.lock().expect("no panic while holding the lock");
        let due = last.is_none_or(|at| at.elapsed() >= LOG_EVERY);
        if due {
            *last = Some(Instant::now());
        }
        due
    }
}

/// Where a file that cannot be used is moved, dated by the exporter's clock: `NAME.bad-SECONDS`.
fn aside(path: &Path, clock: &Clock) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(format!(".bad-{}", clock.now().as_second()));
    path.with_file_name(name)
}

/// Whose a kept month is, to compare and to name in a warning.
fn kept_month_name(server: &str, api: &str, month: &str) -> String {
    format!("{server} {api} {month}")
}

fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "this host".to_owned())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use tempfile::TempDir;

    use super::*;
    use crate::calls::ledger::TokenLedger;

    /// A directory of the test's own, removed with everything in it when dropped.
    fn temp_dir(tag: &str) -> TempDir {
        tempfile::Builder::new().prefix(&format!("wolkvox-storage-{tag}-")).tempdir().unwrap()
    }

    fn answer() -> Answer {
        let latest_at = Some(jiff::civil::date(2026, 11, 15).at(9, 30, 0, 0));
        let series = Series {
            operation: "ventas".into(),
            description: "Gamification".into(),
            latest: 15.0,
            max: 17.0,
            latest_at,
        };
        let report = Report { rows: 3, series: vec![series], skipped: Vec::new() };
        Answer { succeeded_at: "2026-11-15T15:00:00Z".parse().unwrap(), report: Arc::new(report) }
    }

    #[test]
    fn what_is_saved_is_restored_with_private_permissions() {
        let tmp = temp_dir("roundtrip");
        let dir = tmp.path().join("data");
        let storage = Storage::open(&dir, Role::Exporter, Clock::system()).unwrap();
        let ledger = Ledger { calls_today: 7, ..Ledger::default() };
        storage.save_ledger("main", &ledger);
        storage.save_answers("main", &BTreeMap::from([("0042/gamification".to_owned(), answer())]));
        assert_eq!(storage.load_ledger("main").unwrap(), Some(ledger));
        assert_eq!(storage.load_answers("main")["0042/gamification"], answer());
        assert_eq!(
            (storage.load_ledger("other").unwrap(), storage.load_answers("other")),
            (None, BTreeMap::new())
        );
        assert_eq!(fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        for entry in fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            assert_eq!(
                entry.metadata().unwrap().permissions().mode() & 0o777,
                0o600,
                "{:?}",
                entry.file_name()
            );
        }
        let text = fs::read_to_string(dir.join("token-main.ledger.json")).unwrap();
        assert!(text.starts_with("{\"version\":1,"), "{text}");
    }

    #[test]
    fn unusable_files_are_set_aside_and_the_token_starts_clean() {
        let tmp = temp_dir("bad");
        let dir = tmp.path();
        // The name of a file set aside is dated by the exporter's clock.
        let storage = Storage::open(
            dir,
            Role::Exporter,
            Clock::starting_at("2026-11-30T23:59:58-05:00".parse().unwrap()),
        )
        .unwrap();
        let valid = |name: &str| {
            format!(
                "{{\"version\":1,\"token_name\":\"{name}\",\"ledger\":{}}}",
                serde_json::to_string(&Ledger::default()).unwrap()
            )
        };
        for (name, text) in [
            ("empty", String::new()),
            ("truncated", valid("truncated")[..20].to_owned()),
            ("garbage", "\u{0}\u{1}not json".to_owned()),
            ("future", valid("future").replace("\"version\":1", "\"version\":2")),
            ("foreign", valid("someone_else")),
            ("other_format", "{\"version\":1,\"hello\":true}".to_owned()),
        ] {
            let path = dir.join(format!("token-{name}.ledger.json"));
            fs::write(&path, text).unwrap();
            assert_eq!(storage.load_ledger(name).unwrap(), None, "{name}");
            assert!(!path.exists(), "{name} was not moved aside");
            let kept = fs::read_dir(dir).unwrap().filter_map(|e| e.ok()).any(|e| {
                let file = e.file_name().to_string_lossy().into_owned();
                file.starts_with(&format!("token-{name}.ledger.json.bad-179610119"))
            });
            assert!(kept, "{name} was not kept for inspection");
        }
    }

    /// What `f` logged, as text.
    fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
        struct Log(Arc<Mutex<Vec<u8>>>);
        impl Write for Log {
            fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let text = Arc::new(Mutex::new(Vec::new()));
        let writer = text.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || Log(writer.clone()))
            .finish();
        let result = tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(text.lock().unwrap().clone()).unwrap();
        (result, text)
    }

    const JANUARY: Date = jiff::civil::date(2026, 1, 1);
    const KEPT_JANUARY: &str = "backfill/0042-gamification-2026-01.json";

    fn rows() -> Vec<DatedRow> {
        let at = jiff::civil::date(2026, 1, 31).at(23, 59, 59, 0);
        vec![DatedRow {
            operation: "ventas".into(),
            description: "Gamification".into(),
            at,
            value: 12.5,
        }]
    }

    /// The files set aside beside `path`.
    fn set_aside_beside(path: &Path) -> Vec<PathBuf> {
        let name = format!("{}.bad-", path.file_name().unwrap().to_string_lossy());
        let entries = fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().path());
        entries.filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(&name)).collect()
    }

    #[test]
    fn a_kept_month_is_restored_and_one_that_cannot_be_used_is_set_aside_with_a_warning() {
        let tmp = temp_dir("kept");
        let dir = tmp.path();
        let storage = Storage::open(dir, Role::Backfill, Clock::system()).unwrap();
        assert_eq!(storage.load_kept_month("0042", "gamification", JANUARY), None);
        storage.save_kept_month("0042", "gamification", JANUARY, &rows());
        assert_eq!(storage.load_kept_month("0042", "gamification", JANUARY), Some(rows()));
        let path = dir.join(KEPT_JANUARY);
        assert_eq!(fs::metadata(dir.join("backfill")).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let good = fs::read_to_string(&path).unwrap();
        assert!(
            good.starts_with(
                r#"{"version":1,"server":"0042","api":"gamification","month":"2026-01","rows":[{"#
            ),
            "{good}"
        );

        for (name, text) in [
            ("damaged", good[..good.len() / 2].to_owned()),
            ("future", good.replace(r#""version":1"#, r#""version":2"#)),
            ("another month's", good.replace(r#""month":"2026-01""#, r#""month":"2026-02""#)),
        ] {
            fs::write(&path, text).unwrap();
            let (kept, log) = logged(|| storage.load_kept_month("0042", "gamification", JANUARY));
            assert_eq!(kept, None, "{name}");
            assert!(
                !path.exists() && !set_aside_beside(&path).is_empty(),
                "{name} was not set aside"
            );
            assert!(
                log.contains("WARN") && log.contains("fetching the month again"),
                "{name}: {log}"
            );
        }
        assert_eq!(
            storage.failures(),
            StorageFailures::default(),
            "a file that cannot be used is no failure to read"
        );
    }

    #[test]
    fn a_kept_month_is_neither_read_nor_written_through_a_link() {
        let tmp = temp_dir("kept-link");
        let dir = tmp.path();
        let storage = Storage::open(dir, Role::Backfill, Clock::system()).unwrap();
        storage.save_kept_month("0042", "gamification", JANUARY, &rows());
        let path = dir.join(KEPT_JANUARY);
        // A good kept month elsewhere, which a link followed would read as this one.
        let elsewhere = temp_dir("kept-elsewhere");
        let victim = elsewhere.path().join("0042-gamification-2026-01.json");
        fs::rename(&path, &victim).unwrap();
        let good = fs::read_to_string(&victim).unwrap();

        std::os::unix::fs::symlink(&victim, &path).unwrap();
        let (kept, log) = logged(|| storage.load_kept_month("0042", "gamification", JANUARY));
        assert_eq!(kept, None);
        assert!(log.contains("symbolic link"), "{log}");
        let aside = set_aside_beside(&path);
        assert!(
            aside.len() == 1 && aside[0].is_symlink(),
            "the link is set aside as a link: {aside:?}"
        );
        // Written where a link is: the link is replaced, what it points at left alone.
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        storage.save_kept_month("0042", "gamification", JANUARY, &[]);
        assert!(
            !path.is_symlink()
                && storage.load_kept_month("0042", "gamification", JANUARY) == Some(Vec::new())
        );

        // A link in the place of the subdirectory: not read through, and refused for writing.
        fs::rename(dir.join("backfill"), dir.join("backfill.old")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.join("backfill")).unwrap();
        assert_eq!(storage.load_kept_month("0042", "gamification", JANUARY), None);
        storage.save_kept_month("0042", "gamification", JANUARY, &[]);
        assert_eq!(storage.failures(), StorageFailures { writes: 1, reads: 1 });
        assert_eq!(fs::read_to_string(&victim).unwrap(), good, "the file linked to is untouched");
    }

    #[test]
    fn a_second_process_on_the_same_path_is_refused_naming_the_path_and_the_holder() {
        let tmp = temp_dir("lock");
        let dir = tmp.path();
        let _first = Storage::open(dir, Role::Exporter, Clock::system()).unwrap();
        let error = Storage::open(dir, Role::Exporter, Clock::system())
            .err()
            .expect("the path is locked")
            .to_string();
        assert!(
            error.contains("--storage.path") && error.contains(&dir.display().to_string()),
            "{error}"
        );
        assert!(error.contains(&format!("pid {}", std::process::id())), "{error}");
    }

    #[test]
    fn an_exporter_and_a_backfill_share_a_path_and_each_change_starts_from_the_others() {
        let tmp = temp_dir("shared");
        let dir = tmp.path();
        let backfill = Storage::open(dir, Role::Backfill, Clock::system()).unwrap();
        assert!(!backfill.exporter_running());
        let exporter = Storage::open(dir, Role::Exporter, Clock::system()).unwrap();
        assert!(backfill.exporter_running());
        let error = Storage::open(dir, Role::Backfill, Clock::system())
            .err()
            .expect("one backfill at a time")
            .to_string();
        assert!(error.contains("another backfill"), "{error}");

        let (exporter, backfill) = (Arc::new(exporter), Arc::new(backfill));
        let mut exporters = TokenLedger::new(Ledger::default(), "main", Some(exporter.clone()));
        let mut backfills = TokenLedger::new(Ledger::default(), "main", Some(backfill.clone()));
        exporters.update_blocking(|ledger| ledger.calls_today += 1).unwrap();
        // The backfill's stale copy is replaced by the file's before its change.
        backfills.update_blocking(|ledger| ledger.calls_today += 1).unwrap();
        exporters.update_blocking(|ledger| ledger.calls_today += 1).unwrap();
        assert_eq!((backfills.get().calls_today, exporters.get().calls_today), (2, 3));
        assert_eq!(exporter.load_ledger("main").unwrap().map(|l| l.calls_today), Some(3));
        drop(exporters);
        let exporter = Arc::into_inner(exporter).unwrap();
        drop(exporter);
        assert!(!backfill.exporter_running());
    }

    #[test]
    fn an_unwritable_path_is_refused_naming_the_flag() {
        let tmp = temp_dir("notadir");
        let file = tmp.path().join("file");
        fs::write(&file, "").unwrap();
        let error = Storage::open(&file.join("data"), Role::Exporter, Clock::system())
            .err()
            .expect("not a directory")
            .to_string();
        assert!(error.starts_with("invalid configuration: --storage.path"), "{error}");
    }

    #[test]
    fn a_failed_write_is_counted_and_the_old_file_stays() {
        let tmp = temp_dir("fail");
        let dir = tmp.path();
        let storage = Storage::open(dir, Role::Exporter, Clock::system()).unwrap();
        storage.save_ledger("main", &Ledger { calls_today: 1, ..Ledger::default() });
        // A directory where the temporary file should go makes the write fail.
        fs::create_dir(dir.join("token-main.ledger.json.tmp")).unwrap();
        assert!(!storage.save_ledger("main", &Ledger { calls_today: 2, ..Ledger::default() }));
        assert_eq!(storage.failures().writes, 1);
        assert_eq!(storage.load_ledger("main").unwrap().map(|l| l.calls_today), Some(1));
    }

    /// A file planted in the directory: `make` creates it at the path given.
    fn planted(tag: &str, name: &str, make: impl Fn(&Path)) -> (TempDir, Storage) {
        let dir = temp_dir(tag);
        make(&dir.path().join(name));
        let storage = Storage::open(dir.path(), Role::Exporter, Clock::system()).unwrap();
        (dir, storage)
    }

    #[test]
    fn links_planted_in_the_directory_are_never_followed() {
        let elsewhere = temp_dir("victim");
        let victim = elsewhere.path().join("passwd");
        fs::write(&victim, "root:x:0:0\n").unwrap();
        let link = |path: &Path| std::os::unix::fs::symlink(&victim, path).unwrap();
        // In the place of the temporary file: the write makes a file of its own.
        let (tmp, storage) = planted("link-tmp", "token-main.ledger.json.tmp", link);
        let dir = tmp.path();
        assert!(storage.save_ledger("main", &Ledger { calls_today: 4, ..Ledger::default() }));
        assert_eq!(storage.load_ledger("main").unwrap().map(|l| l.calls_today), Some(4));
        // In the place of the ledger: set aside as a link, never read through.
        fs::remove_file(dir.join("token-main.ledger.json")).unwrap();
        link(&dir.join("token-main.ledger.json"));
        assert_eq!(storage.load_ledger("main").unwrap(), None);
        assert!(!dir.join("token-main.ledger.json").exists());
        // In the place of a token's lock, and of the exporter's: moved aside, the lock made anew.
        link(&dir.join("token-main.lock"));
        let lock = storage.lock_token("main").unwrap();
        assert!(lock.metadata().unwrap().is_file() && !dir.join("token-main.lock").is_symlink());
        let (_, _) = planted("link-answers", "token-main.answers.json", link);
        let (tmp, _exporter) = planted("link-lock", "lock", link);
        assert!(!tmp.path().join("lock").is_symlink());
        // A hard link to a file elsewhere (same file system) is not used either.
        let tmp = temp_dir("hard-link");
        let dir = tmp.path();
        fs::hard_link(&victim, dir.join("backfill.lock")).unwrap();
        drop(Storage::open(dir, Role::Backfill, Clock::system()).unwrap());
        assert_eq!(fs::metadata(dir.join("backfill.lock")).unwrap().nlink(), 1);

        assert_eq!(
            fs::read_to_string(&victim).unwrap(),
            "root:x:0:0\n",
            "the file linked to is untouched"
        );
        assert_eq!(fs::metadata(&victim).unwrap().permissions().mode() & 0o777, 0o644);
    }

    #[test]
    fn a_state_file_with_a_second_name_is_read_not_set_aside() {
        let tmp = temp_dir("backup-link");
        let dir = tmp.path();
        let storage = Storage::open(dir, Role::Exporter, Clock::system()).unwrap();
        let ledger = Ledger { calls_today: 5, ..Ledger::default() };
        assert!(storage.save_ledger("main", &ledger));
        // A backup made with `cp -al`: the good ledger must not be thrown away for it.
        let backup = temp_dir("backup");
        fs::hard_link(dir.join("token-main.ledger.json"), backup.path().join("ledger.json"))
            .unwrap();
        assert_eq!(storage.load_ledger("main").unwrap(), Some(ledger));
    }

    #[test]
    fn a_fifo_or_a_device_in_a_files_place_is_set_aside_without_waiting_on_it() {
        let fifo = |path: &Path| {
            let made = std::process::Command::new("mkfifo").arg(path).status().unwrap();
            assert!(made.success());
        };
        let (dir, storage) = planted("fifo", "token-main.ledger.json", fifo);
        assert_eq!(storage.load_ledger("main").unwrap(), None);
        assert!(!dir.path().join("token-main.ledger.json").exists(), "set aside");
        let (dir, storage) = planted("device", "token-main.answers.json", |path| {
            std::os::unix::fs::symlink("/dev/zero", path).unwrap();
        });
        assert_eq!(storage.load_answers("main"), BTreeMap::new());
        assert!(!dir.path().join("token-main.answers.json").exists(), "set aside");
    }

    #[test]
    fn a_state_directory_that_is_a_link_is_refused_and_one_open_to_all_is_made_private() {
        let real_dir = temp_dir("real-dir");
        let real = real_dir.path();
        let beside = temp_dir("dir-link");
        let link = beside.path().join("data");
        std::os::unix::fs::symlink(real, &link).unwrap();
        // Made by another user than root (the test's, or, as root, given to nobody).
        let as_root = std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).is_ok();
        let error =
            Storage::open(&link, Role::Exporter, Clock::system()).err().unwrap().to_string();
        assert!(
            error.contains(&link.display().to_string()) && error.contains("symbolic link"),
            "{error}"
        );
        if as_root {
            // As systemd makes StateDirectory= with DynamicUser=: root's link is followed.
            let systemd = temp_dir("systemd-link");
            let systemds = systemd.path().join("wolkvox_exporter");
            std::os::unix::fs::symlink(real, &systemds).unwrap();
            let storage = Storage::open(&systemds, Role::Exporter, Clock::system()).unwrap();
            assert_eq!(storage.path(), fs::canonicalize(real).unwrap());
        }

        let open_dir = temp_dir("open-to-all");
        let open_to_all = open_dir.path();
        fs::set_permissions(open_to_all, fs::Permissions::from_mode(0o777)).unwrap();
        drop(Storage::open(open_to_all, Role::Exporter, Clock::system()).unwrap());
        assert_eq!(fs::metadata(open_to_all).unwrap().permissions().mode() & 0o777, 0o700);
        // Readable by the group and others, as `mkdir` makes it: private too, as it always was.
        let readable_dir = temp_dir("readable");
        let readable = readable_dir.path();
        fs::set_permissions(readable, fs::Permissions::from_mode(0o755)).unwrap();
        drop(Storage::open(readable, Role::Exporter, Clock::system()).unwrap());
        assert_eq!(fs::metadata(readable).unwrap().permissions().mode() & 0o777, 0o700);
    }

    #[test]
    fn a_directory_open_to_all_and_owned_by_another_user_is_refused() {
        let tmp = temp_dir("foreign");
        let dir = tmp.path();
        fs::set_permissions(dir, fs::Permissions::from_mode(0o777)).unwrap();
        if std::os::unix::fs::chown(dir, Some(65534), Some(65534)).is_err() {
            // Only root can give a directory away; CI runs as root.
            assert!(std::env::var_os("CI").is_none(), "CI runs the tests as root");
            return;
        }
        let error = Storage::open(dir, Role::Exporter, Clock::system()).err().unwrap().to_string();
        assert!(error.contains("writable by every user") && error.contains("0777"), "{error}");
    }
}
