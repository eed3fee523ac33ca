//! `cairn-load`: cairn's load generator. Each scenario drives a relay on
//! loopback and measures, in the same run, a baseline that does the same
//! work without cairn (raw redb, raw quinn, bare handshakes, one-core
//! signature checks), so that the figures that matter are ratios: absolute
//! numbers on a shared machine are noise.
//!
//! `cargo xtask bench` builds this in release mode, runs every scenario,
//! and writes `BENCHMARKS.md` from the JSON each run leaves (`--json`).
//! `--smoke` runs everything at a tiny size, for the test that keeps this
//! program working.
#![forbid(unsafe_code)]
// A measuring program: it prints what it measures.
#![allow(clippy::print_stdout)]

mod cluster;
mod connect;
mod fanout;
mod ident;
mod ingest;
mod net;
mod relay;
mod report;
mod requests;
mod seal;
mod soak;
mod sync;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::report::Report;

/// cairn's load generator: relay scenarios against baselines measured in
/// the same run.
#[derive(Debug, Parser)]
#[command(name = "cairn-load")]
struct Cli {
    /// Tiny sizes: checks that the scenarios work, measures nothing useful.
    #[arg(long, global = true)]
    smoke: bool,
    /// Write the results as JSON to this file.
    #[arg(long, global = true)]
    json: Option<PathBuf>,
    /// The `cairn-relay` binary to run as a child process for the memory
    /// figure (default: this program's own `serve-relay`).
    #[arg(long, global = true)]
    relay_bin: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
enum Command {
    /// Durable ingest by concurrent publishers vs. raw redb and ed25519 verify.
    Ingest,
    /// Live fan-out to 100 and 1000 subscribers vs. raw quinn.
    Fanout,
    /// Cold sync of a new device vs. raw quinn single-stream throughput.
    Sync,
    /// Authenticated connects vs. bare handshakes; memory per idle connection.
    Connect,
    /// Post sealing for audiences of 1 and 1000.
    Seal,
    /// Minutes of mixed load on a relay process: does its memory grow?
    Soak,
    /// Two relay nodes on a 3-server JetStream cluster vs. one redb relay;
    /// the write stall when the log's leader dies.
    Cluster,
    /// Every scenario, one after the other.
    All,
    /// Run a relay (used as the child process of `connect`).
    #[command(hide = true)]
    ServeRelay {
        /// Configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Data directory.
        #[arg(long)]
        data_dir: PathBuf,
        /// Where to say that it listens.
        #[arg(long)]
        ready_file: PathBuf,
    },
    /// Run a bare quinn server (the memory baseline of `connect`).
    #[command(hide = true)]
    ServeBare {
        /// Where to say that it listens.
        #[arg(long)]
        ready_file: PathBuf,
        /// How its connections' transport is set up.
        #[arg(long, value_enum, default_value = "bench")]
        transport: net::BareTransport,
    },
}

/// A scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Ingest,
    Fanout,
    Sync,
    Connect,
    Seal,
    Soak,
    Cluster,
}

/// Scenarios in the order `all` runs them: the cheap and CPU-bound first,
/// the soak last.
const ALL: [Scenario; 7] = [
    Scenario::Seal,
    Scenario::Ingest,
    Scenario::Fanout,
    Scenario::Sync,
    Scenario::Connect,
    Scenario::Cluster,
    Scenario::Soak,
];

/// What `--json` receives.
#[derive(Debug, Serialize)]
struct Output {
    smoke: bool,
    scenarios: Vec<ScenarioOutput>,
}

#[derive(Debug, Serialize)]
struct ScenarioOutput {
    name: String,
    seconds: f64,
    #[serde(flatten)]
    report: Report,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match &cli.command {
        Command::ServeRelay {
            config,
            data_dir,
            ready_file,
        } => return relay::serve_in_this_process(config, data_dir.clone(), ready_file),
        Command::ServeBare {
            ready_file,
            transport,
        } => return relay::serve_bare_in_this_process(ready_file, *transport),
        _ => {}
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let scenarios = match cli.command {
        Command::Ingest => vec![Scenario::Ingest],
        Command::Fanout => vec![Scenario::Fanout],
        Command::Sync => vec![Scenario::Sync],
        Command::Connect => vec![Scenario::Connect],
        Command::Seal => vec![Scenario::Seal],
        Command::Soak => vec![Scenario::Soak],
        Command::Cluster => vec![Scenario::Cluster],
        Command::All | Command::ServeRelay { .. } | Command::ServeBare { .. } => ALL.to_vec(),
    };
    let mut output = Output {
        smoke: cli.smoke,
        scenarios: Vec::new(),
    };
    for scenario in scenarios {
        let started = Instant::now();
        let name = format!("{scenario:?}").to_lowercase();
        println!("== {name}");
        let report = runtime
            .block_on(run(scenario, cli.smoke, cli.relay_bin.as_deref()))
            .with_context(|| format!("scenario {name}"))?;
        print_report(&report);
        output.scenarios.push(ScenarioOutput {
            name,
            seconds: started.elapsed().as_secs_f64(),
            report,
        });
    }
    if let Some(path) = &cli.json {
        std::fs::write(path, serde_json::to_string_pretty(&output)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

async fn run(scenario: Scenario, smoke: bool, relay_bin: Option<&Path>) -> Result<Report> {
    match scenario {
        Scenario::Ingest => {
            ingest::run(
                pick(smoke, ingest::Size::FULL, ingest::Size::SMOKE),
                relay_bin,
            )
            .await
        }
        Scenario::Cluster => {
            cluster::run(pick(smoke, cluster::Size::FULL, cluster::Size::SMOKE)).await
        }
        Scenario::Fanout => {
            let size = pick(smoke, fanout::Size::FULL_100, fanout::Size::SMOKE);
            let mut report = fanout::run(size, relay_bin).await?;
            if !smoke {
                let more = fanout::run(fanout::Size::FULL_1000, relay_bin).await?;
                report.figures.extend(more.figures);
                report.notes.extend(more.notes);
            }
            Ok(report)
        }
        Scenario::Sync => {
            sync::run(pick(smoke, sync::Size::FULL, sync::Size::SMOKE), relay_bin).await
        }
        Scenario::Connect => {
            connect::run(
                pick(smoke, connect::Size::FULL, connect::Size::SMOKE),
                relay_bin,
            )
            .await
        }
        Scenario::Seal => seal::run(pick(smoke, seal::Size::FULL, seal::Size::SMOKE)),
        Scenario::Soak => {
            soak::run(pick(smoke, soak::Size::FULL, soak::Size::SMOKE), relay_bin).await
        }
    }
}

/// The full size, or the small one in a smoke run.
fn pick<T>(smoke: bool, full: T, small: T) -> T {
    if smoke { small } else { full }
}

fn print_report(report: &Report) {
    for figure in &report.figures {
        println!("{}", figure.line());
    }
    for note in &report.notes {
        println!("  note: {note}");
    }
}
