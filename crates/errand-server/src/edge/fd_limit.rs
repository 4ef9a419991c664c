//! Open files: the soft limit is raised to the hard limit at start, and the connection
//! cap is kept below it so that `accept` never fails with "too many open files" while the
//! store still needs files of its own.

/// Descriptors kept free for everything that is not a client connection: the SQLite file
/// with its `-wal` and `-shm` for each pooled connection, PostgreSQL pool sockets, the
/// listener, standard streams, and files a maintenance pass opens. 256 covers the largest
/// pools with room to spare.
const FD_HEADROOM: u64 = 256;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the soft limit now in force
/// (`None` where the platform has none).
pub(crate) fn raise_open_files_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(limit) => Some(limit),
            Err(e) => {
                tracing::warn!(error = %e, "cannot raise the open-files limit");
                rlimit::getrlimit(rlimit::Resource::NOFILE)
                    .ok()
                    .map(|(soft, _)| soft)
            }
        }
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The connection cap in force: the configured one, lowered so that connections, the
/// reserve and the headroom fit in `open_files`. At least one.
pub(crate) fn connection_cap(configured: usize, reserve: usize, open_files: Option<u64>) -> usize {
    let Some(open_files) = open_files else {
        return configured.max(1);
    };
    let room = open_files
        .saturating_sub(FD_HEADROOM)
        .saturating_sub(reserve as u64);
    configured
        .min(usize::try_from(room).unwrap_or(usize::MAX))
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_leaves_headroom_below_the_open_files_limit() {
        assert_eq!(connection_cap(10_000, 16, Some(1024)), 1024 - 256 - 16);
        assert_eq!(connection_cap(500, 16, Some(1_048_576)), 500);
        assert_eq!(connection_cap(500, 16, Some(100)), 1);
        assert_eq!(connection_cap(500, 16, None), 500);
    }
}
