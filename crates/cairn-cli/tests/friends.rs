//! Friends and audiences with three users, including removals, through
//! the real binaries.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use support::{Home, Relay};

/// Three users who have all added each other as `alice`, `bob`, `carol`.
fn three_friends(relay: &Relay) -> (Home, Home, Home) {
    let (alice, bob, carol) = (Home::new(), Home::new(), Home::new());
    let a = alice.init(relay, "alice-laptop");
    let b = bob.init(relay, "bob-laptop");
    let c = carol.init(relay, "carol-laptop");
    alice.ok(&["friend", "add", &b, "--name", "bob"]);
    alice.ok(&["friend", "add", &c, "--name", "carol"]);
    bob.ok(&["friend", "add", &a, "--name", "alice"]);
    carol.ok(&["friend", "add", &a, "--name", "alice"]);
    (alice, bob, carol)
}

#[test]
fn friends_flow_with_three_users_and_removals() {
    let relay = Relay::start();
    let (alice, bob, carol) = three_friends(&relay);

    alice.ok(&[
        "audience", "create", "close", "--member", "bob", "--member", "carol",
    ]);
    let audiences = alice.json(&["audience", "list"]);
    assert_eq!(audiences[0]["name"], "close");
    assert_eq!(audiences[0]["members"], serde_json::json!(["bob", "carol"]));
    alice.ok(&["post", "--to", "close", "hello close friends"]);

    bob.ok(&["sync"]);
    carol.ok(&["sync"]);
    let feed = bob.json(&["feed"]);
    assert_eq!(feed[0]["text"], "hello close friends");
    assert_eq!(feed[0]["from"], "alice");
    assert!(feed[0]["id"].as_str().unwrap().starts_with("ce1"));
    assert!(feed[0]["created"].as_u64().unwrap() > 0);
    assert_eq!(carol.feed_texts(), ["hello close friends"]);
    assert_eq!(
        alice.json(&["feed"])[0]["audiences"],
        serde_json::json!(["close"])
    );

    alice.ok(&["audience", "remove", "close", "carol"]);
    assert_eq!(alice.json(&["audience", "list"])[0]["epoch"], 1);
    alice.ok(&["post", "--to", "close", "after carol left"]);
    bob.ok(&["sync"]);
    carol.ok(&["sync"]);
    assert_eq!(
        bob.feed_texts(),
        ["hello close friends", "after carol left"]
    );
    assert_eq!(
        carol.feed_texts(),
        ["hello close friends"],
        "carol cannot read the new epoch"
    );

    alice.ok(&["friend", "rm", "bob"]);
    let friends = alice.json(&["friend", "list"]);
    assert_eq!(friends.as_array().unwrap().len(), 1);
    assert_eq!(
        alice.json(&["audience", "list"])[0]["members"],
        serde_json::json!([])
    );
    alice.ok(&["audience", "add", "close", "carol"]);
    alice.ok(&["post", "--to", "close", "bob is gone"]);
    bob.ok(&["sync"]);
    carol.ok(&["sync"]);
    assert_eq!(
        bob.feed_texts(),
        ["hello close friends", "after carol left"]
    );
    assert_eq!(carol.feed_texts(), ["hello close friends", "bob is gone"]);
}

#[test]
fn unknown_names_and_missing_keys_are_specific_errors() {
    let relay = Relay::start();
    let alice = Home::new();
    let dave = Home::new();
    alice.init(&relay, "alice");
    let d = dave.init(&relay, "dave");

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
