//! Running commands from the workspace root, loudly.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The workspace root (xtask lives one level below it).
pub fn root() -> PathBuf {
    let xtask = Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask.parent().unwrap_or(xtask).to_path_buf()
}

/// Runs `program args` in the workspace root; fails if it fails.
pub fn step(name: &str, program: &str, args: &[&str]) -> Result<()> {
    step_with_env(name, program, args, &[])
}

/// Like [`step`], with extra environment variables.
pub fn step_with_env(name: &str, program: &str, args: &[&str], env: &[(&str, &str)]) -> Result<()> {
    println!("==> {name}: {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(root())
        .status()
        .with_context(|| format!("starting {program}"))?;
    if !status.success() {
        bail!("{name} failed ({status})");
    }
    Ok(())
}

/// Whether `program args` runs and exits successfully (output discarded).
pub fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .current_dir(root())
        .output()
        .map(|out| out.status.success())
        .unwrap_or(false)
}

/// Runs `cargo test ...`, passing its output through, and closes with one
/// line for the whole suite, `tests: N passed, M failed`, so that the run's
/// last line speaks for every test binary rather than the last one.
pub fn test_step(name: &str, args: &[&str]) -> Result<()> {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    println!("==> {name}: cargo {}", args.join(" "));
    let mut child = Command::new("cargo")
        .args(args)
        .current_dir(root())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting cargo test")?;
    let (mut passed, mut failed) = (0u64, 0u64);
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            println!("{line}");
            if let Some((p, f)) = result_counts(&line) {
                passed += p;
                failed += f;
            }
        }
    }
    let status = child.wait()?;
    println!("tests: {passed} passed, {failed} failed");
    if !status.success() {
        bail!("{name} failed ({status})");
    }
    Ok(())
}

/// The counts of a `test result: ok. 3 passed; 1 failed; ...` line.
fn result_counts(line: &str) -> Option<(u64, u64)> {
    let rest = line.strip_prefix("test result: ")?;
    let count = |word: &str| -> Option<u64> {
        let before = rest.split(&format!(" {word}")).next()?;
        before.rsplit(' ').next()?.parse().ok()
    };
    Some((count("passed")?, count("failed")?))
}

#[cfg(test)]
mod tests {
    use super::result_counts;

    #[test]
    fn reads_the_counts_of_a_result_line() {
        let line = "test result: ok. 11 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.30s";
        assert_eq!(result_counts(line), Some((11, 2)));
        assert_eq!(result_counts("running 3 tests"), None);
    }
}
