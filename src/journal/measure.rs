//! How fast this disk makes small appends durable: the ceiling on group commits a second
//! under [`FsyncPolicy::Always`](super::FsyncPolicy::Always), for the bench to report next
//! to the journal's throughput.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use super::error::io_error;
use super::JournalError;

/// Appends 4 KiB and fdatasyncs it, over and over for `duration`, in a temporary file in
/// `dir` (removed after): the fsyncs per second.
pub fn measure_fdatasync(dir: &Path, duration: Duration) -> Result<f64, JournalError> {
    let path = dir.join(format!(".fdatasync-probe-{}.tmp", std::process::id()));
    let mut file = OpenOptions::new()
        .append(true)
        .create_new(true)
        .open(&path)
        .map_err(io_error(&path, "create the fdatasync probe"))?;
    let block = [0x5a_u8; 4096];
    let started = Instant::now();
    let mut syncs = 0_u64;
    let measured = loop {
        if let Err(error) = file.write_all(&block).and_then(|()| file.sync_data()) {
            break Err(io_error(&path, "append to and fdatasync the probe")(error));
        }
        syncs += 1;
        let elapsed = started.elapsed();
        if elapsed >= duration {
            break Ok(syncs as f64 / elapsed.as_secs_f64());
        }
    };
    drop(file);
    let removed = fs::remove_file(&path).map_err(io_error(&path, "remove the fdatasync probe"));
    let rate = measured?;
    removed?;
    Ok(rate)
}
