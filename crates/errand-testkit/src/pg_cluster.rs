//! A private PostgreSQL cluster that a test may crash and restart without disturbing the
//! machine's shared server. Built from the machine's PostgreSQL binaries with `initdb`, run
//! as the `postgres` user (PostgreSQL refuses to run as root), on a free port.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Why a private cluster could not be had.
#[derive(Debug, thiserror::Error)]
#[error("private PostgreSQL cluster: {0}")]
pub struct ClusterError(String);

/// A running private cluster; stopped and deleted when dropped.
pub struct PgCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

fn find_bin() -> Option<PathBuf> {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<PathBuf> = std::fs::read_dir(root)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop()
}

fn free_port() -> Result<u16, ClusterError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| ClusterError(e.to_string()))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| ClusterError(e.to_string()))
}

impl PgCluster {
    /// Creates and starts a cluster.
    ///
    /// # Errors
    /// No PostgreSQL binaries, no `postgres` user, or the cluster did not start.
    pub fn start() -> Result<Self, ClusterError> {
        let bin = find_bin().ok_or_else(|| {
            ClusterError("no PostgreSQL binaries under /usr/lib/postgresql".into())
        })?;
        let dir = tempfile::Builder::new()
            .prefix("errand-pg-")
            .tempdir()
            .map_err(|e| ClusterError(e.to_string()))?;
        let chown = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status()
            .map_err(|e| ClusterError(e.to_string()))?;
        if !chown.success() {
            return Err(ClusterError(
                "cannot hand the data directory to the postgres user".into(),
            ));
        }
        let cluster = Self {
            bin,
            dir,
            port: free_port()?,
        };
        cluster.pg(&[
            "initdb",
            "-D",
            &cluster.data(),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ])?;
        cluster.start_server()?;
        Ok(cluster)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn pg(&self, args: &[&str]) -> Result<(), ClusterError> {
        let (tool, rest) = args
            .split_first()
            .ok_or_else(|| ClusterError("no command".into()))?;
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(tool))
            .args(rest)
            .output()
            .map_err(|e| ClusterError(format!("{tool}: {e}")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(ClusterError(format!(
                "{tool} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )))
        }
    }

    fn start_server(&self) -> Result<(), ClusterError> {
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=on",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        self.pg(&[
            "pg_ctl",
            "-D",
            &self.data(),
            "-o",
            &opts,
            "-l",
            &log,
            "-w",
            "start",
        ])
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Crashes the server: an `immediate` shutdown (no checkpoint; crash recovery at the next
    /// start).
    ///
    /// # Errors
    /// The server did not stop.
    pub fn stop(&self) -> Result<(), ClusterError> {
        self.pg(&[
            "pg_ctl",
            "-D",
            &self.data(),
            "-m",
            "immediate",
            "-w",
            "stop",
        ])
    }

    /// Starts a stopped server.
    ///
    /// # Errors
    /// The server did not start.
    pub fn start_again(&self) -> Result<(), ClusterError> {
        self.start_server()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
