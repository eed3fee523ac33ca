//! Frames on the relay's side of a QUIC stream.

use std::time::Duration;

use bytes::Bytes;

use cairn_wire::frames::{FRAME_HEADER_LEN, frame_body_len};
use cairn_wire::{ErrorCode, FrameError, Response, WireError};
use quinn::{ReadExactError, RecvStream, SendStream};

/// Why no request frame could be read.
#[derive(Debug)]
pub enum ReadFailure {
    /// The stream ended before a whole frame, or the peer reset it.
    Gone,
    /// The peer took longer than the request timeout.
    TimedOut,
    /// The length prefix exceeds the limit: the peer misbehaved.
    TooLarge {
        /// The announced body length.
        len: usize,
        /// The most allowed here.
        limit: usize,
    },
}

impl ReadFailure {
    /// The refusal a too-large prefix gets.
    pub fn too_large_message(len: usize, limit: usize) -> String {
        format!("frame of {len} bytes exceeds the limit of {limit} here")
    }
}

/// Reads one request frame body of at most `max_len` bytes within
/// `timeout`. Memory grows with the bytes that arrive, never with what the
/// prefix announces.
pub async fn read_request(
    recv: &mut RecvStream,
    timeout: Duration,
    max_len: usize,
) -> Result<Vec<u8>, ReadFailure> {
    tokio::time::timeout(timeout, read_body(recv, max_len))
        .await
        .map_err(|_| ReadFailure::TimedOut)?
}

async fn read_body(recv: &mut RecvStream, max_len: usize) -> Result<Vec<u8>, ReadFailure> {
    let mut header = [0u8; FRAME_HEADER_LEN];
    recv.read_exact(&mut header)
        .await
        .map_err(|_: ReadExactError| ReadFailure::Gone)?;
    let len = match frame_body_len(header) {
        Ok(len) if len <= max_len => len,
        Ok(len) | Err(FrameError::TooLarge { len }) => {
            return Err(ReadFailure::TooLarge {
                len,
                limit: max_len,
            });
        }
        Err(_) => return Err(ReadFailure::Gone),
    };
    let mut body = Vec::with_capacity(len.min(64 * 1024));
    while body.len() < len {
        match recv.read_chunk(len - body.len(), true).await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk.bytes),
            Ok(None) | Err(_) => return Err(ReadFailure::Gone),
        }
    }
    Ok(body)
}

/// Writes one response frame; a peer that went away is not an error worth
/// more than a debug line. The frame is handed to QUIC as it is: a page of
/// a megabyte is not copied once more into the stream's buffer.
pub async fn write_response(send: &mut SendStream, response: &Response) -> bool {
    match send.write_chunk(Bytes::from(response.to_frame())).await {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(error = %e, "peer went away before the answer");
            false
        }
    }
}

/// Writes one frame given in parts (e.g. a header and entries encoded
/// once for many streams), without copying them; false if the peer went
/// away.
pub async fn write_parts(send: &mut SendStream, parts: &mut [Bytes]) -> bool {
    match send.write_all_chunks(parts).await {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(error = %e, "peer went away before the frame");
            false
        }
    }
}

/// Writes a final answer and finishes the stream.
pub async fn answer(send: &mut SendStream, response: &Response) {
    if write_response(send, response).await {
        let _ = send.finish();
    }
}

/// Answers with an error and finishes the stream.
pub async fn refuse(send: &mut SendStream, code: ErrorCode, message: &str) {
    answer(send, &Response::Error(WireError::new(code, message))).await;
}

/// Waits, briefly, until the peer has the stream's data, so that a closing
/// error frame is read before the connection closes under it.
pub async fn flush(send: &mut SendStream) {
    let _ = tokio::time::timeout(Duration::from_millis(500), send.stopped()).await;
}
