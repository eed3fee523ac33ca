//! cairn's project tasks (`cargo xtask <task>`).
//!
//! - `ci`: everything CI checks: formatting, clippy, a fuzz smoke run of
//!   every target, then the whole test suite (which includes the spec-vector
//!   and catalogue checks).
//! - `vectors`: regenerate the test vectors in `spec/vectors/` from the code.
//! - `fuzz [--campaign] [--seconds N] [--runs N] [TARGET...]`: run fuzz
//!   targets (nightly + cargo-fuzz, installed when missing) over their
//!   stored corpora, seeded from the spec vectors; a campaign minimises the
//!   corpora afterwards, and `--runs` stops each target after N executions.
//!   Fuzz builds run rustc through `xtask` itself, which leaves redb
//!   without coverage instrumentation (`fuzz/uninstrumented.rs`).
//! - `bench`: run the benchmarks and print their ratios.
//! - `nats-server`: install the pinned nats-server the cluster tests run
//!   into `.tools/` (`ci` does it first).
//! - `kills [N]`: the kill campaign: the relay process SIGKILLed N times
//!   (default 100) under 64 appending clients and 8 live subscribers,
//!   with `check` after every kill; prints its figures.
#![forbid(unsafe_code)]
// A developer tool: it prints, and indexes JSON it generated itself.
#![allow(clippy::print_stdout, clippy::indexing_slicing)]

mod bench;
mod fuzz;
mod run;
mod tools;

use anyhow::{Result, bail};

fn main() -> Result<()> {
    if std::env::var_os(fuzz::uninstrumented::MARK).is_some() {
        let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
        std::process::exit(fuzz::uninstrumented::rustc(&args)?);
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((task, rest)) = args.split_first() else {
        bail!("usage: cargo xtask <ci|vectors|fuzz|bench|kills|nats-server> [options]");
    };
    match task.as_str() {
        "ci" => ci(),
        "vectors" => vectors(),
        "fuzz" => fuzz::run(&fuzz::Options::parse(rest)?),
        "bench" => bench::run(),
        "kills" => kills(rest),
        "nats-server" => tools::nats_server().map(drop),
        other => {
            bail!("unknown task `{other}`; expected ci, vectors, fuzz, bench, kills or nats-server")
        }
    }
}

/// Seconds each fuzz target runs in the CI smoke run.
const CI_FUZZ_SECONDS: u64 = 20;

fn ci() -> Result<()> {
    tools::nats_server()?;
    run::step("format", "cargo", &["fmt", "--all", "--check"])?;
    run::step(
        "clippy",
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    fuzz::run(&fuzz::Options::smoke(CI_FUZZ_SECONDS))?;
    // Last, so that the run closes with the test runner's summary line.
    run::test_step("tests", &["test", "--workspace", "--locked"])
}

/// Kills in a campaign unless told otherwise.
const CAMPAIGN_KILLS: u32 = 100;

fn kills(args: &[String]) -> Result<()> {
    let kills = match args.first() {
        Some(n) => n
            .parse::<u32>()
            .map_err(|_| anyhow::anyhow!("kills takes a whole number"))?,
        None => CAMPAIGN_KILLS,
    };
    let kills = kills.to_string();
    run::step_with_env(
        "kill campaign",
        "cargo",
        &[
            "test",
            "--locked",
            "-p",
            "cairn-e2e",
            "--test",
            "crash",
            "--",
            "--nocapture",
        ],
        &[("CAIRN_KILLS", &kills)],
    )
}

fn vectors() -> Result<()> {
    run::step_with_env(
        "regenerate vectors",
        "cargo",
        &[
            "test",
            "--workspace",
            "--locked",
            "vector",
            "--",
            "--test-threads=1",
        ],
        &[("CAIRN_REGENERATE_VECTORS", "1")],
    )?;
    run::step(
        "check vectors",
        "cargo",
        &["test", "--workspace", "--locked", "vector"],
    )
}
