//! The durable rows' directories, and the `fsync-limit` row.
//!
//! Every durable row journals into a fresh, empty directory of its own inside the bench's
//! data directory, deleted right after the row, so that no row recovers or snapshots what
//! another wrote. The data directory defaults to one in the current directory, not in the
//! system's temporary directory: that is often tmpfs, in memory, where an fsync costs
//! nothing and the rows would not measure a disk.
//!
//! Invariant: the bench deletes only what it created: the rows' directories, and the data
//! directory itself only if it did not exist before the run.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{cpu_time, Measured};

/// `./partner-credit-bench-data-<pid>`: where the durable rows journal without `--data-dir`.
pub fn data_dir_default() -> PathBuf {
    PathBuf::from(format!("partner-credit-bench-data-{}", std::process::id()))
}

/// Whether `path` (or, if it does not exist yet, the nearest parent that does) is on tmpfs:
/// memory, where fsyncs cost nothing.
pub fn on_tmpfs(path: &Path) -> bool {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let Some(existing) = absolute.ancestors().find(|ancestor| ancestor.exists()) else { return false };
    tmpfs(existing)
}

#[cfg(target_os = "linux")]
fn tmpfs(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else { return false };
    let mut stat = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: `path` is a NUL-terminated string and statfs writes a statfs into the pointer.
    let stat = unsafe {
        if libc::statfs(path.as_ptr(), stat.as_mut_ptr()) != 0 {
            return false;
        }
        stat.assume_init()
    };
    stat.f_type == libc::TMPFS_MAGIC
}

#[cfg(not(target_os = "linux"))]
fn tmpfs(_: &Path) -> bool {
    false
}

/// The bench's data directory and the rows' directories in it.
pub(super) struct DataDirs {
    root: PathBuf,
    /// The bench made `root`, so it removes it at the end.
    created: bool,
    /// Rows so far: each row's directory is numbered, so names never repeat in a run.
    rows: usize,
    /// Row directories made and not yet removed: removed on drop too.
    open: Vec<PathBuf>,
}

impl DataDirs {
    /// `root` (or [`data_dir_default`]), created if missing.
    pub fn create(root: Option<PathBuf>) -> anyhow::Result<DataDirs> {
        let root = root.unwrap_or_else(data_dir_default);
        let created = !root.exists();
        std::fs::create_dir_all(&root)
            .map_err(|error| anyhow::anyhow!("creating the data directory {}: {error}", root.display()))?;
        Ok(DataDirs { root, created, rows: 0, open: Vec::new() })
    }

    /// A new, empty directory for the row `name`.
    pub fn fresh(&mut self, name: &str) -> anyhow::Result<PathBuf> {
        self.rows += 1;
        let slug: String =
            name.chars().map(|char| if char.is_ascii_alphanumeric() { char } else { '-' }).collect();
        let dir = self.root.join(format!("row-{}-{slug}-{}", self.rows, std::process::id()));
        anyhow::ensure!(
            !dir.exists(),
            "{} exists already: move it away or give another --data-dir",
            dir.display()
        );
        std::fs::create_dir(&dir)
            .map_err(|error| anyhow::anyhow!("creating the row's directory {}: {error}", dir.display()))?;
        self.open.push(dir.clone());
        Ok(dir)
    }

    /// Deletes a row's directory (made by [`DataDirs::fresh`]).
    pub fn remove(&mut self, dir: &Path) -> anyhow::Result<()> {
        debug_assert!(dir.starts_with(&self.root));
        self.open.retain(|open| open != dir);
        std::fs::remove_dir_all(dir).map_err(|error| anyhow::anyhow!("removing {}: {error}", dir.display()))
    }

    /// Removes the data directory if the bench made it.
    pub fn finish(mut self) -> anyhow::Result<()> {
        let created = std::mem::take(&mut self.created);
        if created {
            std::fs::remove_dir_all(&self.root)
                .map_err(|error| anyhow::anyhow!("removing {}: {error}", self.root.display()))?;
        }
        Ok(())
    }
}

impl Drop for DataDirs {
    /// A run that failed half way leaves nothing behind either: neither the row it was in
    /// nor, if the bench made it, the data directory.
    fn drop(&mut self) {
        for dir in &self.open {
            let _ = std::fs::remove_dir_all(dir);
        }
        if self.created {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

/// The disk's fdatasyncs a second of 4 KiB appends in `dir` for `duration`, as if each were
/// a purchase: what a design with one fsync per operation could do at most.
pub(super) async fn fsync_limit(dir: PathBuf, duration: Duration) -> anyhow::Result<Measured> {
    let cpu_before = cpu_time();
    let started = Instant::now();
    let rate =
        tokio::task::spawn_blocking(move || crate::journal::measure_fdatasync(&dir, duration)).await??;
    let elapsed = started.elapsed();
    Ok(Measured {
        // So that purchases over elapsed is the probe's rate (`elapsed` adds the creation
        // and removal of its file, which the probe does not count).
        purchases: (rate * elapsed.as_secs_f64()).round() as u64,
        elapsed,
        cpu: cpu_time().saturating_sub(cpu_before),
        ..Measured::zero()
    })
}
