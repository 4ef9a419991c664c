//! Runs the TypeScript library's test suite (`sdk/typescript`, `@errand/client`) against the
//! `errand` binary cargo built, so `cargo nextest run --workspace` covers it.
//!
//! Prepares the toolchain idempotently: `npm ci` when `sdk/typescript/node_modules` is
//! missing or older than `package-lock.json`, then removes `dist` and `dist-test` (tsc never
//! deletes what a removed source compiled to, so a deleted test would still run) and runs
//! `npm run build` (tsc) and `npm test` (Node's test runner over the compiled tests, each
//! starting real `errand serve` processes with `ERRAND_BIN` set to this build). Every step
//! has a timeout (the suite 15 minutes, `ERRAND_SDK_TEST_TIMEOUT_SECS` to change it); a step
//! that overruns is killed with its whole process group. Needs Node.js 20 or later and npm
//! on the `PATH`; without them the test fails and says so.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

/// `sdk/typescript` in this repository.
fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../sdk/typescript")
        .canonicalize()
        .expect("sdk/typescript exists")
}

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

/// Runs a command in the SDK folder within `limit`; panics with its whole output when it
/// fails or overruns (then its process group, servers included, is killed).
fn run(dir: &Path, program: &str, args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("ERRAND_BIN", env!("CARGO_BIN_EXE_errand"))
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("could not run `{program}`: {e}. The TypeScript SDK tests need Node.js 20+ and npm on the PATH")
        });
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

/// Whether `npm ci` must run: no install yet, or the lock file changed since the last one.
fn needs_install(dir: &Path) -> bool {
    // npm writes node_modules/.package-lock.json on every install.
    match (
        modified(&dir.join("node_modules/.package-lock.json")),
        modified(&dir.join("package-lock.json")),
    ) {
        (Some(installed), Some(lock)) => lock > installed,
        _ => true,
    }
}

#[test]
fn typescript_sdk_suite() {
    let dir = sdk_dir();
    let version = run(&dir, "node", &["--version"], Duration::from_secs(30));
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
        "the TypeScript SDK needs Node.js 20 or later, found {}",
        version.trim()
    );
    if needs_install(&dir) {
        run(
            &dir,
            "npm",
            &["ci", "--no-audit", "--no-fund"],
            Duration::from_secs(600),
        );
    }
    for out in ["dist", "dist-test"] {
        let path = dir.join(out);
        // A symlink (an out-of-tree build folder) goes as a link; a folder with its contents.
        let removed = if path.is_symlink() {
            std::fs::remove_file(&path)
        } else {
            std::fs::remove_dir_all(&path)
        };
        if let Err(e) = removed {
            assert!(
                e.kind() == std::io::ErrorKind::NotFound,
                "could not remove {}: {e}",
                path.display()
            );
        }
    }
    run(&dir, "npm", &["run", "build"], Duration::from_secs(300));
    let suite_secs = std::env::var("ERRAND_SDK_TEST_TIMEOUT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(900);
    run(&dir, "npm", &["test"], Duration::from_secs(suite_secs));
}
