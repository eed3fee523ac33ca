//! Friend audiences through the real binaries: posts to overlapping
//! audiences reach exactly their members; a removed member gets nothing
//! new, neither from the relay nor as a key.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod cli;
mod support;

use cairn_crypto::{AudienceId, Epoch};
use cairn_wire::{EnvelopeId, ErrorCode, ReadRequest, Request, Response, Scope, StreamId, UserId};
use cli::{Home, Relay, link};
use serde_json::{Value, json};

/// Four users; alice and each of the others have added each other.
struct Friends {
    alice: Home,
    bob: Home,
    carol: Home,
    dave: Home,
    alice_id: String,
}

impl Friends {
    fn new(relay: &Relay) -> Self {
        let (alice, bob, carol, dave) = (Home::new(), Home::new(), Home::new(), Home::new());
        let alice_id = alice.init(&relay.target, "alice-laptop");
        for (home, name) in [(&bob, "bob"), (&carol, "carol"), (&dave, "dave")] {
            let id = home.init(&relay.target, &format!("{name}-laptop"));
            alice.ok(&["friend", "add", &id, "--name", name]);
            home.ok(&["friend", "add", &alice_id, "--name", "alice"]);
        }
        Self {
            alice,
            bob,
            carol,
            dave,
            alice_id,
        }
    }

    fn sync_all(&self) {
        for home in [&self.alice, &self.bob, &self.carol, &self.dave] {
            home.ok(&["sync"]);
        }
    }
}

/// A feed as `(from, text)` pairs, in order.
fn feed(home: &Home) -> Vec<(String, String)> {
    home.json(&["feed"])
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["from"].as_str().unwrap().to_owned(),
                p["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn from_alice(texts: &[&str]) -> Vec<(String, String)> {
    texts
        .iter()
        .map(|t| ("alice".to_owned(), (*t).to_owned()))
        .collect()
}

/// The feed entry with `text`.
fn post(home: &Home, text: &str) -> Value {
    let feed = home.json(&["feed"]);
    feed.as_array()
        .unwrap()
        .iter()
        .find(|p| p["text"] == text)
        .unwrap_or_else(|| panic!("no post {text:?} in {feed}"))
        .clone()
}

/// The audience id a friend's post was sealed to, as the feed shows it.
fn audience_of(post: &Value) -> AudienceId {
    let hex = post["audiences"][0].as_str().unwrap();
    AudienceId::from_bytes(hex::decode(hex).unwrap().try_into().unwrap())
}

/// What the relay answers `home`'s device when it reads `owner`'s friends
/// stream from the start.
fn read_friends_stream(home: &Home, owner: UserId) -> Response {
    read_stream(home, StreamId::new(owner, Scope::Friends))
}

/// What the relay answers `home`'s device when it reads `stream` from the
/// start.
fn read_stream(home: &Home, stream: StreamId) -> Response {
    let client = home.client();
    let read = Request::Read(ReadRequest {
        stream,
        after: 0,
        limit: 100,
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let connection = client.connect().await.unwrap();
        let answer = connection.request(&read).await.unwrap();
        connection.close().await;
        answer
    })
}

#[test]
fn overlapping_audiences_reach_exactly_their_members_and_a_removed_one_gets_nothing_new() {
    let relay = Relay::start();
    let f = Friends::new(&relay);
    f.alice.ok(&[
        "audience", "create", "close", "--member", "bob", "--member", "carol",
    ]);
    f.alice.ok(&[
        "audience", "create", "family", "--member", "carol", "--member", "dave",
    ]);
    assert_eq!(
        f.alice.json(&["audience", "list"]),
        json!([
            {"name": "close", "epoch": 0, "members": ["bob", "carol"]},
            {"name": "family", "epoch": 0, "members": ["carol", "dave"]},
        ])
    );
    f.alice.ok(&["post", "--to", "close", "close only"]);
    f.alice.ok(&["post", "--to", "family", "family only"]);
    f.alice
        .ok(&["post", "--to", "close", "--to", "family", "to both"]);
    f.sync_all();
    assert_eq!(feed(&f.bob), from_alice(&["close only", "to both"]));
    assert_eq!(
        feed(&f.carol),
        from_alice(&["close only", "family only", "to both"])
    );
    assert_eq!(feed(&f.dave), from_alice(&["family only", "to both"]));
    let both = post(&f.alice, "to both");
    assert_eq!(both["from"], "me");
    assert_eq!(both["mine"], true);
    assert_eq!(both["audiences"], json!(["close", "family"]));
    let seen_by_bob = post(&f.bob, "close only");
    assert_eq!(seen_by_bob["author"], f.alice_id.as_str());
    assert_eq!(seen_by_bob["mine"], false);
    assert!(seen_by_bob["id"].as_str().unwrap().starts_with("ce1"));
    let close = audience_of(&seen_by_bob);

    // Carol leaves "close": its key rotates. She is still a friend, so the
    // relay keeps serving her alice's friends stream; only the key keeps
    // her from what is posted to "close" from now on.
    let alice = f.alice_id.parse::<UserId>().unwrap();
    f.alice.ok(&["audience", "remove", "close", "carol"]);
    assert_eq!(
        f.alice.json(&["audience", "list"]),
        json!([
            {"name": "close", "epoch": 1, "members": ["bob"]},
            {"name": "family", "epoch": 0, "members": ["carol", "dave"]},
        ])
    );
    let sealed_away = f
        .alice
        .json(&["post", "--to", "close", "after carol left close"]);
    f.alice.ok(&["post", "--to", "family", "family with carol"]);
    f.sync_all();
    // Carol is told why she holds a post she cannot open.
    let told = f.carol.json(&["sync"]);
    assert_eq!(told["waiting"], 1, "{told}");
    assert_eq!(told["unopened"]["later_epoch"], 1, "{told}");
    assert_eq!(told["unopened"]["no_key"], 0, "{told}");
    let dave = f.dave.json(&["sync"]);
    assert_eq!(
        dave["unopened"]["no_key"], dave["waiting"],
        "dave holds posts to \"close\", which he was never in: {dave}"
    );
    assert!(dave["waiting"].as_u64().unwrap() >= 2, "{dave}");
    let said = f.carol.ok(&["sync"]);
    assert!(
        said.contains("1 posts are sealed to a later epoch of an audience you had keys for"),
        "{said}"
    );
    let sealed_away: EnvelopeId = sealed_away["id"].as_str().unwrap().parse().unwrap();
    match read_friends_stream(&f.carol, alice) {
        Response::Page(page) => assert!(
            page.entries.iter().any(|e| e.envelope.id() == sealed_away),
            "the relay still serves carol the stream"
        ),
        other => panic!("carol could not read alice's stream: {other:?}"),
    }
    assert_eq!(
        feed(&f.carol),
        from_alice(&["close only", "family only", "to both", "family with carol"]),
        "carol holds the envelope but cannot open it"
    );
    assert_eq!(
        feed(&f.bob),
        from_alice(&["close only", "to both", "after carol left close"])
    );

    // Then alice drops carol as a friend: "family" rotates too, and the
    // relay stops serving her alice's friends stream.
    f.alice.ok(&["friend", "rm", "carol"]);
    assert_eq!(
        f.alice.json(&["audience", "list"]),
        json!([
            {"name": "close", "epoch": 1, "members": ["bob"]},
            {"name": "family", "epoch": 1, "members": ["dave"]},
        ])
    );
    let later = f.alice.json(&["post", "--to", "close", "after carol left"]);
    f.alice
        .ok(&["post", "--to", "family", "family after carol"]);
    let pulled = f.carol.json(&["sync"]);
    assert_eq!(pulled["pulled"], 0, "the relay serves carol nothing new");
    f.sync_all();
    assert_eq!(
        feed(&f.bob),
        from_alice(&[
            "close only",
            "to both",
            "after carol left close",
            "after carol left"
        ])
    );
    assert_eq!(
        feed(&f.dave),
        from_alice(&[
            "family only",
            "to both",
            "family with carol",
            "family after carol"
        ])
    );
    assert_eq!(
        feed(&f.carol),
        from_alice(&["close only", "family only", "to both", "family with carol"]),
        "carol gets nothing new"
    );

    // Asked directly, the relay refuses carol's device a read of alice's
    // friends stream, and serves bob the later post.
    let later: EnvelopeId = later["id"].as_str().unwrap().parse().unwrap();
    match read_friends_stream(&f.carol, alice) {
        Response::Error(e) => assert_eq!(e.code, ErrorCode::FORBIDDEN, "{e}"),
        other => panic!("carol read alice's stream: {other:?}"),
    }
    match read_friends_stream(&f.bob, alice) {
        Response::Page(page) => assert!(page.entries.iter().any(|e| e.envelope.id() == later)),
        other => panic!("bob could not read alice's stream: {other:?}"),
    }

    // From carol's own home: she holds the first epoch of "close" and
    // not the second, which was never sealed to her.
    let carol = f.carol.client();
    assert!(
        carol
            .holds_audience_key(alice, close, Epoch::FIRST)
            .unwrap()
    );
    assert!(!carol.holds_audience_key(alice, close, Epoch(1)).unwrap());
    let bob = f.bob.client();
    assert!(bob.holds_audience_key(alice, close, Epoch(1)).unwrap());
}

#[test]
fn watch_receives_a_post_live() {
    let relay = Relay::start();
    let (alice, alice_phone, bob) = (Home::new(), Home::new(), Home::new());
    let a = alice.init(&relay.target, "alice");
    link(&relay.target, &alice, &alice_phone, "phone");
    let b = bob.init(&relay.target, "bob");
    alice.ok(&["friend", "add", &b, "--name", "bob"]);
    bob.ok(&["friend", "add", &a, "--name", "alice"]);
    alice.ok(&["audience", "create", "close", "--member", "bob"]);

    let watch = bob.watch();
    // The phone has not synced since the audience was made: posting
    // pulls it first.
    alice_phone.ok(&["post", "--to", "close", "live hello"]);
    bob.ok(&["note", "add", "a note while watching"]);
    let mut events = watch.events_until(|e| e["kind"] == "post");
    if !events.iter().any(|e| e["kind"] == "note") {
        events.extend(watch.events_until(|e| e["kind"] == "note"));
    }
    let post = events.iter().find(|e| e["kind"] == "post").unwrap();
    assert_eq!(post["text"], "live hello");
    assert_eq!(post["from"], "alice");
    assert_eq!(post["author"], a.as_str());
    let note = events.iter().find(|e| e["kind"] == "note").unwrap();
    assert_eq!(note["op"], "add");
    assert_eq!(note["text"], "a note while watching");
}

/// The post texts `watch` prints until it prints `last`.
fn posts_until(watch: &cli::Watch, last: &str) -> Vec<String> {
    watch
        .events_until(|e| e["kind"] == "post" && e["text"] == last)
        .iter()
        .filter(|e| e["kind"] == "post")
        .map(|e| e["text"].as_str().unwrap().to_owned())
        .collect()
}

/// `watch` prints what arrived while it was not running and nothing the
/// user was shown already (by `watch`, `feed` or `note list`); `--since`
/// replays; it says when it is reconnecting.
#[test]
fn watch_prints_what_arrived_while_away_once_and_says_when_it_reconnects() {
    let mut relay = Relay::start();
    let (alice, bob) = (Home::new(), Home::new());
    let a = alice.init(&relay.target, "alice");
    let b = bob.init(&relay.target, "bob");
    alice.ok(&["friend", "add", &b, "--name", "bob"]);
    bob.ok(&["friend", "add", &a, "--name", "alice"]);
    alice.ok(&["audience", "create", "close", "--member", "bob"]);
    let watch = bob.watch();
    alice.ok(&["post", "--to", "close", "one"]);
    assert_eq!(posts_until(&watch, "one"), ["one"]);
    drop(watch);

    alice.ok(&["post", "--to", "close", "while away"]);
    let watch = bob.watch();
    alice.ok(&["post", "--to", "close", "two"]);
    assert_eq!(posts_until(&watch, "two"), ["while away", "two"]);
    drop(watch);

    alice.ok(&["post", "--to", "close", "read in the feed"]);
    bob.ok(&["sync"]);
    assert_eq!(feed(&bob).len(), 4);
    let mut watch = bob.watch();
    alice.ok(&["post", "--to", "close", "three"]);
    assert_eq!(
        posts_until(&watch, "three"),
        ["three"],
        "the feed showed the rest"
    );

    relay.stop();
    watch.says("reconnecting");
    relay.restart();
    watch.wait_live(2);
    drop(watch);

    let replay = bob.watch_with(&["--since", "1h"]);
    alice.ok(&["post", "--to", "close", "four"]);
    assert_eq!(
        posts_until(&replay, "four"),
        [
            "one",
            "while away",
            "two",
            "read in the feed",
            "three",
            "four"
        ]
    );
}

#[test]
fn unknown_names_and_missing_keys_are_specific_errors() {
    let relay = Relay::start();
    let (alice, dave) = (Home::new(), Home::new());
    alice.init(&relay.target, "alice");
    let d = dave.init(&relay.target, "dave");

    let (code, message) = alice.fails(&["post", "--to", "nobody", "hi"]);
    assert_eq!(code, 8, "{message}");
    assert!(message.contains("no audience named"), "{message}");
    let (code, message) = alice.fails(&["audience", "create", "x", "--member", "nobody"]);
    assert_eq!(code, 8, "{message}");
    assert!(message.contains("no friend named"), "{message}");
    let (code, message) = alice.fails(&["friend", "rm", "nobody"]);
    assert_eq!(code, 8, "{message}");

    alice.ok(&["friend", "add", &d, "--name", "dave"]);
    let (code, message) = alice.fails(&["audience", "create", "x", "--member", "dave"]);
    assert_eq!(code, 8, "{message}");
    assert!(message.contains("must add you as a friend"), "{message}");
}

/// A removal must not be undone by a stale concurrent edit: the laptop
/// removes bob from "fam" (a new epoch) while the phone, not synced yet,
/// adds dave to the old epoch. Once both have synced, the audience stays at
/// the newer epoch without bob, and what alice posts to it next never
/// reaches bob.
#[test]
fn a_stale_concurrent_edit_does_not_undo_a_removal() {
    let relay = Relay::start();
    let f = Friends::new(&relay);
    let phone = Home::new();
    link(&relay.target, &f.alice, &phone, "phone");
    f.alice.ok(&[
        "audience", "create", "fam", "--member", "bob", "--member", "carol",
    ]);
    f.sync_all();
    phone.ok(&["sync"]);
    f.alice.ok(&["audience", "remove", "fam", "bob"]);
    // The phone knows "fam" and dave's key, so it edits without syncing:
    // its snapshot is of the epoch before the removal.
    phone.ok(&["audience", "add", "fam", "dave"]);
    phone.ok(&["sync"]);
    f.alice.ok(&["sync"]);
    // The two edits each started epoch 1: they merge, the addition and
    // the removal both counting, and the audience moves on to an epoch
    // bob never gets.
    phone.ok(&["sync"]);
    f.alice.ok(&["sync"]);
    for home in [&f.alice, &phone] {
        let audiences = home.json(&["audience", "list"]);
        let fam = &audiences[0];
        assert_eq!(fam["name"], "fam");
        assert!(fam["epoch"].as_u64().unwrap() >= 1, "{audiences}");
        assert_eq!(fam["members"], json!(["carol", "dave"]), "{audiences}");
    }
    f.alice.ok(&["post", "--to", "fam", "after bob left"]);
    f.sync_all();
    assert!(
        !feed(&f.bob)
            .iter()
            .any(|(_, text)| text == "after bob left"),
        "bob reads what was posted after his removal"
    );
    assert_eq!(
        feed(&f.carol).last().map(|(_, text)| text.as_str()),
        Some("after bob left")
    );
}

/// `audience add` used to grant the current epoch, so a member added later
/// read everything posted since the last rotation. Adding now rotates: the
/// new member reads what follows, unless added `--with-history`.
#[test]
fn a_member_added_later_reads_only_what_follows_unless_given_history() {
    let relay = Relay::start();
    let f = Friends::new(&relay);
    f.alice
        .ok(&["audience", "create", "fam", "--member", "bob"]);
    f.alice
        .ok(&["post", "--to", "fam", "before carol and dave"]);
    f.sync_all();
    f.alice.ok(&["audience", "add", "fam", "carol"]);
    f.alice
        .ok(&["audience", "add", "fam", "dave", "--with-history"]);
    f.alice.ok(&["post", "--to", "fam", "after"]);
    f.sync_all();
    assert_eq!(feed(&f.carol), from_alice(&["after"]));
    assert_eq!(
        feed(&f.dave),
        from_alice(&["before carol and dave", "after"])
    );
    assert_eq!(
        feed(&f.bob),
        from_alice(&["before carol and dave", "after"])
    );
    let told = f.carol.json(&["sync"]);
    assert_eq!(told["unopened"]["no_key"], 1, "carol is told: {told}");
    let (exit, message) = f.alice.fails(&["audience", "add", "fam", "carol"]);
    assert_eq!(exit, 11, "{message}");
}

/// A post to an audience nobody is in reaches only the user's own devices:
/// the command says so, and says nothing of an audience with members.
#[test]
fn posting_to_an_empty_audience_warns() {
    let relay = Relay::start();
    let (alice, bob) = (Home::new(), Home::new());
    let a = alice.init(&relay.target, "alice");
    let b = bob.init(&relay.target, "bob");
    alice.ok(&["friend", "add", &b, "--name", "bob"]);
    bob.ok(&["friend", "add", &a, "--name", "alice"]);
    alice.ok(&["audience", "create", "nobody"]);
    alice.ok(&["audience", "create", "close", "--member", "bob"]);
    let stderr = |args: &[&str]| {
        let output = alice.cmd(args).output().unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let said = stderr(&["post", "--to", "nobody", "to myself"]);
    assert!(said.contains("nobody has no members"), "{said}");
    let said = stderr(&["post", "--to", "close", "to bob"]);
    assert!(!said.contains("no members"), "{said}");
}

/// `cairn export` writes the user's own history, decrypted, as JSON lines
/// in a new file only its owner reads.
#[test]
fn a_user_exports_their_notes_feed_friends_and_audiences() {
    use std::os::unix::fs::PermissionsExt;
    let relay = Relay::start();
    let (alice, bob) = (Home::new(), Home::new());
    let a = alice.init(&relay.target, "alice");
    let b = bob.init(&relay.target, "bob");
    alice.ok(&["friend", "add", &b, "--name", "bob"]);
    bob.ok(&["friend", "add", &a, "--name", "alice"]);
    alice.ok(&["audience", "create", "close", "--member", "bob"]);
    alice.ok(&["note", "add", "a private note"]);
    bob.ok(&["sync"]);
    bob.ok(&["audience", "create", "back", "--member", "alice"]);
    bob.ok(&["post", "--to", "back", "from bob"]);
    alice.ok(&["post", "--to", "close", "from alice"]);
    alice.ok(&["sync"]);

    let dir = tempfile::TempDir::new().unwrap();
    let out = dir.path().join("history.jsonl");
    alice.ok(&["export", "--out", out.to_str().unwrap()]);
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["format"], "cairn-user-export");
    assert_eq!(lines[0]["user"], a.as_str());
    let of = |kind: &str| -> Vec<&Value> { lines.iter().filter(|l| l["kind"] == kind).collect() };
    assert_eq!(of("note")[0]["text"], "a private note");
    let posts: Vec<&str> = of("post")
        .iter()
        .map(|p| p["text"].as_str().unwrap())
        .collect();
    assert!(
        posts.contains(&"from bob") && posts.contains(&"from alice"),
        "{posts:?}"
    );
    assert_eq!(of("friend")[0]["name"], "bob");
    assert_eq!(of("audience")[0]["name"], "close");
    let (code, message) = alice.fails(&["export", "--out", out.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(message.contains("never replaces"), "{message}");
}

/// The direct messages `inbox --json` lists, as `(with, sent, text)`.
fn inbox(home: &Home, args: &[&str]) -> Vec<(String, bool, String)> {
    let mut all = vec!["inbox"];
    all.extend_from_slice(args);
    home.json(&all)
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["with"].as_str().unwrap().to_owned(),
                m["sent"].as_bool().unwrap(),
                m["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// One line of `inbox --json`, as [`inbox`] gives it.
fn dm(with: &str, sent: bool, text: &str) -> (String, bool, String) {
    (with.to_owned(), sent, text.to_owned())
}

/// `cairn send` and `cairn inbox`: a message reaches its friend and the
/// sender's other devices (live in `watch` too), nobody else, not even
/// through the relay; it is no audience the user can see or post to.
#[test]
fn direct_messages_reach_the_friend_and_the_senders_devices_only() {
    let relay = Relay::start();
    let f = Friends::new(&relay);
    let phone = Home::new();
    link(&relay.target, &f.alice, &phone, "alice-phone");
    let (code, message) = f.alice.fails(&["send", "nobody", "hi"]);
    assert_eq!(code, 8, "{message}");

    let bob_watch = f.bob.watch();
    let phone_watch = phone.watch();
    let sent = f.alice.json(&["send", "bob", "hi bob"]);
    assert_eq!(sent["queued"], false, "{sent}");
    let seen = bob_watch.events_until(|e| e["kind"] == "message");
    let live = seen.last().unwrap();
    assert_eq!(
        (&live["with"], &live["sent"], &live["text"], &live["user"]),
        (
            &json!("alice"),
            &json!(false),
            &json!("hi bob"),
            &json!(f.alice_id)
        ),
        "{live}"
    );
    let mine = phone_watch.events_until(|e| e["kind"] == "message");
    assert_eq!(mine.last().unwrap()["sent"], true, "{mine:?}");
    assert_eq!(mine.last().unwrap()["with"], "bob", "{mine:?}");
    drop((bob_watch, phone_watch));

    f.bob.ok(&["send", "alice", "hi back"]);
    f.alice.ok(&["send", "carol", "hi carol"]);
    f.sync_all();
    phone.ok(&["sync"]);
    assert_eq!(
        inbox(&f.bob, &[]),
        [dm("alice", false, "hi bob"), dm("alice", true, "hi back")]
    );
    assert_eq!(
        inbox(&phone, &["--with", "bob"]),
        [dm("bob", true, "hi bob"), dm("bob", false, "hi back")]
    );
    assert_eq!(inbox(&f.carol, &[]), [dm("alice", false, "hi carol")]);
    assert!(inbox(&f.dave, &[]).is_empty());

    // Carol cannot read alice's messages to bob, from the relay or as keys.
    let (alice, bob) = (f.alice_id.parse::<UserId>().unwrap(), parse_user(&f.bob));
    match read_stream(&f.carol, StreamId::new(alice, Scope::Direct(bob))) {
        Response::Error(e) => assert_eq!(e.code, ErrorCode::FORBIDDEN, "{e}"),
        other => panic!("carol read alice's messages to bob: {other:?}"),
    }
    // The direct audiences are no audiences of alice's to see or post to.
    assert_eq!(f.alice.json(&["audience", "list"]), json!([]));
    let direct_name = format!("direct to {}", bob.to_text());
    let (code, message) = f.alice.fails(&["post", "--to", &direct_name, "x"]);
    assert_eq!(code, 8, "{message}");
    let log = f.alice.json(&["log"]);
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "message_sent" && e["name"] == "bob"),
        "{log}"
    );

    // Dave adds carol, who has not added him: a message needs the friend
    // to have added the sender back.
    let c = f.carol.json(&["whoami"])["user"]
        .as_str()
        .unwrap()
        .to_owned();
    f.dave.ok(&["friend", "add", &c, "--name", "carol"]);
    let (code, message) = f.dave.fails(&["send", "carol", "hello?"]);
    assert_eq!(code, 8, "{message}");
    assert!(message.contains("must add you as a friend"), "{message}");
}

fn parse_user(home: &Home) -> UserId {
    home.json(&["whoami"])["user"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// A friend removed reads nothing sent after (the direct audience rotated),
/// and a message to someone who removed the sender is refused by the relay
/// and dropped, with exit 6: it does not stay queued forever.
#[test]
fn a_removed_friend_gets_no_new_message_and_cannot_send_one() {
    let relay = Relay::start();
    let f = Friends::new(&relay);
    f.alice.ok(&["send", "bob", "before"]);
    f.sync_all();
    f.alice.ok(&["friend", "rm", "bob"]);
    let (code, message) = f.bob.fails(&["send", "alice", "after removal"]);
    assert_eq!(code, 6, "{message}");
    assert!(message.contains("no longer accepts"), "{message}");
    assert_eq!(f.bob.json(&["status"])["queued"], 0);
    f.bob.ok(&["note", "add", "still works"]);
    assert_eq!(f.bob.json(&["status"])["queued"], 0);
    assert_eq!(inbox(&f.bob, &[]), [dm("alice", false, "before")]);

    // Friends again: the next message opens a new epoch of the direct
    // audience, granted to bob afresh.
    let b = parse_user(&f.bob).to_text();
    f.alice.ok(&["friend", "add", &b, "--name", "bob"]);
    f.alice.ok(&["send", "bob", "again"]);
    f.bob.ok(&["sync"]);
    assert_eq!(
        inbox(&f.bob, &[]),
        [dm("alice", false, "before"), dm("alice", false, "again")]
    );
}

/// `audience delete` removes an audience from every device for good: a
/// device that had not seen the deletion and edits the audience does not
/// bring it back.
#[test]
fn a_deleted_audience_stays_deleted_on_every_device() {
    let relay = Relay::start();
    let f = Friends::new(&relay);
    let phone = Home::new();
    link(&relay.target, &f.alice, &phone, "alice-phone");
    f.alice
        .ok(&["audience", "create", "close", "--member", "bob"]);
    f.alice.ok(&["post", "--to", "close", "to close"]);
    phone.ok(&["sync"]);
    f.alice.ok(&["audience", "delete", "close"]);
    assert_eq!(f.alice.json(&["audience", "list"]), json!([]));
    let (code, message) = f.alice.fails(&["post", "--to", "close", "x"]);
    assert_eq!(code, 8, "{message}");
    // The phone has not synced the deletion: its edit is a later epoch.
    phone.ok(&["audience", "add", "close", "carol"]);
    phone.ok(&["sync"]);
    f.alice.ok(&["sync"]);
    assert_eq!(phone.json(&["audience", "list"]), json!([]));
    assert_eq!(f.alice.json(&["audience", "list"]), json!([]));
    assert_eq!(post(&f.alice, "to close")["text"], "to close");
    f.bob.ok(&["sync"]);
    assert_eq!(
        feed(&f.bob),
        from_alice(&["to close"]),
        "bob keeps what he could read"
    );
    let said = f.alice.ok(&["log"]);
    assert!(said.contains("deleted audience close"), "{said}");
    let (code, message) = f.alice.fails(&["audience", "delete", "close"]);
    assert_eq!(code, 8, "{message}");
}
