//! Benchmarks: each prints its figures as ratios against a baseline
//! measured in the same run on the same machine.
//!
//! `cargo xtask bench` builds the relay and the load generator in release
//! mode, runs the component benchmarks (`cargo bench`) and every
//! `cairn-load` scenario one after the other (never two at once: they
//! would measure each other), and writes `BENCHMARKS.md` at the root: the
//! machine, every figure with its baseline, ratio and target, the
//! component benchmarks' output, and the hand-written analysis in
//! `crates/cairn-bench/ANALYSIS.md`.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::run;

/// `(package, bench target)` pairs, run in order.
const BENCHES: &[(&str, &str)] = &[("cairn-crypto", "seal"), ("cairn-store", "ingest")];

/// `cairn-load` scenarios, run in order.
const SCENARIOS: &[&str] = &[
    "seal", "ingest", "fanout", "sync", "connect", "cluster", "soak",
];

/// Hand-written analysis of the figures, included in the report.
const ANALYSIS: &str = "crates/cairn-bench/ANALYSIS.md";

/// Runs every benchmark and writes `BENCHMARKS.md`.
pub fn run() -> Result<()> {
    let started = Instant::now();
    // The cluster scenario runs real NATS servers.
    crate::tools::nats_server()?;
    let machine = Machine::describe();
    run::step(
        "build relay and load generator",
        "cargo",
        &[
            "build",
            "--release",
            "--locked",
            "-p",
            "cairn-relay",
            "-p",
            "cairn-bench",
        ],
    )?;
    let built = started.elapsed();
    let mut components = Vec::new();
    for (package, bench) in BENCHES {
        components.push(component(package, bench)?);
    }
    let mut scenarios = Vec::new();
    for scenario in SCENARIOS {
        scenarios.extend(load_scenario(scenario)?);
    }
    let report = Report {
        machine,
        load_after: load_average(),
        scenarios,
        components,
        analysis: std::fs::read_to_string(run::root().join(ANALYSIS)).ok(),
        took: started.elapsed(),
        built,
    };
    let path = run::root().join("BENCHMARKS.md");
    std::fs::write(&path, report.markdown())?;
    println!("==> wrote {} ({})", path.display(), minutes(report.took));
    Ok(())
}

/// One `cargo bench` run, shown as it goes and kept for the report.
struct Component {
    name: String,
    output: String,
}

fn component(package: &str, bench: &str) -> Result<Component> {
    let name = format!("{package}/{bench}");
    let args = ["bench", "--locked", "-p", package, "--bench", bench];
    println!("==> bench {name}: cargo {}", args.join(" "));
    let output = tee(Command::new("cargo").args(args).current_dir(run::root()))
        .with_context(|| format!("bench {name}"))?;
    Ok(Component { name, output })
}

/// Runs `command`, printing its standard output as it comes, and returns
/// that output; fails if the command fails.
fn tee(command: &mut Command) -> Result<String> {
    let mut child = command.stdout(Stdio::piped()).spawn()?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut output = String::new();
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        output.push_str(&line);
        output.push('\n');
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("failed ({status})");
    }
    Ok(output)
}

/// Runs one `cairn-load` scenario and returns what its JSON says.
fn load_scenario(scenario: &str) -> Result<Vec<Value>> {
    let release = target_dir().join("release");
    let json = target_dir().join(format!("bench-{scenario}.json"));
    let relay = release.join("cairn-relay");
    let load = release.join("cairn-load");
    run::step(
        &format!("scenario {scenario}"),
        &load.to_string_lossy(),
        &[
            scenario,
            "--relay-bin",
            &relay.to_string_lossy(),
            "--json",
            &json.to_string_lossy(),
        ],
    )?;
    let text = std::fs::read_to_string(&json).with_context(|| format!("{}", json.display()))?;
    let value: Value = serde_json::from_str(&text)?;
    Ok(value["scenarios"].as_array().cloned().unwrap_or_default())
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| run::root().join("target"))
}

/// What the benchmarks ran on.
struct Machine {
    date: String,
    commit: String,
    cpus: usize,
    cpu_model: String,
    memory: String,
    kernel: String,
    rustc: String,
    load_before: String,
}

impl Machine {
    fn describe() -> Self {
        let cpuinfo = read("/proc/cpuinfo");
        let meminfo = read("/proc/meminfo");
        Self {
            date: output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            commit: commit(),
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            cpu_model: field(&cpuinfo, "model name"),
            memory: memory(&field(&meminfo, "MemTotal")),
            kernel: format!(
                "{} {}",
                output("uname", &["-s"]),
                read("/proc/sys/kernel/osrelease")
            ),
            rustc: output("rustc", &["-V"]),
            load_before: load_average(),
        }
    }
}

/// The commit, and whether the working tree had other changes.
fn commit() -> String {
    let head = output("git", &["rev-parse", "--short", "HEAD"]);
    let dirty = output("git", &["status", "--porcelain", "--untracked-files=no"])
        .lines()
        .filter(|l| !l.ends_with("BENCHMARKS.md"))
        .count();
    match dirty {
        0 => head,
        n => format!("{head} with uncommitted changes to {n} files"),
    }
}

/// The first line of a command's output, trimmed; `unknown` if it fails.
fn output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .current_dir(run::root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(path))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// The value of `name: value` in a `/proc` file.
fn field(text: &str, name: &str) -> String {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(key, _)| key.trim() == name)
        .map_or_else(|| "unknown".into(), |(_, value)| value.trim().to_owned())
}

/// `MemTotal` (in kB) as GiB.
fn memory(mem_total: &str) -> String {
    let kib: f64 = mem_total
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap_or(0.0);
    format!("{:.1} GiB", kib / (1024.0 * 1024.0))
}

fn load_average() -> String {
    read("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn minutes(d: Duration) -> String {
    format!("{:.1} min", d.as_secs_f64() / 60.0)
}

/// Everything `BENCHMARKS.md` says.
struct Report {
    machine: Machine,
    load_after: String,
    scenarios: Vec<Value>,
    components: Vec<Component>,
    analysis: Option<String>,
    took: Duration,
    built: Duration,
}

impl Report {
    fn markdown(&self) -> String {
        let mut md = String::new();
        self.header(&mut md);
        self.targets(&mut md);
        self.figures(&mut md);
        self.component_outputs(&mut md);
        if let Some(analysis) = &self.analysis {
            md.push_str(analysis.trim_end());
            md.push('\n');
        }
        md
    }

    fn header(&self, md: &mut String) {
        let m = &self.machine;
        let _ = write!(
            md,
            "# cairn benchmarks\n\n\
             Generated by `cargo xtask bench` on {date}, at commit {commit}; the whole run \
             took {took} (of which {built} building).\n\n\
             Every figure is compared with a baseline measured in the same run, on the same \
             machine, over loopback: read the ratios. Absolute numbers move with whatever \
             else the machine is doing, and this one is shared.\n\n\
             ## Machine\n\n\
             | | |\n|---|---|\n\
             | CPUs (`nproc`) | {cpus} |\n| CPU model | {model} |\n| memory | {memory} |\n\
             | kernel | {kernel} |\n| rustc | {rustc} |\n\
             | load average before / after | {before} / {after} |\n\n",
            date = m.date,
            commit = m.commit,
            took = minutes(self.took),
            built = minutes(self.built),
            cpus = m.cpus,
            model = m.cpu_model,
            memory = m.memory,
            kernel = m.kernel,
            rustc = m.rustc,
            before = m.load_before,
            after = self.load_after,
        );
    }

    /// The figures that have a target, in one table.
    fn targets(&self, md: &mut String) {
        md.push_str("## Targets\n\n| Scenario | Figure | Baseline | Ratio | Target | Met |\n");
        md.push_str("|---|---|---|---|---|---|\n");
        for figure in self.all_figures().filter(|f| !f["target"].is_null()) {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} |",
                text(&figure["scenario"]),
                value_with_metric(figure),
                baseline(figure),
                ratio(figure),
                target(figure),
                met(&figure["met"]),
            );
        }
        md.push('\n');
    }

    /// Every figure, scenario by scenario, with the scenario's notes.
    fn figures(&self, md: &mut String) {
        md.push_str("## All figures\n\n");
        for scenario in &self.scenarios {
            let seconds = scenario["seconds"].as_f64().unwrap_or(0.0);
            let _ = write!(
                md,
                "### {} ({seconds:.0} s)\n\n| Figure | Value | Baseline | Ratio |\n\
                 |---|---|---|---|\n",
                text(&scenario["name"])
            );
            for figure in scenario["figures"].as_array().into_iter().flatten() {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} |",
                    text(&figure["metric"]),
                    quantity(&figure["value"], &figure["unit"]),
                    baseline(figure),
                    ratio(figure),
                );
            }
            md.push('\n');
            for note in scenario["notes"].as_array().into_iter().flatten() {
                let _ = writeln!(md, "- {}", text(note));
            }
            md.push('\n');
        }
    }

    fn component_outputs(&self, md: &mut String) {
        md.push_str("## Component benchmarks (`cargo bench`)\n\n");
        for component in &self.components {
            let _ = write!(
                md,
                "### {}\n\n```text\n{}```\n\n",
                component.name, component.output
            );
        }
    }

    fn all_figures(&self) -> impl Iterator<Item = &Value> {
        self.scenarios
            .iter()
            .flat_map(|s| s["figures"].as_array().into_iter().flatten())
    }
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

fn value_with_metric(figure: &Value) -> String {
    format!(
        "{}: {}",
        text(&figure["metric"]),
        quantity(&figure["value"], &figure["unit"])
    )
}

fn baseline(figure: &Value) -> String {
    let baseline = &figure["baseline"];
    if baseline.is_null() {
        return String::new();
    }
    format!(
        "{}: {}",
        text(&baseline["name"]),
        quantity(&baseline["value"], &baseline["unit"])
    )
}

fn ratio(figure: &Value) -> String {
    figure["ratio"]
        .as_f64()
        .map_or_else(String::new, |r| format!("{r:.2}x"))
}

fn target(figure: &Value) -> String {
    let target = &figure["target"];
    if let Some(bound) = target["at_least"].as_f64() {
        format!(">= {bound}x")
    } else if let Some(bound) = target["at_most"].as_f64() {
        format!("<= {bound}x")
    } else if let Some(bound) = target["value_at_most"].as_f64() {
        format!("<= {bound} {}", text(&figure["unit"]))
    } else {
        String::new()
    }
}

fn met(met: &Value) -> &'static str {
    match met.as_bool() {
        Some(true) => "yes",
        Some(false) => "**no**",
        None => "",
    }
}

/// A number with three significant digits or so, and its unit.
fn quantity(value: &Value, unit: &Value) -> String {
    let v = value.as_f64().unwrap_or(0.0);
    let number = match v.abs() {
        a if a >= 100.0 => format!("{v:.0}"),
        a if a >= 1.0 => format!("{v:.2}"),
        _ => format!("{v:.3}"),
    };
    format!("{number} {}", text(unit))
}
