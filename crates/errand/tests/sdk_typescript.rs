//! Runs the TypeScript library's test suite (`sdk/typescript`, `@errand/client`) against the
//! `errand` binary cargo built, so `cargo nextest run --workspace` covers it.
//!
//! Prepares the toolchain idempotently: `npm ci` when `sdk/typescript/node_modules` is
//! missing or older than `package-lock.json`, then `npm run build` (tsc) and `npm test`
//! (Node's test runner over the compiled tests, each starting real `errand serve` processes
//! with `ERRAND_BIN` set to this build). Needs Node.js 20 or later and npm on the `PATH`;
//! without them the test fails and says so.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::SystemTime;

/// `sdk/typescript` in this repository.
fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../sdk/typescript")
        .canonicalize()
        .expect("sdk/typescript exists")
}

/// Runs a command in the SDK folder; panics with its whole output when it fails.
fn run(dir: &Path, program: &str, args: &[&str]) -> Output {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("ERRAND_BIN", env!("CARGO_BIN_EXE_errand"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| {
            panic!("could not run `{program}`: {e}. The TypeScript SDK tests need Node.js 20+ and npm on the PATH")
        });
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
    let version = run(&dir, "node", &["--version"]);
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
        run(&dir, "npm", &["ci", "--no-audit", "--no-fund"]);
    }
    run(&dir, "npm", &["run", "build"]);
    run(&dir, "npm", &["test"]);
}
