//! Following the relay's log across a restore (`spec/client.md` section
//! 6.1). The relay names its log with a random id that changes when a
//! backup is restored; positions under a new id do not continue the ones
//! this device read. When the id changes, the device, before its hello:
//!
//! 1. asks the relay where it stands (`Status`): the last seq it holds of
//!    this device and the positions this device acknowledged to it;
//! 2. moves each cursor back to where its copy and the relay's agree (the
//!    lower of its own and the one the relay holds), so that what now sits
//!    at positions it had passed is read; envelopes it already holds are
//!    skipped by id;
//! 3. queues again its own envelopes past the relay's last seq;
//! 4. sends again the statements it holds that the relay may have lost:
//!    its user's device revocations and certificates from its records, and,
//!    on a device with the root key, grants to the friends it has added;
//!
//! and records the new id only once all of that is committed, so that a
//! device interrupted half-way does it again.

use cairn_wire::{Cursor, DeviceStatus, LogId, Request, Response, Scope, StreamId};

use crate::client::{Client, now_ms};
use crate::connection::Connection;
use crate::error::Error;
use crate::local::{Batch, meta};
use crate::record::RecordBody;

/// What following a new relay log did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Relogged {
    /// Streams this device reads again from an earlier position.
    pub rewound: u64,
    /// Own envelopes queued again.
    pub resent: u64,
    /// Statements sent again.
    pub restated: u64,
}

impl Client {
    /// Compares the relay's log with the one this device last read and, if
    /// it changed, heals as the module says. `None` when it did not change
    /// (or this is the first contact, which only records it).
    pub(crate) async fn follow_relay_log(
        &mut self,
        connection: &Connection,
    ) -> Result<Option<Relogged>, Error> {
        let log = connection.auth().log;
        let Some(known) = self.known_log()? else {
            let mut batch = Batch::default();
            batch.meta.push((meta::RELAY_LOG, log.as_bytes().to_vec()));
            self.local.store().commit(batch)?;
            return Ok(None);
        };
        if known == log {
            return Ok(None);
        }
        tracing::warn!(%known, %log, "the relay's log changed (restored from a backup?)");
        let status = self.own_status(connection).await?;
        let mut batch = Batch::default();
        let rewound = self.rewind(&status, &mut batch)?;
        let resent = self.requeue_after(status.last_seq, &mut batch)?;
        self.local.store().commit(batch)?;
        let restated = self.restate(connection).await?;
        let mut batch = Batch::default();
        batch.meta.push((meta::RELAY_LOG, log.as_bytes().to_vec()));
        self.local.store().commit(batch)?;
        Ok(Some(Relogged {
            rewound,
            resent,
            restated,
        }))
    }

    fn known_log(&self) -> Result<Option<LogId>, Error> {
        Ok(self
            .local
            .store()
            .meta(meta::RELAY_LOG)?
            .and_then(|bytes| <[u8; LogId::LEN]>::try_from(bytes.as_slice()).ok())
            .map(LogId::from_bytes))
    }

    /// This device's row of the relay's `Status`.
    async fn own_status(&self, connection: &Connection) -> Result<DeviceStatus, Error> {
        let status = match connection.request(&Request::Status).await? {
            Response::Status(status) => status,
            Response::Error(e) => return Err(Error::Refused(e)),
            other => return Err(Error::Protocol(format!("status answered {other:?}"))),
        };
        let me = self.device();
        Ok(status
            .devices
            .into_vec()
            .into_iter()
            .find(|d| d.device == me)
            .unwrap_or(DeviceStatus {
                device: me,
                revoked: false,
                last_seq: 0,
                acked: cairn_wire::BoundedVec::default(),
            }))
    }

    /// Moves every cursor back to the lower of its position and the one
    /// the relay holds for this device; how many moved.
    fn rewind(&self, status: &DeviceStatus, batch: &mut Batch) -> Result<u64, Error> {
        let acked = |stream: &StreamId| {
            status
                .acked
                .iter()
                .find(|c| c.stream == *stream)
                .map_or(0, |c| c.position)
        };
        let mut moved = 0;
        for Cursor { stream, position } in self.local.store().cursors()? {
            let agreed = position.min(acked(&stream));
            if agreed < position {
                batch.rewound.push((stream, agreed));
                moved += 1;
            }
        }
        Ok(moved)
    }

    /// Queues this device's own envelopes past `last_seq` again.
    fn requeue_after(&self, last_seq: u64, batch: &mut Batch) -> Result<u64, Error> {
        let next = self.local.store().next_seq()?;
        let own =
            self.local
                .store()
                .own_envelopes(&self.device(), last_seq.saturating_add(1), next)?;
        let count = u64::try_from(own.len()).unwrap_or(u64::MAX);
        batch.outbox_add.extend(own);
        Ok(count)
    }

    /// Sends again the statements this device can: revocations first (a
    /// revocation is final whatever comes after), then certificates, then
    /// friend grants if it holds the root key. A refusal of one (e.g. a
    /// certificate of a device revoked meanwhile) is not an error: the
    /// relay keeps what it has.
    async fn restate(&self, connection: &Connection) -> Result<u64, Error> {
        let me = self.user()?;
        let items = self.items()?;
        let own_private = items
            .iter()
            .filter(|i| i.header.author == me && i.header.scope == Scope::Private);
        let mut revocations = Vec::new();
        let mut certificates = Vec::new();
        for item in own_private {
            certificates.push(item.record.certificate.clone());
            match &item.record.body {
                RecordBody::Device { certificate, .. } => certificates.push(certificate.clone()),
                RecordBody::DeviceRevoked { revocation, .. } => {
                    revocations.push(revocation.clone());
                }
                _ => {}
            }
        }
        certificates.sort_by_key(|c| c.body().device);
        certificates.dedup();
        revocations.sort_by_key(|r| r.body().device);
        revocations.dedup();
        let mut requests: Vec<Request> = revocations
            .into_iter()
            .map(Request::RevokeDevice)
            .chain(certificates.into_iter().map(Request::RegisterDevice))
            .collect();
        if let Ok(root) = self.identity.linked()?.root() {
            let now = now_ms();
            requests.extend(
                self.state()?
                    .friend_views()
                    .into_iter()
                    .map(|friend| Request::GrantFriend(root.grant_friend(friend.user, now))),
            );
        }
        let mut sent = 0;
        for request in requests {
            match connection.request(&request).await? {
                Response::Done => sent += 1,
                Response::Error(e) => tracing::debug!(error = %e, "statement sent again refused"),
                other => return Err(Error::Protocol(format!("statement answered {other:?}"))),
            }
        }
        Ok(sent)
    }
}
