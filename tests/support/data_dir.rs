//! Waiting for sled to let go of a data folder (shared by the API tests and
//! the store benchmark through `#[path]`).

use std::{path::Path, time::Duration};

/// Waits until no one holds the lock sled takes on `data_dir/db` (returns
/// at once for a new folder). A database dropped in this process, such as
/// a server stopped just before, lets go of it a moment later (sled's
/// flusher thread holds it until it ends; sled's own tests block on the
/// lock for that reason, `Config::try_lock`): opening the folder before
/// then fails with "cannot open the data folder".
pub fn wait_until_released(data_dir: &Path) {
    use std::os::fd::AsRawFd;
    let Ok(file) = std::fs::File::open(data_dir.join("db")) else {
        return;
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    // SAFETY: flock on a descriptor this function owns.
    while unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the data folder was still locked 10 s after its database was dropped"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Closing `file` releases the lock.
}
