//! The state directory (`--storage.path`): what a restart must not forget. Per token, named by its
//! token name (never the token): its call ledger, written before and after every call so that a
//! crash during a call is remembered as a call in flight; and the last good answer of each of its
//! jobs, written after each success, so that a restart serves them at once.
//!
//! Every file is versioned JSON, written atomically (temporary file, fsync, rename, fsync of the
//! directory), mode 0600 in a 0700 directory. A file that cannot be used is set aside with one
//! warning and the token starts clean; a write that fails is counted and logged at most once a
//! minute, and polling goes on.
//!
//! Locks: `lock` keeps a second exporter out, `backfill.lock` a second backfill; an exporter and a
//! backfill share the directory, and each change of a token's ledger is made under that token's
//! lock on the ledger as the file holds it, so that the two take turns by the same rules.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::admission::Ledger;
use crate::clock::Clock;
use crate::wolkvox::Report;
use crate::wolkvox::model::Series;

/// The format of every file; a file of another version is set aside.
pub const VERSION: u32 = 1;
/// Held by the exporter, for its life.
const EXPORTER_LOCK: &str = "lock";
/// Held by a backfill, for its life.
const BACKFILL_LOCK: &str = "backfill.lock";
/// A backfill looking whether an exporter runs holds the exporter's lock for an instant: an
/// exporter starting then tries again for this long.
const LOCK_PATIENCE: Duration = Duration::from_secs(1);
/// Write failures are logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(60);

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
        AnswerFields { succeeded_at: self.succeeded_at, rows: self.report.rows, series: &self.report.series }.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Answer {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Answer, D::Error> {
        let AnswerFields { succeeded_at, rows, series } = AnswerFields::<Vec<Series>>::deserialize(deserializer)?;
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

/// Only the version, read when a file does not parse, to name a newer format as such.
#[derive(Deserialize)]
struct Versioned {
    version: u32,
}

pub struct Storage {
    dir: PathBuf,
    /// Dates the name of a file set aside.
    clock: Clock,
    /// Held for the life of the process: the OS releases it however the process ends.
    _lock: File,
    write_failures: AtomicU64,
    last_logged: Mutex<Option<Instant>>,
}

impl Storage {
    /// Creates the directory if needed (0700), checks it is writable, and takes the role's lock.
    pub fn open(dir: &Path, role: Role, clock: Clock) -> Result<Storage, StorageError> {
        let unusable = |source| StorageError::Unusable { path: dir.to_owned(), source };
        fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(unusable)?;
        let name = match role {
            Role::Exporter => EXPORTER_LOCK,
            Role::Backfill => BACKFILL_LOCK,
        };
        let mut lock = open_lock(&dir.join(name)).map_err(unusable)?;
        let patience = Instant::now() + LOCK_PATIENCE;
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(fs::TryLockError::WouldBlock) if role == Role::Exporter && Instant::now() < patience => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(fs::TryLockError::WouldBlock) => {
                    let mut holder = String::new();
                    let _ = lock.read_to_string(&mut holder);
                    let holder = holder.trim();
                    let holder = if holder.is_empty() { "a process that wrote no pid".to_owned() } else { holder.to_owned() };
                    return Err(StorageError::Locked { path: dir.to_owned(), role, holder });
                }
                Err(fs::TryLockError::Error(error)) => return Err(unusable(error)),
            }
        }
        lock.set_len(0)
            .and_then(|()| lock.write_all(format!("pid {} on {}\n", std::process::id(), hostname()).as_bytes()))
            .map_err(unusable)?;
        // The directory may predate us with wider permissions; the lock write proved it writable.
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
        Ok(Storage { dir: dir.to_owned(), clock, _lock: lock, write_failures: AtomicU64::new(0), last_logged: Mutex::new(None) })
    }

    /// Whether an exporter holds this directory now (for a backfill, which then leaves it turns).
    pub fn exporter_running(&self) -> bool {
        let Ok(lock) = open_lock(&self.dir.join(EXPORTER_LOCK)) else { return false };
        matches!(lock.try_lock(), Err(fs::TryLockError::WouldBlock))
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Writes that failed since start-up.
    pub fn write_failures(&self) -> u64 {
        self.write_failures.load(Ordering::Relaxed)
    }

    /// The token's ledger, if its file can be used (a file that cannot is set aside).
    pub fn load_ledger(&self, token_name: &str) -> Option<Ledger> {
        self.read::<LedgerFile<Ledger>>(&self.ledger_path(token_name), token_name, |f| (f.version, &f.token_name)).map(|f| f.ledger)
    }

    /// The last good answers of the token's jobs, by job key (none if the file cannot be used).
    pub fn load_answers(&self, token_name: &str) -> BTreeMap<String, Answer> {
        self.read::<AnswersFile<BTreeMap<String, Answer>>>(&self.answers_path(token_name), token_name, |f| (f.version, &f.token_name))
            .map(|f| f.answers)
            .unwrap_or_default()
    }

    pub fn save_ledger(&self, token_name: &str, ledger: &Ledger) {
        let file = LedgerFile { version: VERSION, token_name: token_name.to_owned(), ledger };
        self.write(&self.ledger_path(token_name), &file);
    }

    /// Changes a token's ledger as every process on this directory sees it: under the token's
    /// lock, the file's ledger (another process may have called since) replaces `ledger`, `change`
    /// edits it, and it is written back if it changed. Blocks on the lock and the write's fsync.
    pub fn update_ledger<R>(&self, token_name: &str, ledger: &mut Ledger, change: impl FnOnce(&mut Ledger) -> R) -> R {
        let lock = open_lock(&self.dir.join(format!("token-{token_name}.lock"))).and_then(|lock| lock.lock().map(|()| lock));
        if let Err(error) = &lock {
            // Alone on the directory this loses nothing; beside a backfill, the turns may clash.
            self.count_failure(&self.dir.join(format!("token-{token_name}.lock")), error);
        }
        if let Some(on_disk) = self.load_ledger(token_name) {
            *ledger = on_disk;
        }
        let before = ledger.clone();
        let result = change(ledger);
        if *ledger != before {
            self.save_ledger(token_name, ledger);
        }
        drop(lock);
        result
    }

    pub fn save_answers(&self, token_name: &str, answers: &BTreeMap<String, Answer>) {
        let file = AnswersFile { version: VERSION, token_name: token_name.to_owned(), answers };
        self.write(&self.answers_path(token_name), &file);
    }

    /// Writes any other file of the directory (the backfill's months) the same way.
    pub fn save_json(&self, path: &Path, value: &impl Serialize) {
        if let Some(dir) = path.parent() {
            match fs::DirBuilder::new().mode(0o700).create(dir) {
                // New: handed to the state directory's owner, like every file.
                Ok(()) => File::open(dir).iter().for_each(|made| hand_to_directory_owner(made, dir)),
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
                Err(error) => {
                    tracing::error!(dir = %dir.display(), %error, "cannot create a state directory");
                    return;
                }
            }
        }
        self.write(path, value);
    }

    fn ledger_path(&self, token_name: &str) -> PathBuf {
        self.dir.join(format!("token-{token_name}.ledger.json"))
    }

    fn answers_path(&self, token_name: &str) -> PathBuf {
        self.dir.join(format!("token-{token_name}.answers.json"))
    }

    fn read<T: DeserializeOwned>(&self, path: &Path, token_name: &str, identity: impl Fn(&T) -> (u32, &String)) -> Option<T> {
        let text = match fs::read(path) {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return None,
            Err(error) => return self.set_aside(path, &format!("cannot be read: {error}")),
        };
        // One parse when the file is good; the version is looked at only to say why one is not.
        let problem = match serde_json::from_slice::<T>(&text) {
            Ok(file) => match identity(&file) {
                (version, _) if version != VERSION => format!("has format version {version}, this exporter reads version {VERSION}"),
                (_, name) if name != token_name => format!("belongs to token name {name:?}, not {token_name:?}"),
                _ => return Some(file),
            },
            Err(error) => match serde_json::from_slice::<Versioned>(&text) {
                Ok(Versioned { version }) if version != VERSION => {
                    format!("has format version {version}, this exporter reads version {VERSION}")
                }
                Ok(_) => format!("is damaged: {error}"),
                Err(error) => format!("is not a state file of this exporter: {error}"),
            },
        };
        self.set_aside(path, &problem)
    }

    /// Moves a file that cannot be used out of the way, kept for inspection.
    fn set_aside<T>(&self, path: &Path, problem: &str) -> Option<T> {
        let aside = path.with_extension(format!("json.bad-{}", self.clock.now().as_second()));
        match fs::rename(path, &aside) {
            Ok(()) => {
                tracing::warn!(file = %path.display(), moved_to = %aside.display(), "the state file {problem}; starting this token clean")
            }
            Err(error) => {
                tracing::warn!(file = %path.display(), %error, "the state file {problem}, and cannot be moved aside; starting this token clean")
            }
        }
        None
    }

    fn write(&self, path: &Path, value: &impl Serialize) {
        if let Err(error) = write_atomically(path, value) {
            self.count_failure(path, &error);
        }
    }

    fn count_failure(&self, path: &Path, error: &io::Error) {
        self.write_failures.fetch_add(1, Ordering::Relaxed);
        let mut last = self.last_logged.lock().expect("no panic while holding the lock");
        if last.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
            *last = Some(Instant::now());
            tracing::error!(file = %path.display(), %error, "cannot write the state file; polling goes on, but a restart now may call early");
        }
    }
}

fn open_lock(path: &Path) -> io::Result<File> {
    let lock = OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(path)?;
    hand_to_directory_owner(&lock, path);
    Ok(lock)
}

/// Gives a file this process made to the owner of its directory: a backfill run as root beside a
/// service (systemd's dynamic user, say) must leave files the service can still read and lock.
/// Nothing to do when they match; not possible when this process is not root, which could then
/// not have written into another user's 0700 directory anyway.
fn hand_to_directory_owner(file: &File, path: &Path) {
    let directory = path.parent().unwrap_or(Path::new("."));
    let (Ok(mine), Ok(owner)) = (file.metadata(), fs::metadata(directory)) else { return };
    if (mine.uid(), mine.gid()) != (owner.uid(), owner.gid()) {
        let _ = std::os::unix::fs::fchown(file, Some(owner.uid()), Some(owner.gid()));
    }
}

/// Temporary file, fsync, rename over the old one, fsync of the directory: a crash at any point
/// leaves the old file or the new one, never half of one.
fn write_atomically(path: &Path, value: &impl Serialize) -> io::Result<()> {
    let temporary = path.with_extension("json.tmp");
    let mut file = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&temporary)?;
    hand_to_directory_owner(&file, &temporary);
    let mut text = serde_json::to_vec(value).map_err(io::Error::other)?;
    text.push(b'\n');
    file.write_all(&text)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&temporary, path)?;
    File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()
}

fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname").map(|name| name.trim().to_owned()).unwrap_or_else(|_| "this host".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wolkvox-storage-{tag}-{}-{}", std::process::id(), fastrand::u64(..)));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn answer() -> Answer {
        let series = Series { operation: "ventas".into(), description: "Gamification".into(), latest: 15.0, max: 17.0 };
        let report = Report { rows: 3, series: vec![series], skipped: Vec::new() };
        Answer { succeeded_at: "2026-11-15T15:00:00Z".parse().unwrap(), report: Arc::new(report) }
    }

    #[test]
    fn what_is_saved_is_restored_with_private_permissions() {
        let dir = temp_dir("roundtrip").join("data");
        let storage = Storage::open(&dir, Role::Exporter, Clock::system()).unwrap();
        let ledger = Ledger { calls_today: 7, ..Ledger::default() };
        storage.save_ledger("main", &ledger);
        storage.save_answers("main", &BTreeMap::from([("0042/gamification".to_owned(), answer())]));
        assert_eq!(storage.load_ledger("main"), Some(ledger));
        assert_eq!(storage.load_answers("main")["0042/gamification"], answer());
        assert_eq!((storage.load_ledger("other"), storage.load_answers("other")), (None, BTreeMap::new()));
        assert_eq!(fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        for entry in fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            assert_eq!(entry.metadata().unwrap().permissions().mode() & 0o777, 0o600, "{:?}", entry.file_name());
        }
        let text = fs::read_to_string(dir.join("token-main.ledger.json")).unwrap();
        assert!(text.starts_with("{\"version\":1,"), "{text}");
    }

    #[test]
    fn unusable_files_are_set_aside_and_the_token_starts_clean() {
        let dir = temp_dir("bad");
        // The name of a file set aside is dated by the exporter's clock.
        let storage = Storage::open(&dir, Role::Exporter, Clock::starting_at("2026-11-30T23:59:58-05:00".parse().unwrap())).unwrap();
        let valid = |name: &str| {
            format!("{{\"version\":1,\"token_name\":\"{name}\",\"ledger\":{}}}", serde_json::to_string(&Ledger::default()).unwrap())
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
            assert_eq!(storage.load_ledger(name), None, "{name}");
            assert!(!path.exists(), "{name} was not moved aside");
            let kept = fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()).any(|e| {
                let file = e.file_name().to_string_lossy().into_owned();
                file.starts_with(&format!("token-{name}.ledger.json.bad-179610119"))
            });
            assert!(kept, "{name} was not kept for inspection");
        }
    }

    #[test]
    fn a_second_process_on_the_same_path_is_refused_naming_the_path_and_the_holder() {
        let dir = temp_dir("lock");
        let _first = Storage::open(&dir, Role::Exporter, Clock::system()).unwrap();
        let error = Storage::open(&dir, Role::Exporter, Clock::system()).err().expect("the path is locked").to_string();
        assert!(error.contains("--storage.path") && error.contains(&dir.display().to_string()), "{error}");
        assert!(error.contains(&format!("pid {}", std::process::id())), "{error}");
    }

    #[test]
    fn an_exporter_and_a_backfill_share_a_path_and_each_change_starts_from_the_others() {
        let dir = temp_dir("shared");
        let backfill = Storage::open(&dir, Role::Backfill, Clock::system()).unwrap();
        assert!(!backfill.exporter_running());
        let exporter = Storage::open(&dir, Role::Exporter, Clock::system()).unwrap();
        assert!(backfill.exporter_running());
        let error = Storage::open(&dir, Role::Backfill, Clock::system()).err().expect("one backfill at a time").to_string();
        assert!(error.contains("another backfill"), "{error}");

        let (mut exporters, mut backfills) = (Ledger::default(), Ledger::default());
        exporter.update_ledger("main", &mut exporters, |ledger| ledger.calls_today += 1);
        // The backfill's stale copy is replaced by the file's before its change.
        backfill.update_ledger("main", &mut backfills, |ledger| ledger.calls_today += 1);
        exporter.update_ledger("main", &mut exporters, |ledger| ledger.calls_today += 1);
        assert_eq!((backfills.calls_today, exporters.calls_today), (2, 3));
        assert_eq!(exporter.load_ledger("main").map(|l| l.calls_today), Some(3));
        drop(exporter);
        assert!(!backfill.exporter_running());
    }

    #[test]
    fn an_unwritable_path_is_refused_naming_the_flag() {
        let file = temp_dir("notadir").join("file");
        fs::write(&file, "").unwrap();
        let error = Storage::open(&file.join("data"), Role::Exporter, Clock::system()).err().expect("not a directory").to_string();
        assert!(error.starts_with("invalid configuration: --storage.path"), "{error}");
    }

    #[test]
    fn a_failed_write_is_counted_and_the_old_file_stays() {
        let dir = temp_dir("fail");
        let storage = Storage::open(&dir, Role::Exporter, Clock::system()).unwrap();
        storage.save_ledger("main", &Ledger { calls_today: 1, ..Ledger::default() });
        // A directory where the temporary file should go makes the write fail.
        fs::create_dir(dir.join("token-main.ledger.json.tmp")).unwrap();
        storage.save_ledger("main", &Ledger { calls_today: 2, ..Ledger::default() });
        assert_eq!(storage.write_failures(), 1);
        assert_eq!(storage.load_ledger("main").map(|l| l.calls_today), Some(1));
    }
}
