//! Running Node.js suites from cargo tests (the TypeScript SDK's, the dashboard's browser
//! tests): each step in a folder with a time limit, killed with its whole process group
//! when it overruns, with `ERRAND_BIN` set to this build's binary; `npm ci` only when the
//! lock file changed since the last install.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

/// Reads a pipe to its end on a thread of its own.
fn collect(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}

/// Runs `program args` in `dir` within `limit`, with `ERRAND_BIN` and `envs` set; panics
/// with its whole output when it fails or overruns (then its process group, servers and
/// browsers included, is killed). `needs` says what to install when the program is missing.
pub fn run(
    dir: &Path,
    program: &str,
    args: &[&str],
    limit: Duration,
    envs: &[(&str, &str)],
    needs: &str,
) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("ERRAND_BIN", env!("CARGO_BIN_EXE_errand"))
        .env("NO_COLOR", "1")
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("could not run `{program}`: {e}. {needs}"));
    let stdout = collect(child.stdout.take());
    let stderr = collect(child.stderr.take());
    let started = Instant::now();
    let mut overran = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if started.elapsed() > limit {
            overran = true;
            // The whole group: npm, node, the test files and the servers they started.
            let _ = Command::new("kill")
                .args(["-KILL", &format!("-{}", child.id())])
                .status();
            break child.wait().expect("wait for the killed child");
        }
        thread::sleep(Duration::from_millis(100));
    };
    let output = Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    };
    assert!(
        !overran,
        "`{program} {}` in {} ran longer than {limit:?} and was killed:\n--- stdout ---\n{}\n--- stderr ---\n{}",
        args.join(" "),
        dir.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("$ {program} {}\n{stdout}", args.join(" "));
    eprintln!("{stderr}");
    assert!(
        output.status.success(),
        "`{program} {}` in {} failed ({}):\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        args.join(" "),
        dir.display(),
        output.status
    );
    output
}

/// A file's modification time, if it exists.
fn modified(path: &Path) -> Option<SystemTime> {
    path.metadata().and_then(|m| m.modified()).ok()
}

/// Whether `npm ci` must run in `dir`: no install yet, or the lock file changed since the
/// last one.
pub fn needs_install(dir: &Path) -> bool {
    // npm writes node_modules/.package-lock.json on every install.
    match (
        modified(&dir.join("node_modules/.package-lock.json")),
        modified(&dir.join("package-lock.json")),
    ) {
        (Some(installed), Some(lock)) => lock > installed,
        _ => true,
    }
}

/// Fails unless `node` is version 20 or later.
pub fn require_node_20(dir: &Path, needs: &str) {
    let version = run(
        dir,
        "node",
        &["--version"],
        Duration::from_secs(30),
        &[],
        needs,
    );
    let version = String::from_utf8_lossy(&version.stdout);
    let major: u32 = version
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    assert!(
        major >= 20,
        "Node.js 20 or later is needed, found {}. {needs}",
        version.trim()
    );
}
