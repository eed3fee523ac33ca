//! The passphrase agent, as ssh-agent: `cairn unlock [--for 15m]` starts a
//! process that holds this home's unlocked data key and answers commands
//! of the same user on a Unix socket (mode 0600, in a directory of mode
//! 0700 in `$XDG_RUNTIME_DIR`, else the temporary directory) until the
//! time is up or `cairn lock`. Commands ask it before prompting
//! (`spec/client.md` section 7).
//!
//! The key reaches the agent on its stdin, never in its arguments or
//! environment; the agent answers only peers with its own uid.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cairn_client::UnlockedKey;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use zeroize::Zeroizing;

/// How long a command waits for an agent's answer.
const ANSWER_WAIT: Duration = Duration::from_secs(2);
/// How long `unlock` waits for the agent it started to listen.
const START_WAIT: Duration = Duration::from_secs(5);

/// Where the agent of `home` listens: one socket per home.
pub fn socket_path(home: &Path) -> Result<PathBuf> {
    let home = home
        .canonicalize()
        .with_context(|| format!("no home at {}", home.display()))?;
    let tag = hex::encode(Sha256::digest(home.as_os_str().as_bytes()));
    let dir = private_dir(&home)?;
    Ok(dir.join(format!("agent-{}.sock", tag.get(..16).unwrap_or(&tag))))
}

/// `$XDG_RUNTIME_DIR/cairn`, else `cairn-UID` in the temporary directory:
/// made mode 0700 if missing, refused if another user owns it or others
/// may enter it.
fn private_dir(home: &Path) -> Result<PathBuf> {
    let uid = std::fs::metadata(home)?.uid();
    let dir = match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(runtime) => PathBuf::from(runtime).join("cairn"),
        None => std::env::temp_dir().join(format!("cairn-{uid}")),
    };
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
    }
    let meta = std::fs::metadata(&dir)?;
    if meta.uid() != uid || meta.permissions().mode() & 0o077 != 0 {
        bail!(
            "{} is not private to this user (owner {}, mode {:o}); the agent will not use it",
            dir.display(),
            meta.uid(),
            meta.permissions().mode() & 0o777
        );
    }
    Ok(dir)
}

/// The key the agent of `home` holds, if one answers.
pub fn key(home: &Path) -> Option<UnlockedKey> {
    let answer = ask(home, "key").ok()?;
    let bytes = Zeroizing::new(hex::decode(answer.trim()).ok()?);
    let key = <[u8; 32]>::try_from(bytes.as_slice()).ok()?;
    Some(UnlockedKey::from_bytes(Zeroizing::new(key)))
}

/// Asks the agent of `home` to forget its key and stop; whether one was
/// running.
pub fn lock(home: &Path) -> Result<bool> {
    match ask(home, "lock") {
        Ok(answer) => Ok(answer.trim() == "locked"),
        Err(_) => Ok(false),
    }
}

/// One request, one line of answer.
fn ask(home: &Path, request: &str) -> Result<Zeroizing<String>> {
    let mut stream = UnixStream::connect(socket_path(home)?)?;
    stream.set_read_timeout(Some(ANSWER_WAIT))?;
    stream.set_write_timeout(Some(ANSWER_WAIT))?;
    stream.write_all(format!("{request}\n").as_bytes())?;
    let mut answer = Zeroizing::new(String::new());
    BufReader::new(stream).read_line(&mut answer)?;
    Ok(answer)
}

/// Starts an agent for `home` holding `key` for `hold`, replacing one
/// already running; returns where it listens once it does.
pub fn start(home: &Path, key: &UnlockedKey, hold: Duration) -> Result<PathBuf> {
    let socket = socket_path(home)?;
    lock(home)?;
    let mut child = Command::new(std::env::current_exe()?)
        .arg("--home")
        .arg(home)
        .args(["agent", "--for", &format!("{}s", hold.as_secs().max(1))])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: Ctrl-C at the terminal does not stop it.
        .process_group(0)
        .spawn()
        .context("starting the agent")?;
    let hex = Zeroizing::new(hex::encode(key.as_bytes()));
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(hex.as_bytes())?;
    }
    let deadline = Instant::now() + START_WAIT;
    while Instant::now() < deadline {
        if UnixStream::connect(&socket).is_ok() {
            return Ok(socket);
        }
        if let Some(status) = child.try_wait()? {
            bail!("the agent stopped at once ({status})");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("the agent did not start listening at {}", socket.display())
}

/// The agent itself (`cairn agent`, started by `unlock`): reads the key on
/// stdin, then answers on the socket until `hold` is over or it is locked.
pub async fn serve(home: &Path, hold: Duration) -> Result<()> {
    let mut hex = Zeroizing::new(String::new());
    std::io::stdin().read_to_string(&mut hex)?;
    let key = Zeroizing::new(hex.trim().to_owned());
    let socket = socket_path(home)?;
    let _ = std::fs::remove_file(&socket);
    let listener = tokio::net::UnixListener::bind(&socket)?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))?;
    let uid = std::fs::metadata(&socket)?.uid();
    let deadline = tokio::time::Instant::now() + hold;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = tokio::time::sleep_until(deadline) => break,
        };
        let Ok((stream, _)) = accepted else { continue };
        if stream.peer_cred().map(|c| c.uid()).ok() != Some(uid) {
            continue;
        }
        if answer(stream, &key).await == Some(Answered::Locked) {
            break;
        }
    }
    let _ = std::fs::remove_file(&socket);
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
enum Answered {
    Key,
    Locked,
}

/// Answers one request: `key` with the key, `lock` with `locked`.
async fn answer(stream: tokio::net::UnixStream, key: &str) -> Option<Answered> {
    let (read, mut write) = stream.into_split();
    let mut line = Zeroizing::new(String::new());
    let mut reader = tokio::io::BufReader::new(read.take(16));
    tokio::time::timeout(ANSWER_WAIT, reader.read_line(&mut line))
        .await
        .ok()?
        .ok()?;
    let (reply, answered) = match line.trim() {
        "key" => (Zeroizing::new(format!("{key}\n")), Answered::Key),
        "lock" => (Zeroizing::new("locked\n".to_owned()), Answered::Locked),
        _ => return None,
    };
    write.write_all(reply.as_bytes()).await.ok()?;
    Some(answered)
}
