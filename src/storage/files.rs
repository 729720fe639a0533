//! Files in a directory that someone else may write into (the state directory belongs to the
//! service's user, and a backfill may run there as root): no symbolic link is followed, nothing but
//! a regular file is read or written, no lock file with a second name (a hard link to a file
//! elsewhere, which writing the pid would truncate) is used, nothing is read without a bound, and a
//! file is handed to the directory's owner only when this process has just created it. State files
//! are only ever replaced (a new file renamed over them), never written into: one that is also a
//! hard link (a backup made with `cp -al`) is read as it is.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Every open: no link followed, no wait on a FIFO planted in a file's place, no descriptor
/// inherited by a child.
const NO_FOLLOW: i32 = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;

/// Checks that `dir` is a directory of its own and returns it: not writable by other users (who
/// could plant files in it) unless this process owns it; one it owns is made private (0700), with
/// a warning if every user could write into it. Creates it (0700) when missing. A symbolic link is
/// followed only if root made it (systemd's `StateDirectory=` with `DynamicUser=` is a link to
/// `/var/lib/private/NAME`): the directory's owner could not have planted it beside itself.
pub(crate) fn private_directory(dir: &Path) -> io::Result<PathBuf> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::DirBuilder::new().recursive(true).mode(0o700).create(parent)?;
    }
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => return Ok(dir.to_owned()),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(error),
    }
    let link = fs::symlink_metadata(dir)?;
    let dir = if link.file_type().is_symlink() && link.uid() == 0 {
        fs::canonicalize(dir)?
    } else {
        dir.to_owned()
    };
    // Every check and change is made on what was opened, not on the path again: a link swapped
    // in between is never followed.
    let opened = open_directory(&dir)?;
    let found = opened.metadata()?;
    let mode = found.mode() & 0o7777;
    if found.uid() != current_uid() {
        return if mode & 0o002 != 0 {
            Err(refused(&format!(
                "is writable by every user (mode {mode:04o}): another user could plant files in it; \
                 use a directory inside it (created 0700 by the exporter) or chmod o-w it"
            )))
        } else {
            Ok(dir)
        };
    }
    if mode & 0o002 != 0 {
        tracing::warn!(dir = %dir.display(), mode = format!("{mode:04o}"), "the state directory was writable by every user; made private (0700)");
    }
    if mode & 0o077 != 0 {
        opened.set_permissions(fs::Permissions::from_mode(0o700))?;
    }
    Ok(dir)
}

/// A subdirectory of the state directory (the backfill's months): created 0700 and handed to the
/// state directory's owner, or an existing real directory.
pub(crate) fn subdirectory(dir: &Path) -> io::Result<()> {
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => hand_to_directory_owner(&open_directory(dir)?, dir),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => drop(open_directory(dir)?),
        Err(error) => return Err(error),
    }
    Ok(())
}

/// Checks a subdirectory of the state directory before reading from it: missing, or a real
/// directory (not a link to one elsewhere).
pub(crate) fn existing_subdirectory(dir: &Path) -> io::Result<()> {
    match open_directory(dir) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        opened => opened.map(drop),
    }
}

/// A directory, opened without following a link.
fn open_directory(dir: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir)
        .map_err(|error| {
            // Linux says ENOTDIR for a link opened this way: look at what is there, for the message.
            match error.raw_os_error() {
                Some(libc::ELOOP | libc::ENOTDIR)
                    if fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink()) =>
                {
                    refused("is a symbolic link that root did not make; name the directory itself")
                }
                Some(libc::ENOTDIR) => refused("is not a directory"),
                _ => error,
            }
        })
}

/// Opens a lock file for reading and writing, creating it (0600, handed to the directory's owner)
/// if it does not exist. Something else in its place (a link, a FIFO, a file with a second name) is
/// moved to `aside` and the lock made anew: a planted link must neither be followed nor stop the
/// exporter for good.
pub(crate) fn open_lock(path: &Path, aside: &Path) -> io::Result<File> {
    let create = || {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(NO_FOLLOW)
            .open(path)
    };
    let created = |file: File| {
        hand_to_directory_owner(&file, path);
        file
    };
    match create() {
        Ok(file) => return Ok(created(file)),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(error),
    }
    let why = match OpenOptions::new().read(true).write(true).custom_flags(NO_FOLLOW).open(path) {
        Ok(file) => match not_a_lock_file(&file)? {
            None => return Ok(file),
            Some(why) => why,
        },
        Err(error) if error.raw_os_error() == Some(libc::ELOOP) => LINK,
        Err(error) => return Err(error),
    };
    fs::rename(path, aside)?;
    tracing::warn!(file = %path.display(), moved_to = %aside.display(), "the lock file {why}; made anew");
    create().map(created)
}

/// What reading a file found.
pub(crate) enum Contents {
    Missing,
    Read(Vec<u8>),
    /// Not a file to read: a link, a FIFO, a device, or one larger
    /// than the bound (not read past it). Why, as a phrase ("is a symbolic link ...").
    Unusable(String),
}

/// Reads a regular file of at most `limit` bytes. An error is a failure to read (out of file
/// descriptors, say), which may pass, unlike what a file holds.
pub(crate) fn read_bounded(path: &Path, limit: u64) -> io::Result<Contents> {
    let file = match OpenOptions::new().read(true).custom_flags(NO_FOLLOW).open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Contents::Missing),
        Err(error) if error.raw_os_error() == Some(libc::ELOOP) => {
            return Ok(Contents::Unusable(LINK.to_owned()));
        }
        Err(error) => return Err(error),
    };
    if !file.metadata()?.is_file() {
        return Ok(Contents::Unusable(NOT_REGULAR.to_owned()));
    }
    Ok(match crate::storage::read_file::read_at_most(file, limit)? {
        Some(text) => Contents::Read(text),
        None => Contents::Unusable(format!("is larger than {limit} bytes")),
    })
}

/// Temporary file (created anew, never reused), fsync, rename over the old one, fsync of the
/// directory: a crash at any point leaves the old file or the new one, never half of one.
pub(crate) fn write_atomically(path: &Path, text: &[u8]) -> io::Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".tmp");
    let temporary = path.with_file_name(name);
    let mut file = create_anew(&temporary, 0o600)?;
    hand_to_directory_owner(&file, &temporary);
    let written = file.write_all(text).and_then(|()| file.sync_all());
    drop(file);
    if let Err(error) = written.and_then(|()| fs::rename(&temporary, path)) {
        // On a full disk a half-written temporary would hold the space the next write needs.
        let _ = fs::remove_file(&temporary);
        return Err(error);
    }
    File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()
}

/// Creates a file of this process's own at `path` (`mode`): what was there, left by a crash or
/// planted, is removed first (a link goes, not what it points at); if something takes its place in
/// between, the exclusive create fails.
pub(crate) fn create_anew(path: &Path, mode: u32) -> io::Result<File> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    OpenOptions::new().write(true).create_new(true).mode(mode).custom_flags(NO_FOLLOW).open(path)
}

/// Gives a file this process has just made to the owner of its directory: a backfill run as root
/// beside a service (systemd's dynamic user, say) must leave files the service can still read and
/// lock. Nothing to do when they match; not possible when this process is not root, which could
/// then not have written into another user's 0700 directory anyway.
fn hand_to_directory_owner(file: &File, path: &Path) {
    let directory = path.parent().unwrap_or(Path::new("."));
    let (Ok(mine), Ok(owner)) = (file.metadata(), fs::metadata(directory)) else { return };
    if (mine.uid(), mine.gid()) != (owner.uid(), owner.gid()) {
        let _ = std::os::unix::fs::fchown(file, Some(owner.uid()), Some(owner.gid()));
    }
}

const LINK: &str = "is a symbolic link, which is never followed";
const NOT_REGULAR: &str = "is not a regular file";

/// Why an open file is not one to lock and write the pid into: not a regular file, or one with a
/// second name.
fn not_a_lock_file(file: &File) -> io::Result<Option<&'static str>> {
    let found = file.metadata()?;
    Ok(if !found.is_file() {
        Some(NOT_REGULAR)
    } else if found.nlink() > 1 {
        Some("has another name (a hard link), so it may be a file from elsewhere")
    } else {
        None
    })
}

fn refused(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, why.to_owned())
}

fn current_uid() -> u32 {
    // The owner of a file this process makes; std has no getuid.
    fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_failed_write_leaves_no_temporary_behind() {
        let dir = tempfile::tempdir().unwrap();
        // A directory in the file's place: the rename fails after the temporary was written.
        let path = dir.path().join("token-main.answers.json");
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("inside"), "x").unwrap();
        assert!(super::write_atomically(&path, b"{}").is_err());
        assert!(!dir.path().join("token-main.answers.json.tmp").exists());
    }
}
