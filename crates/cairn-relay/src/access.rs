//! Scope routing: who may read which stream. It fails closed: anything not
//! explicitly allowed is forbidden, and a store error is a refusal.

use std::collections::HashSet;

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

/// Every non-empty stream `reader` is sent in a hello, with its head: their
/// own, and those of the users they have added (granted) that are open to
/// them: the friends stream of one who granted them back, a direct stream
/// to them. A stranger who grants someone unilaterally, or wrote to them
/// before direct streams needed consent, is not pulled into their sync;
/// an explicit read of what `can_read` allows still works.
pub async fn readable_streams<S: Store>(
    store: &S,
    reader: UserId,
) -> Result<Vec<StreamHead>, cairn_store::ReadError> {
    let added: HashSet<UserId> = store
        .grants_by(reader)
        .await?
        .iter()
        .map(|grant| grant.body().grantee)
        .collect();
    let mut streams = store.streams_of(reader).await?;
    for granter in store.granters_of(reader).await? {
        if !added.contains(&granter) {
            continue;
        }
        let stream = StreamId::new(granter, Scope::Friends);
        let head = store.stream_head(stream).await?;
        if head > 0 {
            streams.push(StreamHead { stream, head });
        }
    }
    let direct = store.direct_streams_to(reader).await?;
    streams.extend(
        direct
            .into_iter()
            .filter(|head| head.stream.owner == reader || added.contains(&head.stream.owner)),
    );
    Ok(streams)
}
