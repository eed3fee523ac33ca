//! Where the passphrase comes from: `CAIRN_PASSPHRASE`, else a prompt on
//! the terminal (the controlling terminal, `/dev/tty`, even when stdin is
//! a pipe, as age, ssh and gpg do), else a clear error (a script without a
//! terminal must set the variable). The OS keyring is not used.

use cairn_client::{Error, Passphrase};

/// The variable holding the passphrase.
pub const ENV: &str = "CAIRN_PASSPHRASE";

/// Tries at choosing a new passphrase before `init` gives up.
const NEW_TRIES: usize = 3;

/// Below this zxcvbn score (0 to 4) a new passphrase is called weak.
const STRONG_ENOUGH: zxcvbn::Score = zxcvbn::Score::Three;

/// The passphrase of an existing home.
pub fn existing() -> Result<Passphrase, Error> {
    if let Some(passphrase) = from_env() {
        return Ok(passphrase);
    }
    read("cairn passphrase: ").map(Passphrase::new)
}

/// A passphrase for a new home: asked twice on the terminal, asked again
/// when empty or when the two differ, with a warning when it is weak.
pub fn new() -> Result<Passphrase, Error> {
    if let Some(passphrase) = from_env() {
        return Ok(passphrase);
    }
    for _ in 0..NEW_TRIES {
        let first = read("choose a passphrase for this device's keys: ")?;
        if first.is_empty() {
            tell("the passphrase is empty; choose one");
            continue;
        }
        if let Some(warning) = weakness(&first) {
            tell(&warning);
        }
        let second = read("repeat it: ")?;
        if first == second {
            return Ok(Passphrase::new(first));
        }
        tell("the two passphrases differ; again");
    }
    Err(Error::PassphraseRequired(format!(
        "no passphrase chosen after {NEW_TRIES} tries"
    )))
}

/// Why `passphrase` is weak, in words, if it is: zxcvbn's estimate of how
/// guessable it is, with its advice.
fn weakness(passphrase: &str) -> Option<String> {
    let estimate = zxcvbn::zxcvbn(passphrase, &[]);
    if estimate.score() >= STRONG_ENOUGH {
        return None;
    }
    let advice = estimate
        .feedback()
        .and_then(|f| f.warning().map(|w| w.to_string()))
        .unwrap_or_else(|| "it is easy to guess".to_owned());
    Some(format!(
        "warning: this passphrase is weak ({advice}): whoever copies this device's files can \
         try guesses offline; several unrelated words are stronger. Repeat it to keep it anyway"
    ))
}

fn from_env() -> Option<Passphrase> {
    std::env::var(ENV).ok().map(Passphrase::new)
}

/// A line to the person at the terminal (stderr, which they see).
#[allow(clippy::print_stderr)]
fn tell(text: &str) {
    eprintln!("{text}");
}

/// Prompts on the controlling terminal and reads the answer without
/// echoing it.
fn read(text: &str) -> Result<String, Error> {
    rpassword::prompt_password(text).map_err(|e| match e.raw_os_error() {
        // ENXIO: the process has no controlling terminal.
        Some(6) => Error::PassphraseRequired(format!(
            "no passphrase: set {ENV} (there is no terminal to ask on)"
        )),
        _ => Error::PassphraseRequired(format!("cannot read the passphrase: {e}")),
    })
}
