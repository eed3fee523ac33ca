//! `cairn-relay`: run and operate a cairn relay.
#![forbid(unsafe_code)]

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
