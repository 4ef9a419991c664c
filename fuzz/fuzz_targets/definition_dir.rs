//! The folder the definition targets build their definitions in: made once per process
//! under the temporary directory, with an executable `run` entry file, so a settings text
//! that is valid builds a whole definition.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::OnceLock;

/// The definition's folder (`<tmp>/errand-fuzz-<pid>/fuzz`).
pub fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir()
            .join(format!("errand-fuzz-{}", std::process::id()))
            .join("fuzz");
        std::fs::create_dir_all(&dir).expect("create the definition folder");
        let run = dir.join("run");
        std::fs::write(&run, "#!/bin/sh\nexit 0\n").expect("write run");
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).expect("chmod run");
        dir
    })
}

/// A definition that loaded: its own schedule, as it will be stored, passes the schedules
/// API's checks (`Definition::schedule_spec` says it cannot fail).
pub fn check(def: &errand_runner::definition::Definition) {
    if let Some(spec) = def.schedule_spec() {
        if let Err(e) = spec.validate(jiff::Timestamp::now()) {
            panic!("a loaded definition's schedule is refused: {e:?}\n{spec:?}");
        }
    }
}
