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
