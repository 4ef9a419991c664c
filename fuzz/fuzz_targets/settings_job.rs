//! `settings.job`: the JSON settings of an Azure WebJobs folder, parsed and checked as
//! loading a `triggered/` or `continuous/` folder does
//! (`errand_runner::definition::parse_settings_text`).
//!
//! Input: the first byte picks the mode (even: triggered); the rest is the file. Properties:
//! nothing panics; a definition that loads has a schedule the schedules API accepts.
#![no_main]

use errand_runner::definition::Mode;
use libfuzzer_sys::fuzz_target;

#[path = "definition_dir.rs"]
mod definition_dir;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let mode = if mode % 2 == 0 {
        Mode::Triggered
    } else {
        Mode::Continuous
    };
    let dir = definition_dir::dir();
    if let Ok(def) = errand_runner::definition::parse_settings_text("fuzz", dir, Some(mode), text) {
        definition_dir::check(&def);
    }
});
