//! A real `errand serve` child process.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use errand_client::Client;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Why a server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// The process could not be spawned or talked to.
    #[error("errand serve: {0}")]
    Start(String),
}

/// A running `errand serve`. Killed (SIGKILL) when dropped, so a failing test leaves no
/// process behind.
pub struct ServerProcess {
    child: Option<Child>,
    binary: PathBuf,
    data_dir: PathBuf,
    extra_args: Vec<String>,
    url: String,
    /// Where it listens: `127.0.0.1:0` (any free port) until a restart on the same port.
    listen: String,
    stdout: Arc<Mutex<Vec<String>>>,
    /// What start waits for: `/readyz`, or only `/healthz` for a server that is meant to
    /// come up unable to take jobs.
    wait_ready: bool,
    /// Where stderr goes, at `debug` level, when set (else it is inherited).
    debug_log: Option<std::path::PathBuf>,
    _temp: Option<tempfile::TempDir>,
}

impl ServerProcess {
    /// Starts `binary serve` on a fresh temporary data directory.
    ///
    /// # Errors
    /// The process did not start or never became ready.
    pub async fn start(binary: &Path) -> Result<Self, TestkitError> {
        let temp = tempfile::tempdir().map_err(|e| TestkitError::Start(e.to_string()))?;
        let dir = temp.path().to_path_buf();
        let mut s = Self::start_in(binary, &dir, &[]).await?;
        s._temp = Some(temp);
        Ok(s)
    }

    /// Starts `binary serve` on `data_dir` with extra flags.
    ///
    /// # Errors
    /// The process did not start or never became ready.
    pub async fn start_in(
        binary: &Path,
        data_dir: &Path,
        extra_args: &[&str],
    ) -> Result<Self, TestkitError> {
        Self::start_waiting(binary, data_dir, extra_args, true, None).await
    }

    /// Starts `binary serve` on `data_dir` with extra flags, waiting only until it is alive
    /// (`/healthz`), not ready: for a server that should come up unable to take jobs.
    ///
    /// # Errors
    /// The process did not start or never answered `/healthz` with 200.
    pub async fn start_unready_in(
        binary: &Path,
        data_dir: &Path,
        extra_args: &[&str],
    ) -> Result<Self, TestkitError> {
        Self::start_waiting(binary, data_dir, extra_args, false, None).await
    }

    async fn start_waiting(
        binary: &Path,
        data_dir: &Path,
        extra_args: &[&str],
        wait_ready: bool,
        debug_log: Option<&Path>,
    ) -> Result<Self, TestkitError> {
        let mut s = Self {
            child: None,
            binary: binary.to_path_buf(),
            data_dir: data_dir.to_path_buf(),
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
            url: String::new(),
            listen: "127.0.0.1:0".into(),
            stdout: Arc::default(),
            wait_ready,
            debug_log: debug_log.map(Path::to_path_buf),
            _temp: None,
        };
        s.spawn().await?;
        Ok(s)
    }

    /// Starts `binary serve` on `data_dir` with extra flags, logging at `debug` level into
    /// `log` (appended to across restarts): for a test that searches everything errand
    /// itself wrote.
    ///
    /// # Errors
    /// The process did not start or never became ready, or `log` cannot be opened.
    pub async fn start_logging_in(
        binary: &Path,
        data_dir: &Path,
        extra_args: &[&str],
        log: &Path,
    ) -> Result<Self, TestkitError> {
        Self::start_waiting(binary, data_dir, extra_args, true, Some(log)).await
    }

    async fn spawn(&mut self) -> Result<(), TestkitError> {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("serve")
            .arg("--listen")
            .arg(&self.listen)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.extra_args)
            // No readiness drain on SIGTERM (default 2 s): no load balancer watches a test's
            // server, and `terminate` would wait for it. A test of the drain passes
            // `--shutdown-drain`, which wins over the variable.
            .env("ERRAND_SHUTDOWN_DRAIN", "0s")
            .env(
                "ERRAND_LOG",
                std::env::var("ERRAND_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some(log) = &self.debug_log {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .map_err(|e| TestkitError::Start(format!("{}: {e}", log.display())))?;
            cmd.env("ERRAND_LOG", "debug").stderr(Stdio::from(file));
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| TestkitError::Start(e.to_string()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| TestkitError::Start("no stdout".into()))?;
        let mut lines = BufReader::new(stdout).lines();
        let start_block =
            tokio::time::timeout(Duration::from_secs(30), read_start_block(&mut lines))
                .await
                .map_err(|_| TestkitError::Start("no start lines printed within 30 s".into()))??;
        let first = &start_block[0];
        let url = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .ok_or_else(|| TestkitError::Start(format!("unexpected first line: {first}")))?
            .to_string();
        // Keep draining stdout so the child never blocks on a full pipe, and keep the lines:
        // tests read what the server says about itself at start.
        let kept = Arc::new(Mutex::new(start_block));
        self.stdout = kept.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(mut kept) = kept.lock() {
                    kept.push(line);
                }
            }
        });
        self.child = Some(child);
        self.url = url;
        let client = self.client()?;
        for _ in 0..300 {
            let up = if self.wait_ready {
                client.ready().await
            } else {
                client.healthy().await
            };
            if up.unwrap_or(false) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(TestkitError::Start(if self.wait_ready {
            "never became ready".into()
        } else {
            "never answered /healthz".into()
        }))
    }

    /// The server's base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// The lines the current process printed on stdout so far, the address line first. The
    /// whole start block (address to `auth:`) is always there: start reads it before it
    /// returns, so a test never races the reader for it.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// A client for this server.
    ///
    /// # Errors
    /// Never in practice: the URL is well-formed.
    pub fn client(&self) -> Result<Client, TestkitError> {
        Client::new(&self.url).map_err(|e| TestkitError::Start(e.to_string()))
    }

    /// `kill -9`: the process dies without any chance to flush or clean up.
    pub async fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// Sends SIGTERM and waits for the process to exit; returns whether it exited cleanly.
    pub async fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        if let Some(pid) = child.id() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
        }
        matches!(
            tokio::time::timeout(Duration::from_secs(30), child.wait()).await,
            Ok(Ok(status)) if status.success()
        )
    }

    /// Starts the server again on the same data directory (a new port).
    ///
    /// # Errors
    /// The process did not start or never became ready.
    pub async fn restart(&mut self) -> Result<(), TestkitError> {
        self.kill9().await;
        self.spawn().await
    }

    /// `kill -9`, then starts the server again on the same data directory and the same
    /// address, so clients holding its URL find it again.
    ///
    /// # Errors
    /// The process did not start or never became ready.
    pub async fn restart_same_port(&mut self) -> Result<(), TestkitError> {
        self.kill9().await;
        self.listen = self.url.trim_start_matches("http://").to_string();
        self.spawn().await
    }
}

/// The last line of the block `errand serve` prints when it starts listening.
const START_BLOCK_END: &str = "auth: ";

/// Reads the lines the server prints at start, from its address to its `auth:` line.
async fn read_start_block(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
) -> Result<Vec<String>, TestkitError> {
    let mut block = Vec::new();
    loop {
        let line = lines
            .next_line()
            .await
            .map_err(|e| TestkitError::Start(e.to_string()))?
            .ok_or_else(|| {
                TestkitError::Start(format!(
                    "exited before it finished its start lines: {block:?}"
                ))
            })?;
        let last = line.starts_with(START_BLOCK_END);
        block.push(line);
        if last {
            return Ok(block);
        }
    }
}
