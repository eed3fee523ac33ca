//! Reading and writing length-prefixed frames on QUIC streams.

use cairn_wire::frames::{FRAME_HEADER_LEN, frame_body_len};
use cairn_wire::{FrameError, limits::MAX_FRAME_LEN};
use quinn::{ReadExactError, RecvStream};

/// Reading a frame failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameReadError {
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame")]
    Truncated,
    /// The length prefix was over the limit.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The transport failed.
    #[error("stream read failed: {0}")]
    Read(#[from] quinn::ReadError),
}

/// Reads one frame body; `None` when the stream ended cleanly before one.
/// Memory grows with the bytes that actually arrive, never with what a
/// length prefix announces.
pub async fn read_frame(recv: &mut RecvStream) -> Result<Option<Vec<u8>>, FrameReadError> {
    let mut header = [0u8; FRAME_HEADER_LEN];
    match recv.read_exact(&mut header).await {
        Ok(()) => {}
        Err(ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(ReadExactError::FinishedEarly(_)) => return Err(FrameReadError::Truncated),
        Err(ReadExactError::ReadError(e)) => return Err(e.into()),
    }
    let len = frame_body_len(header)?;
    let mut body = Vec::with_capacity(len.min(64 * 1024));
    while body.len() < len {
        let chunk = recv.read_chunk(len - body.len(), true).await?;
        let chunk = chunk.ok_or(FrameReadError::Truncated)?;
        body.extend_from_slice(&chunk.bytes);
    }
    debug_assert!(body.len() <= MAX_FRAME_LEN);
    Ok(Some(body))
}
