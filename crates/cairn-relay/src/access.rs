//! Scope routing: who may read which stream. It fails closed: anything not
//! explicitly allowed is forbidden, and a store error is a refusal.

use cairn_store::{Store, StreamHead};
use cairn_wire::{Scope, StreamId, UserId};

/// Whether `reader` may read `stream`:
/// - every stream of their own (private, friends, direct they wrote);
/// - a direct stream addressed to them;
/// - the friends stream of a user who has granted them and not revoked.
pub async fn can_read<S: Store>(store: &S, reader: UserId, stream: StreamId) -> bool {
    if stream.owner == reader {
        return true;
    }
    match stream.scope {
        Scope::Private => false,
        Scope::Direct(recipient) => recipient == reader,
        Scope::Friends => match store.granters_of(reader).await {
            Ok(granters) => granters.contains(&stream.owner),
            Err(e) => {
                tracing::warn!(error = %e, "grant lookup failed; refusing the read");
                false
            }
        },
    }
}

/// Every non-empty stream `reader` may read, with its head: their own, the
/// friends streams of those who granted them, and direct streams to them.
pub async fn readable_streams<S: Store>(
    store: &S,
    reader: UserId,
) -> Result<Vec<StreamHead>, cairn_store::ReadError> {
    let mut streams = store.streams_of(reader).await?;
    for granter in store.granters_of(reader).await? {
        let stream = StreamId::new(granter, Scope::Friends);
        let head = store.stream_head(stream).await?;
        if head > 0 {
            streams.push(StreamHead { stream, head });
        }
    }
    streams.extend(store.direct_streams_to(reader).await?);
    Ok(streams)
}
