//! Invites the operator makes (`cairn-relay invite create|list|revoke`):
//! random codes, single-use unless told otherwise, optionally expiring,
//! stored in the database by the SHA-256 of the code. The code is shown
//! once, when it is made; afterwards an invite is named by its id, the
//! first 16 hex digits of that hash.

use std::time::Duration;

use cairn_store::{Invite, InviteId, Redemption, Store};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Random bytes in an invite code.
const CODE_BYTES: usize = 16;
/// Text before the random part, so that a code is recognisable.
const CODE_PREFIX: &str = "cairn-invite-";
/// Hex digits of the hash that name an invite.
const ID_DIGITS: usize = 16;

/// What `invite create` asks for.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct CreateRequest {
    /// Registrations it admits (at least 1).
    pub uses: u32,
    /// Seconds until it expires; none: never.
    pub expires_secs: Option<u64>,
}

/// An invite as the operator sees it: never its code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteView {
    /// Its id.
    pub id: String,
    /// Registrations it still admits.
    pub uses_left: u32,
    /// When it expires (RFC 3339, UTC), if it does.
    pub expires: Option<String>,
    /// When it was made (RFC 3339, UTC).
    pub created: String,
}

/// A new invite and its code, shown this once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewInvite {
    /// The code to hand to the new user (`cairn init --invite CODE`).
    pub code: String,
    /// The invite.
    pub invite: InviteView,
}

/// An invite operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InviteError {
    /// The store failed.
    #[error("storage: {0}")]
    Store(String),
    /// The operating system gave no random bytes.
    #[error("no randomness for the invite code: {0}")]
    Random(String),
    /// No invite has an id starting with that.
    #[error("no invite {0:?}; `cairn-relay invite list` shows them")]
    Unknown(String),
    /// More than one invite has an id starting with that.
    #[error("{0:?} names more than one invite; give more of its id")]
    Ambiguous(String),
}

/// The id under which the invite with `code` is stored.
pub fn id_of(code: &str) -> InviteId {
    InviteId(Sha256::digest(code.as_bytes()).into())
}

/// Makes and stores a new invite at `now_ms`.
pub async fn create<S: Store>(
    store: &S,
    request: CreateRequest,
    now_ms: u64,
) -> Result<NewInvite, InviteError> {
    let code = new_code()?;
    let expires_ms = request.expires_secs.map_or(u64::MAX, |secs| {
        now_ms.saturating_add(secs.saturating_mul(1000))
    });
    let invite = Invite {
        id: id_of(&code),
        uses_left: request.uses.max(1),
        expires_ms,
        created_ms: now_ms,
    };
    store.create_invite(invite).await.map_err(store_error)?;
    Ok(NewInvite {
        code,
        invite: view(&invite),
    })
}

/// Every stored invite.
pub async fn list<S: Store>(store: &S) -> Result<Vec<InviteView>, InviteError> {
    let invites = store.invites().await.map_err(store_error)?;
    Ok(invites.iter().map(view).collect())
}

/// Revokes the one invite whose id starts with `prefix`.
pub async fn revoke<S: Store>(store: &S, prefix: &str) -> Result<InviteView, InviteError> {
    let invites = store.invites().await.map_err(store_error)?;
    let mut matching = invites
        .iter()
        .filter(|i| !prefix.is_empty() && id_text(&i.id).starts_with(prefix));
    let (Some(invite), None) = (matching.next(), matching.next()) else {
        return Err(
            match invites.iter().any(|i| id_text(&i.id).starts_with(prefix)) {
                true => InviteError::Ambiguous(prefix.to_owned()),
                false => InviteError::Unknown(prefix.to_owned()),
            },
        );
    };
    store.revoke_invite(invite.id).await.map_err(store_error)?;
    Ok(view(invite))
}

/// Spends one use of the stored invite `code` at `now_ms`.
pub async fn redeem<S: Store>(
    store: &S,
    code: &str,
    now_ms: u64,
) -> Result<Redemption, InviteError> {
    store
        .redeem_invite(id_of(code), now_ms)
        .await
        .map_err(store_error)
}

fn view(invite: &Invite) -> InviteView {
    InviteView {
        id: id_text(&invite.id),
        uses_left: invite.uses_left,
        expires: (invite.expires_ms != u64::MAX).then(|| rfc3339(invite.expires_ms)),
        created: rfc3339(invite.created_ms),
    }
}

fn id_text(id: &InviteId) -> String {
    let mut text = hex::encode(id.0);
    text.truncate(ID_DIGITS);
    text
}

fn rfc3339(ms: u64) -> String {
    match std::time::UNIX_EPOCH.checked_add(Duration::from_millis(ms)) {
        Some(at) => humantime::format_rfc3339_seconds(at).to_string(),
        None => "never".to_owned(),
    }
}

fn new_code() -> Result<String, InviteError> {
    let mut bytes = [0u8; CODE_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| InviteError::Random(e.to_string()))?;
    Ok(format!("{CODE_PREFIX}{}", hex::encode(bytes)))
}

fn store_error(e: impl std::fmt::Display) -> InviteError {
    InviteError::Store(e.to_string())
}
