//! Fuzz builds leave redb's code without coverage instrumentation.
//!
//! The structure-aware targets (`store_ops`, `requests`) run a real redb
//! store, and with every crate instrumented most of an execution went to
//! libFuzzer's callbacks inside redb: comparison tracing and counters on
//! B-tree and allocator code (over half of all samples in a profile).
//! That code is not what the targets are for: they drive cairn's store
//! logic, access rules and request handling, whose branches stay
//! instrumented, while redb fuzzes its own engine upstream. Without
//! redb's coverage an execution costs less than half as much, and the
//! fuzzer's guidance is spent on cairn's branches instead of on page
//! layouts. AddressSanitizer, where the build has it, still covers redb.
//!
//! cargo-fuzz sets the coverage flags for every crate through RUSTFLAGS,
//! and cargo's per-package `rustflags` can only add flags before them, so
//! the build runs rustc through this program (`RUSTC_WRAPPER`), which
//! drops those flags for the crates named in [`UNINSTRUMENTED`]. A
//! `RUSTC_WRAPPER` of the user's own (sccache, say) is not used for fuzz
//! builds.

use std::ffi::OsString;
use std::process::Command;

use anyhow::{Context, Result};

/// Set in the environment of a build that runs rustc through `xtask`.
pub const MARK: &str = "CAIRN_XTASK_RUSTC_WRAPPER";

/// Crates built without coverage instrumentation.
const UNINSTRUMENTED: &[&str] = &["redb"];

/// A `--cfg` that every crate of a fuzz build gets. Cargo does not
/// rebuild when `RUSTC_WRAPPER` changes, but it does when `RUSTFLAGS`
/// does (cargo-fuzz appends ours to its own): without it, artifacts built
/// before, with redb instrumented, would be taken as fresh.
const FINGERPRINT: &str = "--cfg=cairn_fuzz_uninstrumented_redb";

/// The environment a fuzz build runs with: rustc through this program.
pub fn environment() -> Result<[(&'static str, String); 3]> {
    let me = std::env::current_exe().context("finding the xtask program")?;
    let me = me
        .to_str()
        .context("the xtask program's path is not UTF-8")?
        .to_owned();
    let rustflags = match std::env::var("RUSTFLAGS") {
        Ok(given) if !given.trim().is_empty() => format!("{given} {FINGERPRINT}"),
        _ => FINGERPRINT.to_owned(),
    };
    Ok([
        ("RUSTC_WRAPPER", me),
        (MARK, "1".to_owned()),
        ("RUSTFLAGS", rustflags),
    ])
}

/// Runs rustc (`args[0]`) with the rest of `args`, without coverage flags
/// if it compiles a crate of [`UNINSTRUMENTED`]; its exit code.
pub fn rustc(args: &[OsString]) -> Result<i32> {
    let (rustc, args) = args
        .split_first()
        .context("run as RUSTC_WRAPPER, xtask needs rustc's path")?;
    let status = Command::new(rustc)
        .args(without_coverage_if_uninstrumented(args))
        .status()
        .with_context(|| format!("running {}", rustc.to_string_lossy()))?;
    Ok(status.code().unwrap_or(1))
}

/// `args` as given, or, for a crate of [`UNINSTRUMENTED`], without the
/// sanitizer-coverage pass and its options.
fn without_coverage_if_uninstrumented(args: &[OsString]) -> Vec<OsString> {
    let crate_name = args
        .windows(2)
        .find(|pair| pair[0] == "--crate-name")
        .map(|pair| pair[1].clone());
    let uninstrumented = crate_name
        .as_ref()
        .is_some_and(|name| UNINSTRUMENTED.iter().any(|u| name == u));
    args.iter()
        .filter(|arg| !(uninstrumented && is_coverage_flag(arg)))
        .cloned()
        .collect()
}

fn is_coverage_flag(arg: &OsString) -> bool {
    let arg = arg.to_string_lossy();
    arg == "-Cpasses=sancov-module" || arg.starts_with("-Cllvm-args=-sanitizer-coverage-")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<OsString> {
        text.split_whitespace().map(OsString::from).collect()
    }

    const FLAGS: &str = "-Cpasses=sancov-module \
        -Cllvm-args=-sanitizer-coverage-level=4 \
        -Cllvm-args=-sanitizer-coverage-trace-compares \
        --cfg fuzzing -Zsanitizer=address \
        -Cllvm-args=-simplifycfg-branch-fold-threshold=0 \
        -Cllvm-args=-sanitizer-coverage-stack-depth";

    #[test]
    fn redb_is_built_without_coverage_and_keeps_every_other_flag() {
        let given = args(&format!(
            "--crate-name redb --edition=2021 src/lib.rs {FLAGS}"
        ));
        assert_eq!(
            without_coverage_if_uninstrumented(&given),
            args(
                "--crate-name redb --edition=2021 src/lib.rs --cfg fuzzing \
                 -Zsanitizer=address -Cllvm-args=-simplifycfg-branch-fold-threshold=0"
            )
        );
    }

    #[test]
    fn every_other_crate_keeps_its_coverage() {
        for name in ["cairn_store", "redb_derive", "store_ops"] {
            let given = args(&format!("--crate-name {name} src/lib.rs {FLAGS}"));
            assert_eq!(without_coverage_if_uninstrumented(&given), given);
        }
        let version_query = args("-vV");
        assert_eq!(
            without_coverage_if_uninstrumented(&version_query),
            version_query
        );
    }
}
