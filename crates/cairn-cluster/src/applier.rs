//! The applier: reads the log in order from the record after the copy's
//! `log_applied` and applies it to the node's copy in groups, then hands
//! each record of this node's own requests its answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::consumer::pull::Ordered;
use cairn_store::{LogAnswer, LogWrite, RedbStore};
use futures_util::{FutureExt, StreamExt};
use tokio::sync::{oneshot, watch};

use crate::error::ClusterError;
use crate::jetstream::JetStreamLog;
use crate::record::LogRecord;

/// Most records applied in one transaction.
const MAX_GROUP_RECORDS: usize = 512;
/// Most record bytes applied in one transaction.
const MAX_GROUP_BYTES: usize = 8 * 1024 * 1024;
/// How long the applier waits for a record before it asks the log whether
/// one is due (and makes its consumer again if so).
const STALL_CHECK: Duration = Duration::from_secs(3);
/// Pause before applying a group again after the copy failed to commit it.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// Requests of this process waiting for their record to be applied, by
/// request number.
pub type Waiting = Arc<Mutex<HashMap<u64, oneshot::Sender<LogAnswer>>>>;

/// What the applier shares with the node.
#[derive(Debug)]
pub struct Applier {
    /// The node's copy.
    pub local: Arc<RedbStore>,
    /// The log.
    pub log: JetStreamLog,
    /// This process's origin id: records with it answer `waiting`.
    pub process: u64,
    /// Requests waiting for their answers.
    pub waiting: Waiting,
    /// The last record applied, for reads that must see it.
    pub applied: watch::Sender<u64>,
}

impl Applier {
    /// Applies the log from the record after `applied` until the log
    /// cannot be applied any more; the error says why.
    pub async fn run(self, applied: u64) -> ClusterError {
        let messages = match self.log.follow(applied.saturating_add(1)).await {
            Ok(messages) => messages,
            Err(e) => return e,
        };
        self.apply_all(messages, applied).await
    }

    async fn apply_all(&self, mut messages: Ordered, mut applied: u64) -> ClusterError {
        loop {
            let group =
                match tokio::time::timeout(STALL_CHECK, next_group(&mut messages, applied)).await {
                    Ok(Ok(Next::Group(group))) => group,
                    Ok(Ok(Next::Rewound(delivered))) => {
                        if let Err(e) = self.follow_again(&mut messages, applied, delivered).await {
                            return e;
                        }
                        continue;
                    }
                    Ok(Err(e)) => return e,
                    Err(_) => {
                        if let Err(e) = self.unstall(&mut messages, applied).await {
                            return e;
                        }
                        continue;
                    }
                };
            let first = applied.saturating_add(1);
            let last = applied.saturating_add(group.len() as u64);
            let writes: Vec<LogWrite> = group.iter().map(|record| record.body.to_write()).collect();
            let answers = match self.apply_group(first, writes).await {
                Ok(answers) => answers,
                Err(e) => return e,
            };
            // The watermark moves before anyone is answered: a caller that
            // has its answer finds `applied` covering its record.
            applied = last;
            self.applied.send_replace(last);
            self.answer(&group, answers);
        }
    }

    /// Nothing came for a while: if the log holds records past `applied`,
    /// the consumer is stuck (one made again while the stream elected a
    /// leader can stay silent), so it is made again from `applied + 1`.
    async fn unstall(&self, messages: &mut Ordered, applied: u64) -> Result<(), ClusterError> {
        let Ok((_, last)) = self.log.bounds().await else {
            return Ok(());
        };
        if last > applied {
            tracing::warn!(
                applied,
                last,
                "the log's consumer delivers nothing; making it again"
            );
            *messages = self.log.follow(applied.saturating_add(1)).await?;
        }
        Ok(())
    }

    /// The consumer delivered record `delivered`, which this copy applied
    /// already: async-nats makes an ordered consumer that failed before it
    /// delivered anything again from the log's first record, not from the
    /// one it was asked to start at. Replaying what is applied would cost
    /// a read of the whole log, so the consumer is made again from
    /// `applied + 1`.
    async fn follow_again(
        &self,
        messages: &mut Ordered,
        applied: u64,
        delivered: u64,
    ) -> Result<(), ClusterError> {
        tracing::warn!(
            applied,
            delivered,
            "the log's consumer started over from a record already applied; making it again"
        );
        *messages = self.log.follow(applied.saturating_add(1)).await?;
        Ok(())
    }

    /// Applies one group, trying again while the copy fails to commit it
    /// (a full or failing disk): the log waits, nothing is skipped.
    async fn apply_group(
        &self,
        first: u64,
        writes: Vec<LogWrite>,
    ) -> Result<Vec<LogAnswer>, ClusterError> {
        loop {
            match self.local.apply_log(first, writes.clone()).await {
                Ok(Ok(answers)) => return Ok(answers),
                Ok(Err(out_of_order)) => {
                    return Err(ClusterError::Stopped(out_of_order.to_string()));
                }
                Err(e) => {
                    tracing::error!(error = %e, first, "applying the log failed; trying again");
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        }
    }

    fn answer(&self, group: &[LogRecord], answers: Vec<LogAnswer>) {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        for (record, answer) in group.iter().zip(answers) {
            if record.origin.process != self.process {
                continue;
            }
            if let Some(reply) = waiting.remove(&record.origin.request) {
                // A caller that gave up is fine: its write is applied.
                drop(reply.send(answer));
            }
        }
    }
}

/// What the consumer delivered next.
#[derive(Debug)]
enum Next {
    /// Records continuing the copy, in order.
    Group(Vec<LogRecord>),
    /// A record the copy applied already (its sequence): the consumer
    /// went back.
    Rewound(u64),
}

/// Where a delivered record stands against the next one the copy needs.
#[derive(Debug, PartialEq, Eq)]
enum Placement {
    /// The next one.
    Next,
    /// Applied already.
    Applied,
    /// Past the next one: records in between were never delivered.
    Gap,
}

fn place(seq: u64, expected: u64) -> Placement {
    match seq.cmp(&expected) {
        std::cmp::Ordering::Equal => Placement::Next,
        std::cmp::Ordering::Less => Placement::Applied,
        std::cmp::Ordering::Greater => Placement::Gap,
    }
}

/// The next records: waits for one, then takes those already delivered,
/// up to a group's limits. Checks that they continue `applied`.
async fn next_group(messages: &mut Ordered, applied: u64) -> Result<Next, ClusterError> {
    let mut group = Vec::new();
    let mut bytes = 0;
    let mut expected = applied.saturating_add(1);
    loop {
        let next = if group.is_empty() {
            messages.next().await
        } else {
            match messages.next().now_or_never() {
                Some(next) => next,
                None => return Ok(Next::Group(group)),
            }
        };
        let message = match next {
            Some(Ok(message)) => message,
            Some(Err(e)) => {
                // The ordered consumer makes itself again after a failure,
                // from the record after the last one it delivered.
                tracing::warn!(error = %e, "following the log: the consumer is being recreated");
                if group.is_empty() {
                    continue;
                }
                return Ok(Next::Group(group));
            }
            None => return Err(ClusterError::Stopped("the log's consumer ended".into())),
        };
        let seq = message
            .info()
            .map_err(|e| ClusterError::Stopped(e.to_string()))?
            .stream_sequence;
        match place(seq, expected) {
            Placement::Next => {}
            Placement::Applied if group.is_empty() => return Ok(Next::Rewound(seq)),
            // What came before it is applied first; the next call sees
            // the consumer went back.
            Placement::Applied => return Ok(Next::Group(group)),
            Placement::Gap => {
                return Err(ClusterError::Stopped(format!(
                    "the log delivered record {seq} where {expected} was next"
                )));
            }
        }
        let record = LogRecord::decode(&message.payload)
            .map_err(|e| ClusterError::Record(seq, e.to_string()))?;
        bytes += message.payload.len();
        group.push(record);
        expected = expected.saturating_add(1);
        if group.len() >= MAX_GROUP_RECORDS || bytes >= MAX_GROUP_BYTES {
            return Ok(Next::Group(group));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Placement, place};

    #[test]
    fn a_record_is_the_next_one_applied_already_or_past_a_gap() {
        assert_eq!(place(107, 107), Placement::Next);
        assert_eq!(place(1, 107), Placement::Applied);
        assert_eq!(place(106, 107), Placement::Applied);
        assert_eq!(place(108, 107), Placement::Gap);
    }
}
