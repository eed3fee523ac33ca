//! Where the passphrase comes from: `CAIRN_PASSPHRASE`, else a prompt on
//! the terminal, else a clear error (a script without a terminal must set
//! the variable). The OS keyring is not used.

use std::io::IsTerminal;

use cairn_client::{Error, Passphrase};

/// The variable holding the passphrase.
pub const ENV: &str = "CAIRN_PASSPHRASE";

/// The passphrase of an existing home.
pub fn existing() -> Result<Passphrase, Error> {
    if let Some(passphrase) = from_env() {
        return Ok(passphrase);
    }
    prompt("cairn passphrase: ")
}

/// A passphrase for a new home: asked twice on a terminal.
pub fn new() -> Result<Passphrase, Error> {
    if let Some(passphrase) = from_env() {
        return Ok(passphrase);
    }
    let first = read("choose a passphrase for this device's keys: ")?;
    let second = read("repeat it: ")?;
    if first != second {
        return Err(Error::PassphraseRequired(
            "the two passphrases differ".into(),
        ));
    }
    if first.is_empty() {
        return Err(Error::PassphraseRequired("the passphrase is empty".into()));
    }
    Ok(Passphrase::new(first))
}

fn from_env() -> Option<Passphrase> {
    std::env::var(ENV).ok().map(Passphrase::new)
}

fn prompt(text: &str) -> Result<Passphrase, Error> {
    read(text).map(Passphrase::new)
}

fn read(text: &str) -> Result<String, Error> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::PassphraseRequired(format!(
            "no passphrase: set {ENV} (stdin is not a terminal to ask on)"
        )));
    }
    rpassword::prompt_password(text)
        .map_err(|e| Error::PassphraseRequired(format!("cannot read the passphrase: {e}")))
}
