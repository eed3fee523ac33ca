//! Linking a new device through the real `cairn` and `cairn-relay`
//! binaries: no other user takes part, so it works under every
//! registration policy without a second invite; a link code names its
//! relay, lasts 15 minutes, is approved once, can be shown again; both
//! devices show the same confirmation.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod cli;
mod support;

use cairn_client::LinkCode;
use cli::{Home, Relay, Target, link};
use serde_json::Value;

/// `cairn device join` for `user` on `target`; its JSON answer.
fn join(phone: &Home, target: &Target, user: &str) -> Value {
    phone.create(&["device", "join", "--user", user], target, "phone")
}

/// Under `invite`, the first device needs the invite; a linked device
/// does not (it used to need it again, for a throwaway rendezvous user).
#[test]
fn linking_needs_no_second_invite() {
    let relay = Relay::start_with_env(&[
        ("CAIRN_RELAY_REGISTRATION__POLICY", "invite"),
        ("CAIRN_RELAY_REGISTRATION__INVITES", "[\"family\"]"),
    ]);
    let (laptop, phone) = (Home::new(), Home::new());
    let target = &relay.target;
    let (refused, message) = laptop.fails(&[
        "init",
        "--relay",
        &target.addr,
        "--fingerprint",
        &target.fingerprint,
    ]);
    assert_eq!(refused, 6, "the first device needs the invite");
    assert!(
        message.contains("--invite"),
        "the hint names --invite: {message}"
    );
    laptop.create(&["init", "--invite", "family"], target, "laptop");
    laptop.ok(&["note", "add", "before the phone"]);
    link(target, &laptop, &phone, "phone");
    assert_eq!(phone.note_texts(), ["before the phone"]);
    let users = relay.operate(&["users", "--json"]);
    let users: Value = serde_json::from_str(&users).unwrap();
    assert_eq!(
        users.as_array().unwrap().len(),
        1,
        "no throwaway user: {users}"
    );
}

/// Under `allow-list`, only the listed users register: linking a device
/// of a listed user works (it used to be impossible).
#[test]
fn linking_works_under_an_allow_list() {
    let mut relay = Relay::start();
    let (laptop, phone) = (Home::new(), Home::new());
    let user = laptop.init(&relay.target, "laptop");
    let allow = format!("[\"{user}\"]");
    relay.restart_with_env(&[
        ("CAIRN_RELAY_REGISTRATION__POLICY", "allow-list"),
        ("CAIRN_RELAY_REGISTRATION__ALLOW", &allow),
    ]);
    let stranger = Home::new();
    let (refused, _) = stranger.fails(&[
        "init",
        "--relay",
        &relay.target.addr,
        "--fingerprint",
        &relay.target.fingerprint,
    ]);
    assert_eq!(refused, 6, "the allow-list is in force");
    link(&relay.target, &laptop, &phone, "phone");
    assert_eq!(phone.json(&["whoami"])["user"], user.as_str());
}

/// A code is refused on a device of another relay, after its lifetime,
/// and a second time; `--show-code` shows the same code while it lasts.
#[test]
fn a_link_code_names_its_relay_expires_and_is_approved_once() {
    let (relay, other_relay) = (Relay::start(), Relay::start());
    let (laptop, phone, elsewhere) = (Home::new(), Home::new(), Home::new());
    let user = laptop.init(&relay.target, "laptop");
    elsewhere.init(&other_relay.target, "elsewhere");
    let joined = join(&phone, &relay.target, &user);
    let text = joined["code"].as_str().unwrap().to_owned();
    assert_eq!(
        phone.json(&["device", "join", "--show-code"])["code"],
        text.as_str(),
        "the same code while it lasts"
    );

    let (exit, message) = elsewhere.fails(&["device", "approve", &text]);
    assert_eq!(exit, 11, "{message}");
    assert!(message.contains("another relay"), "{message}");

    let mut stale: LinkCode = text.parse().unwrap();
    stale.issued_ms -= 16 * 60 * 1000;
    let (exit, message) = laptop.fails(&["device", "approve", &stale.to_string()]);
    assert_eq!(exit, 11, "{message}");
    assert!(message.contains("expired"), "{message}");

    let approved = laptop.json(&["device", "approve", &text]);
    let (exit, message) = laptop.fails(&["device", "approve", &text]);
    assert_eq!(exit, 11, "{message}");
    assert!(message.contains("approved already"), "{message}");

    let report = phone.json(&["sync"]);
    assert_eq!(report["linked"], true);
    let confirmation = report["confirmation"].as_str().unwrap();
    assert_eq!(confirmation, approved["confirmation"].as_str().unwrap());
    assert_eq!(confirmation.len(), 7, "{confirmation}");
    let (exit, message) = phone.fails(&["device", "join", "--show-code"]);
    assert_eq!(exit, 11, "{message}");
}

/// A linked device gets the root key only when approved `--with-root`;
/// the recovery code `init` printed gives it to a device later, and only
/// to a device of that user.
#[test]
fn the_root_key_stays_on_the_first_device_unless_given_or_recovered() {
    let relay = Relay::start();
    let (laptop, phone, tablet, other) = (Home::new(), Home::new(), Home::new(), Home::new());
    let target = &relay.target;
    let created = laptop.create(&["init"], target, "laptop");
    let recovery = created["recovery_code"].as_str().unwrap().to_owned();
    assert!(recovery.starts_with("cairnroot1"));
    assert_eq!(
        laptop.json(&["device", "recovery-code"])["recovery_code"],
        recovery.as_str()
    );
    link(target, &laptop, &phone, "phone");
    assert_eq!(phone.json(&["whoami"])["root_key"], false);
    let user = created["user"].as_str().unwrap();
    let code = join(&tablet, target, user)["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let (exit, message) = phone.fails(&["device", "approve", &code]);
    assert_eq!(exit, 11, "{message}");
    assert!(message.contains("--with-root"), "{message}");
    let (exit, _) = phone.fails(&["device", "recovery-code"]);
    assert_eq!(exit, 11);

    let others = other.create(&["init"], target, "other");
    let (exit, message) = phone.fails(&[
        "device",
        "recover",
        others["recovery_code"].as_str().unwrap(),
    ]);
    assert_eq!(exit, 11, "{message}");
    assert!(message.contains("another user"), "{message}");

    phone.ok(&["device", "recover", &recovery]);
    assert_eq!(phone.json(&["whoami"])["root_key"], true);
    let approved = phone.json(&["device", "approve", &code]);
    assert_eq!(
        tablet.json(&["sync"])["confirmation"],
        approved["confirmation"]
    );
    assert_eq!(tablet.json(&["whoami"])["root_key"], false);
}

/// At a terminal, the joining device shows who approved it and the
/// confirmation, and links only if the person says the approving device
/// shows the same.
#[test]
fn at_a_terminal_the_new_device_asks_before_it_links() {
    use rexpect::process::WaitStatus;
    let relay = Relay::start();
    let (laptop, phone) = (Home::new(), Home::new());
    let user = laptop.init(&relay.target, "laptop");
    let code = join(&phone, &relay.target, &user)["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let approved = laptop.json(&["device", "approve", &code]);
    let confirmation = approved["confirmation"].as_str().unwrap();
    let at_terminal = |answer: &str| {
        let mut command = phone.cmd(&["sync"]);
        command.stdin(std::process::Stdio::inherit());
        let mut session = rexpect::session::spawn_command(command, Some(20_000)).unwrap();
        session
            .exp_string(&format!(
                "approved as a device of {user}; confirmation {confirmation}"
            ))
            .unwrap();
        session.exp_string("[y/N]").unwrap();
        session.send_line(answer).unwrap();
        let rest = session.exp_eof().unwrap();
        let status = session.process().wait().unwrap();
        (status, rest)
    };
    let (status, said) = at_terminal("n");
    assert!(
        matches!(status, WaitStatus::Exited(_, 11)),
        "{status:?}: {said}"
    );
    assert!(said.contains("not linked"), "{said}");
    assert_eq!(
        phone.json(&["whoami"])["pending"],
        true,
        "nothing was adopted"
    );
    let (status, said) = at_terminal("y");
    assert!(
        matches!(status, WaitStatus::Exited(_, 0)),
        "{status:?}: {said}"
    );
    assert!(
        said.contains(&format!("confirmation: {confirmation}")),
        "{said}"
    );
    assert_eq!(phone.json(&["whoami"])["user"], user.as_str());
}

/// The names of the user's devices as `device list` shows them on `home`.
fn device_names(home: &Home) -> Vec<String> {
    let devices = home.json(&["device", "list"]);
    let mut names: Vec<String> = devices
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

#[test]
fn a_device_renamed_on_one_device_shows_its_new_name_on_all() {
    let relay = Relay::start();
    let (laptop, phone) = (Home::new(), Home::new());
    laptop.init(&relay.target, "laptop");
    link(&relay.target, &laptop, &phone, "phone");
    laptop.ok(&["sync"]);
    assert_eq!(device_names(&laptop), ["laptop", "phone"]);

    let renamed = laptop.json(&["device", "rename", "phone", "old phone"]);
    assert_eq!(renamed["queued"], false, "{renamed}");
    assert_eq!(renamed["device"], phone.device_id().as_str());
    phone.ok(&["sync"]);
    assert_eq!(device_names(&phone), ["laptop", "old phone"]);
    assert_eq!(device_names(&laptop), ["laptop", "old phone"]);

    let (code, message) = laptop.fails(&["device", "rename", "old phone", "laptop"]);
    assert_eq!(code, 11, "a name taken by another device: {message}");
    let (code, message) = laptop.fails(&["device", "rename", "tablet", "new"]);
    assert_eq!(code, 11, "no such device: {message}");
    // A device can rename itself too.
    phone.ok(&["device", "rename", "old phone", "phone again"]);
    laptop.ok(&["sync"]);
    assert_eq!(device_names(&laptop), ["laptop", "phone again"]);
}
