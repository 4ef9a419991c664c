//! `job.toml`: the text of a definition's settings, parsed and checked as loading its
//! folder does (`errand_runner::definition::parse_settings_text`).
//!
//! Loading creates each `[[triggers.watch]]` directory; so that fuzzing creates nothing
//! outside its own folder, a text that parses as TOML with watch triggers has their `dir`
//! replaced with `watched` (in the fuzz folder) before it is checked. Properties: nothing
//! panics; a definition that loads has a schedule the schedules API accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "definition_dir.rs"]
mod definition_dir;

/// The text with every watch trigger's `dir` moved into the fuzz folder, or `None` when it
/// has no watch trigger (then the original text is checked, byte for byte).
fn contain_watch_dirs(text: &str) -> Option<String> {
    let mut table: toml::Table = toml::from_str(text).ok()?;
    let watch = table
        .get_mut("triggers")?
        .as_table_mut()?
        .get_mut("watch")?
        .as_array_mut()?;
    for w in watch.iter_mut() {
        if let Some(w) = w.as_table_mut() {
            if w.contains_key("dir") {
                w.insert("dir".into(), toml::Value::String("watched".into()));
            }
        }
    }
    Some(toml::to_string(&table).expect("a table serialises"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let contained = contain_watch_dirs(text);
    let text = contained.as_deref().unwrap_or(text);
    let dir = definition_dir::dir();
    if let Ok(def) = errand_runner::definition::parse_settings_text("fuzz", dir, None, text) {
        definition_dir::check(&def);
    }
});
