//! Fuzzing with cargo-fuzz on the nightly toolchain.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::run;

/// Every fuzz target in `fuzz/fuzz_targets/`.
pub const TARGETS: &[&str] = &["envelope", "frame", "statement", "id_text"];

/// What to fuzz and for how long.
#[derive(Debug)]
pub struct Options {
    seconds: u64,
    targets: Vec<String>,
}

impl Options {
    /// `[--seconds N] [TARGET...]`; default 60 seconds, every target.
    pub fn parse(args: &[String]) -> Result<Self> {
        let mut seconds = 60;
        let mut targets = Vec::new();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            if arg == "--seconds" {
                let value = args.next().context("--seconds needs a value")?;
                seconds = value.parse().context("--seconds takes a whole number")?;
            } else if TARGETS.contains(&arg.as_str()) {
                targets.push(arg.clone());
            } else {
                bail!(
                    "unknown fuzz target or option `{arg}`; targets: {}",
                    TARGETS.join(", ")
                );
            }
        }
        if targets.is_empty() {
            targets = TARGETS.iter().map(|t| (*t).to_owned()).collect();
        }
        Ok(Self { seconds, targets })
    }

    /// Every target for `seconds` each.
    pub fn smoke(seconds: u64) -> Self {
        Self {
            seconds,
            targets: TARGETS.iter().map(|t| (*t).to_owned()).collect(),
        }
    }
}

/// Runs each target; fails on the first crash.
pub fn run(options: &Options) -> Result<()> {
    ensure_cargo_fuzz()?;
    seed_corpora()?;
    let mut summary = Vec::new();
    for target in &options.targets {
        let runs = fuzz_target(target, options.seconds)?;
        summary.push(format!(
            "{target}: {runs} executions in {} s",
            options.seconds
        ));
    }
    println!("==> fuzz summary\n{}", summary.join("\n"));
    Ok(())
}

fn ensure_cargo_fuzz() -> Result<()> {
    if !run::succeeds("rustup", &["run", "nightly", "rustc", "--version"]) {
        bail!("fuzzing needs the nightly toolchain (rustup toolchain install nightly)");
    }
    if run::succeeds("cargo", &["+nightly", "fuzz", "--version"]) {
        return Ok(());
    }
    run::step(
        "install cargo-fuzz",
        "cargo",
        &["install", "cargo-fuzz", "--locked"],
    )
}

/// Runs one target for `seconds` and returns how many inputs it executed.
fn fuzz_target(target: &str, seconds: u64) -> Result<u64> {
    println!("==> fuzz {target} for {seconds} s");
    let corpus = format!("corpus/{target}");
    let max_time = format!("-max_total_time={seconds}");
    let output = Command::new("cargo")
        .args([
            "+nightly",
            "fuzz",
            "run",
            target,
            &corpus,
            "--",
            &max_time,
            "-max_len=70000",
        ])
        .current_dir(run::root().join("fuzz"))
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .output()
        .context("starting cargo fuzz")?;
    let log = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        eprintln!("{log}");
        bail!("fuzz target {target} failed; the crashing input is under fuzz/artifacts/{target}/");
    }
    Ok(executions(&log))
}

/// libFuzzer ends with "Done N runs in S second(s)".
fn executions(log: &str) -> u64 {
    log.lines()
        .filter_map(|line| line.split("Done ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .next_back()
        .unwrap_or(0)
}

/// Writes every vector input into the corpus of the target that parses it.
fn seed_corpora() -> Result<()> {
    let root = run::root();
    let valid = read_json(&root.join("spec/vectors/wire-valid.json"))?;
    let invalid = read_json(&root.join("spec/vectors/wire-invalid.json"))?;
    let corpus = root.join("fuzz/corpus");
    for (section, field, target) in [
        ("envelopes", "encoding", "envelope"),
        ("statements", "encoding", "statement"),
        ("frames", "frame", "frame"),
    ] {
        for (i, v) in array(&valid[section]).iter().enumerate() {
            write_seed(
                &corpus.join(target),
                &format!("valid-{i}"),
                &hex_field(v, field)?,
            )?;
        }
    }
    for (i, v) in array(&valid["ids"]).iter().enumerate() {
        let text = v["text"].as_str().unwrap_or_default();
        write_seed(
            &corpus.join("id_text"),
            &format!("valid-{i}"),
            text.as_bytes(),
        )?;
    }
    for (i, v) in array(&invalid).iter().enumerate() {
        let target = match v["kind"].as_str().unwrap_or_default() {
            "envelope" => "envelope",
            "device_certificate" => "statement",
            "request_frame" | "response_frame" => "frame",
            _ => continue,
        };
        write_seed(
            &corpus.join(target),
            &format!("invalid-{i}"),
            &hex_field(v, "hex")?,
        )?;
    }
    Ok(())
}

fn read_json(path: &Path) -> Result<Value> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn array(value: &Value) -> &[Value] {
    value.as_array().map_or(&[], Vec::as_slice)
}

fn hex_field(v: &Value, field: &str) -> Result<Vec<u8>> {
    hex::decode(v[field].as_str().unwrap_or_default())
        .with_context(|| format!("bad hex in `{field}`"))
}

fn write_seed(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    fs::create_dir_all(dir)?;
    fs::write(dir.join(name), bytes).with_context(|| format!("writing seed {name}"))
}
