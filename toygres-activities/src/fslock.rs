//! An exclusive advisory lock on a file (`flock`), for coordination between processes on one
//! machine: server replicas sharing a data dir, test processes sharing a database server.

use std::os::fd::AsRawFd as _;
use std::path::Path;
use std::time::Duration;

/// A held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct FileLock {
    _file: std::fs::File,
}

impl FileLock {
    /// Waits until the lock on `path` (created when missing) is ours.
    pub async fn acquire(path: &Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        loop {
            // SAFETY: flock on a file descriptor we own; LOCK_NB never blocks.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(Self { _file: file });
            }
            let error = std::io::Error::last_os_error();
            if error.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(error);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The lock on `path` (created when missing) if nobody holds it now.
    pub fn try_acquire(path: &Path) -> std::io::Result<Option<Self>> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        // SAFETY: flock on a file descriptor we own; LOCK_NB never blocks.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(Some(Self { _file: file }));
        }
        let error = std::io::Error::last_os_error();
        if error.raw_os_error() == Some(libc::EWOULDBLOCK) {
            Ok(None)
        } else {
            Err(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_holder_at_a_time() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("lock");
        let first = FileLock::acquire(&path).await?;
        let second =
            tokio::time::timeout(Duration::from_millis(100), FileLock::acquire(&path)).await;
        assert!(
            second.is_err(),
            "the second acquire waits while the first is held"
        );
        drop(first);
        let third = tokio::time::timeout(Duration::from_secs(5), FileLock::acquire(&path)).await;
        assert!(third.is_ok_and(|lock| lock.is_ok()));
        Ok(())
    }
}
