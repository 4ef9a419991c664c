//! The README teaches what compiles and what exists: its "Five minutes" program is
//! `examples/five_minutes.rs` word for word (so the build compiles the README's code), that
//! program names only errand crates its install section lists, and its context table names
//! every public method of `JobContext`.

use std::collections::BTreeSet;
use std::path::Path;

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The first fenced block of `lang` after the heading line `heading`.
fn block_after(text: &str, heading: &str, lang: &str) -> String {
    let at = text
        .lines()
        .position(|l| l == heading)
        .unwrap_or_else(|| panic!("the README has a `{heading}` heading"));
    let fence = format!("```{lang}");
    let mut lines = text.lines().skip(at).skip_while(|l| *l != fence).skip(1);
    let mut out = Vec::new();
    for line in lines.by_ref() {
        if line == "```" {
            return out.join("\n");
        }
        out.push(line);
    }
    panic!("the ```{lang} block after `{heading}` is not closed");
}

/// The example's program: the file without its leading `//!` comment and the blank line
/// after it.
fn example_program() -> String {
    let text = read("examples/five_minutes.rs");
    let mut lines = text.lines().skip_while(|l| l.starts_with("//!"));
    assert_eq!(
        lines.next(),
        Some(""),
        "a blank line after the example's header"
    );
    lines.collect::<Vec<_>>().join("\n").trim_end().to_string()
}

/// Every identifier that starts with `errand_` and begins a path (`errand_x::...`).
fn errand_crates_named(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = code.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    for (i, _) in code.match_indices("errand_") {
        if i > 0 && (ident(bytes[i - 1]) || bytes[i - 1] == b':') {
            continue;
        }
        let end = code[i..]
            .bytes()
            .position(|b| !ident(b))
            .map_or(code.len(), |n| i + n);
        if code[end..].starts_with("::") {
            out.insert(code[i..end].to_string());
        }
    }
    out
}

#[test]
fn the_five_minute_program_is_the_compiled_example() {
    let readme = read("README.md");
    assert_eq!(
        block_after(&readme, "## Five minutes", "rust"),
        example_program(),
        "README.md's Five minutes program and examples/five_minutes.rs differ: change both"
    );
}

#[test]
fn the_five_minute_program_needs_only_the_crates_the_install_section_lists() {
    let readme = read("README.md");
    let listed: BTreeSet<String> = block_after(&readme, "## Install", "toml")
        .lines()
        .filter_map(|l| {
            l.split_once('=')
                .map(|(name, _)| name.trim().replace('-', "_"))
        })
        .collect();
    let named = errand_crates_named(&block_after(&readme, "## Five minutes", "rust"));
    assert!(!named.is_empty(), "the program names errand's crates");
    let missing: Vec<_> = named.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "the program names {missing:?}, which the install section does not list"
    );
}

#[test]
fn the_readme_lists_every_public_method_of_the_job_context() {
    let readme = read("README.md");
    let context = read("src/context.rs");
    let methods: Vec<&str> = context
        .lines()
        .filter_map(|l| {
            let l = l.trim_start();
            l.strip_prefix("pub fn ")
                .or_else(|| l.strip_prefix("pub async fn "))
        })
        .filter_map(|rest| rest.split(['(', '<']).next())
        .collect();
    assert!(methods.len() >= 15, "{methods:?}");
    let missing: Vec<_> = methods
        .iter()
        .filter(|m| {
            !readme.contains(&format!("`ctx.{m}(")) && !readme.contains(&format!("`ctx.{m}::<"))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "JobContext methods the README does not list: {missing:?}"
    );
}

#[test]
fn crate_paths_are_found_where_they_begin_a_path() {
    let named = errand_crates_named(
        "use errand_client::{Client, JobId};\nlet e = errand_core::JobState::Dead; my_errand_x::y; a::errand_z::w; errand_worker",
    );
    let expected: BTreeSet<String> = ["errand_client", "errand_core"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(named, expected);
}
