//! A real jobs directory for script-host tests: folders with job.toml and scripts.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use errand_client::Client;
use errand_core::{Job, JobId};
use errand_testkit::eventually;

/// A temporary jobs directory.
pub struct JobsDir {
    pub dir: tempfile::TempDir,
}

impl JobsDir {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("jobs dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn path_str(&self) -> String {
        self.dir.path().display().to_string()
    }

    /// Writes `<name>/job.toml` and `<name>/<script>` (executable).
    pub fn add(&self, name: &str, job_toml: &str, script: &str, body: &str) -> PathBuf {
        let folder = self.dir.path().join(name);
        std::fs::create_dir_all(&folder).expect("definition folder");
        std::fs::write(folder.join("job.toml"), job_toml).expect("job.toml");
        write_script(&folder.join(script), body);
        folder
    }
}

/// Writes an executable script by renaming a new file over it, as a deployment should: a
/// run still reading the old script keeps reading the old one.
pub fn write_script(path: &Path, body: &str) {
    let tmp = path.with_extension("tmp-new");
    std::fs::write(&tmp, body).expect("script");
    let mut perms = std::fs::metadata(&tmp).expect("script meta").permissions();
    perms.set_mode(0o755);
    std::fs::set_permissions(&tmp, perms).expect("chmod");
    std::fs::rename(&tmp, path).expect("rename script");
}

/// Waits until the server lists `name` among its loaded definitions.
pub async fn loaded(client: &Client, name: &str) {
    eventually(
        &format!("definition {name} loaded"),
        Duration::from_secs(15),
        || async {
            let list = client.definitions().await.ok()?;
            list.definitions
                .iter()
                .any(|d| d.name == name)
                .then_some(())
        },
    )
    .await;
}

/// Runs a definition now with `payload` and waits for the job to end.
pub async fn run_to_end(client: &Client, name: &str, payload: serde_json::Value) -> Job {
    let job = client
        .run_definition(
            name,
            &errand_api::RunDefinitionRequest {
                payload: Some(payload),
                idempotency_key: None,
            },
        )
        .await
        .expect("run definition");
    finished(client, job.id, Duration::from_secs(60)).await
}

/// Waits until a job reaches a final state.
pub async fn finished(client: &Client, id: JobId, within: Duration) -> Job {
    eventually("job to finish", within, || async {
        let job = client.job(id, Some("1s")).await.ok()?;
        job.state.is_final().then_some(job)
    })
    .await
}

/// Every log line of a job, as `LEVEL text`.
pub async fn log_lines(client: &Client, id: JobId) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = client
            .job_logs(id, None, cursor.as_deref())
            .await
            .expect("logs");
        out.extend(page.lines.iter().map(|l| format!("{} {}", l.level, l.line)));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

/// Whether a process with this pid still exists (a zombie counts as gone).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}
