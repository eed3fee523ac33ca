//! The few requests the scenarios make, each checked so that a scenario
//! never reports a rate for work the relay refused.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use cairn_client::Connection;
use cairn_wire::{
    AppendOutcome, AppendRequest, BoundedVec, DeviceCertificate, Envelope, Fingerprint,
    FriendGrant, Request, Response,
};

use crate::ident::Device;

/// Every single wait on the relay is bounded by this.
pub const WAIT: Duration = Duration::from_secs(120);

/// Opens an authenticated connection as `device` with `cairn-client`.
pub async fn open(addr: SocketAddr, pin: Fingerprint, device: &Device) -> Result<Connection> {
    let open = Connection::open(addr, pin, &device.key, device.certificate.clone(), None);
    Ok(tokio::time::timeout(WAIT, open)
        .await
        .context("connecting timed out")??)
}

/// Sends one request and waits, boundedly, for its answer.
pub async fn request(connection: &Connection, request: &Request) -> Result<Response> {
    Ok(tokio::time::timeout(WAIT, connection.request(request))
        .await
        .context("request timed out")??)
}

/// Appends `envelopes` and fails unless every one was stored.
pub async fn append_stored(connection: &Connection, envelopes: Vec<Envelope>) -> Result<()> {
    let envelopes = BoundedVec::new(envelopes).map_err(|_| anyhow::anyhow!("batch too large"))?;
    let append = Request::Append(AppendRequest { envelopes });
    match request(connection, &append).await? {
        Response::Appended(outcomes) => {
            for outcome in outcomes.iter() {
                if !matches!(outcome, AppendOutcome::Stored(_)) {
                    bail!("envelope not stored: {outcome:?}");
                }
            }
            Ok(())
        }
        other => bail!("unexpected answer to append: {other:?}"),
    }
}

/// Registers another device of the connection's user.
pub async fn register_device(
    connection: &Connection,
    certificate: DeviceCertificate,
) -> Result<()> {
    done(connection, &Request::RegisterDevice(certificate)).await
}

/// Lets a friend read the connection user's friends stream.
pub async fn grant_friend(connection: &Connection, grant: FriendGrant) -> Result<()> {
    done(connection, &Request::GrantFriend(grant)).await
}

async fn done(connection: &Connection, sent: &Request) -> Result<()> {
    match request(connection, sent).await? {
        Response::Done => Ok(()),
        other => bail!("unexpected answer: {other:?}"),
    }
}
