//! The journal directory's lock: one journal at a time per directory.
//!
//! An exclusive, non-blocking `flock(2)` on the file `lock` in the directory. The kernel
//! releases it when the descriptor closes, so a crashed process never leaves it held, and
//! the file itself is never deleted (deleting it would let two processes lock two different
//! files of the same name). `flock` locks belong to the open file description, so a second
//! `Journal::open` in the same process is refused too.
//!
//! `libc::flock` rather than a crate: `libc` is already a dependency, and std's
//! `File::try_lock` needs Rust 1.89, newer than the crate's `rust-version`.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use super::error::io_error;
use super::JournalError;

pub(super) const LOCK_NAME: &str = "lock";

/// Held while the journal is open; dropping it releases the lock.
#[derive(Debug)]
pub(super) struct DirectoryLock {
    _file: File,
}

impl DirectoryLock {
    pub(super) fn acquire(dir: &Path) -> Result<DirectoryLock, JournalError> {
        let path = dir.join(LOCK_NAME);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_error(&path, "open the lock file"))?;
        // SAFETY: flock reads only the descriptor, which `file` keeps open.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::WouldBlock {
                return Err(JournalError::Locked { dir: dir.to_path_buf(), lock: path });
            }
            return Err(io_error(path, "lock")(error));
        }
        Ok(DirectoryLock { _file: file })
    }
}
