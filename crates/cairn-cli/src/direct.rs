//! `cairn send` and `cairn inbox`: direct messages to and from friends.

use anyhow::Result;
use cairn_client::{Client, Message};
use cairn_wire::{ErrorCode, WireError};
use serde_json::json;

use crate::commands::{Ctx, indented, push, read_text, report_change};
use crate::output::{self, say, time};
use crate::views::{MessageJson, author_name};

/// `cairn send FRIEND [TEXT]`.
pub async fn send(ctx: &Ctx, friend: &str, text: Option<&str>) -> Result<()> {
    let mut client = ctx.client()?;
    let text = match text {
        Some(text) => read_text(text)?,
        None => crate::editor::edit(&ctx.home, "")?,
    };
    let id = client.send_message(friend, &text).await?;
    let queued = push(&mut client).await?;
    if !client.messages()?.iter().any(|m| m.id == id) {
        let refused = WireError::new(
            ErrorCode::FORBIDDEN,
            &format!("{friend} no longer accepts your messages (they removed you as a friend)"),
        );
        return Err(cairn_client::Error::Refused(refused).into());
    }
    if ctx.json {
        return output::json(&json!({ "id": id.to_text(), "queued": queued }));
    }
    say!("sent to {friend}: {}", id.to_text())?;
    report_change("saved", queued);
    Ok(())
}

/// `cairn inbox [--with FRIEND]`.
pub fn inbox(ctx: &Ctx, with: Option<&str>) -> Result<()> {
    let client = ctx.client()?;
    let messages = conversation(&client, with)?;
    client.mark_listed(cairn_client::Listed::Messages)?;
    if ctx.json {
        let json: Vec<MessageJson> = messages.iter().map(MessageJson::from).collect();
        return output::json(&json);
    }
    if messages.is_empty() {
        eprintln!("no messages (`cairn sync` fetches new ones)");
    }
    for message in &messages {
        let head = format!("{}  {}: ", time(message.created), direction(message));
        say!("{head}{}", indented(&message.text, head.chars().count()))?;
    }
    Ok(())
}

/// The messages, or only those with the friend named `with`.
fn conversation(client: &Client, with: Option<&str>) -> Result<Vec<Message>> {
    let messages = client.messages()?;
    let Some(name) = with else {
        return Ok(messages);
    };
    let user = client.friend_id(name)?;
    Ok(messages.into_iter().filter(|m| m.user == user).collect())
}

/// `from NAME` or `to NAME`.
pub fn direction(message: &Message) -> String {
    match message.sent {
        true => format!("to {}", author_name(&message.with)),
        false => format!("from {}", author_name(&message.with)),
    }
}
