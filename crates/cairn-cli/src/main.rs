//! `cairn`: the command-line client. All logic lives in `cairn-client`;
//! this crate parses arguments, asks for the passphrase, prints results
//! (text, or JSON with `--json`) and maps failures to exit codes.
#![forbid(unsafe_code)]
// A command-line tool prints to stdout by design.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod agent;
mod cli;
mod commands;
mod direct;
mod editor;
mod export;
mod log;
mod output;
mod passphrase;
mod progress;
mod qr;
mod views;

use std::process::ExitCode;

use cairn_client::ErrorKind;
use clap::Parser;

use crate::cli::Cli;

/// Exit codes, one per kind of failure a script may want to tell apart
/// (listed in `spec/client.md`).
fn exit_code(kind: Option<ErrorKind>) -> u8 {
    match kind {
        Some(ErrorKind::NotInitialised) => 3,
        Some(ErrorKind::Unreachable) => 4,
        Some(ErrorKind::FingerprintMismatch) => 5,
        Some(ErrorKind::Forbidden) => 6,
        Some(ErrorKind::Revoked) => 7,
        Some(ErrorKind::Unknown) => 8,
        Some(ErrorKind::Passphrase) => 9,
        Some(ErrorKind::NotLinked) => 10,
        Some(ErrorKind::Invalid) => 11,
        Some(ErrorKind::Banned) => 12,
        Some(ErrorKind::History) => 13,
        _ => 1,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let json = cli.global.json;
    output::use_utc(cli.global.utc);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cairn: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if output::is_closed_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            let client_error = error.downcast_ref::<cairn_client::Error>();
            let kind = client_error.map(cairn_client::Error::kind);
            let hint = client_error.and_then(views::hint);
            output::error(json, &error, kind, hint);
            ExitCode::from(exit_code(kind))
        }
    }
}
