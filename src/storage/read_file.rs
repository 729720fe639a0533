//! Reading a file an operator names (the token file, a CA file, a configuration file): links are
//! followed (a Kubernetes Secret is one), but only a regular file is read, never past a bound, and
//! never waiting on a FIFO that nobody writes, which would hold a runtime thread and a shutdown.

use std::fs::OpenOptions;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The whole file, if it is a regular file of at most `limit` bytes.
pub(crate) fn read_regular_file(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file (a FIFO, a device or a directory)",
        ));
    }
    read_at_most(file, limit)?.ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidData, format!("larger than {limit} bytes"))
    })
}

/// All of `source` if it holds at most `limit` bytes (None if more: not read past the bound).
pub(crate) fn read_at_most(source: impl Read, limit: u64) -> io::Result<Option<Vec<u8>>> {
    let mut text = Vec::new();
    source.take(limit + 1).read_to_end(&mut text)?;
    Ok((text.len() as u64 <= limit).then_some(text))
}

/// The same, as UTF-8 text.
pub(crate) fn read_regular_text(path: &Path, limit: u64) -> io::Result<String> {
    String::from_utf8(read_regular_file(path, limit)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_regular_file_within_the_bound_is_read() {
        let tmp = tempfile::Builder::new().prefix("wolkvox-read-").tempdir().unwrap();
        let dir = tmp.path();
        std::fs::write(dir.join("small"), "fake-token\n").unwrap();
        assert_eq!(read_regular_text(&dir.join("small"), 64).unwrap(), "fake-token\n");
        assert!(
            read_regular_file(&dir.join("small"), 4)
                .unwrap_err()
                .to_string()
                .contains("larger than 4 bytes")
        );
        assert!(
            read_regular_file(Path::new("/dev/zero"), 1 << 20)
                .unwrap_err()
                .to_string()
                .contains("not a regular file")
        );
        // A FIFO that nobody writes: refused at once, not waited on.
        assert!(
            std::process::Command::new("mkfifo").arg(dir.join("fifo")).status().unwrap().success()
        );
        assert!(
            read_regular_file(&dir.join("fifo"), 64)
                .unwrap_err()
                .to_string()
                .contains("not a regular file")
        );
    }
}
