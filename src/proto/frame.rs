//! Length-prefixed framing: a 4-byte big-endian body length, then the
//! postcard encoding of exactly one message.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{ProtoError, Validate, MAX_FRAME};

/// Bytes of the length prefix.
pub const FRAME_HEADER_LEN: usize = 4;

/// The body length announced by a frame header, checked against [`MAX_FRAME`]
/// before anything is read or allocated.
pub fn frame_len(header: [u8; FRAME_HEADER_LEN]) -> Result<usize, ProtoError> {
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME {
        return Err(ProtoError::Oversized {
            len: len as u64,
            max: MAX_FRAME,
        });
    }
    Ok(len)
}

/// Encodes `message` as one frame (header and body), refusing messages that
/// break a limit: what we send must pass the peer's checks.
pub fn encode_frame<T: Serialize + Validate>(message: &T) -> Result<Vec<u8>, ProtoError> {
    message.validate()?;
    let mut out = postcard::to_extend(message, vec![0u8; FRAME_HEADER_LEN])
        .map_err(|e| ProtoError::Malformed(e.to_string()))?;
    let body = out.len() - FRAME_HEADER_LEN;
    if body > MAX_FRAME {
        return Err(ProtoError::Oversized {
            len: body as u64,
            max: MAX_FRAME,
        });
    }
    out[..FRAME_HEADER_LEN].copy_from_slice(&(body as u32).to_be_bytes());
    Ok(out)
}

/// Decodes one message from a complete frame body: every byte must belong to
/// the message, the message must respect its limits, and the encoding must be
/// canonical (postcard accepts over-long varints; we do not), so that every
/// message has exactly one encoding.
pub fn decode_body<T: DeserializeOwned + Serialize + Validate>(
    body: &[u8],
) -> Result<T, ProtoError> {
    if body.len() > MAX_FRAME {
        return Err(ProtoError::Oversized {
            len: body.len() as u64,
            max: MAX_FRAME,
        });
    }
    let (message, rest) =
        postcard::take_from_bytes::<T>(body).map_err(|e| ProtoError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(ProtoError::Trailing {
            trailing: rest.len(),
        });
    }
    message.validate()?;
    let canonical =
        postcard::to_stdvec(&message).map_err(|e| ProtoError::Malformed(e.to_string()))?;
    if canonical != body {
        return Err(ProtoError::Malformed("non-canonical encoding".into()));
    }
    Ok(message)
}

/// Decodes the first frame in `buf`: `Ok(None)` if `buf` does not hold a
/// whole frame yet, else the message and the number of bytes it took.
pub fn decode_frame<T: DeserializeOwned + Serialize + Validate>(
    buf: &[u8],
) -> Result<Option<(T, usize)>, ProtoError> {
    let Some(header) = buf.get(..FRAME_HEADER_LEN) else {
        return Ok(None);
    };
    let len = frame_len(header.try_into().expect("4 bytes"))?;
    let Some(body) = buf.get(FRAME_HEADER_LEN..FRAME_HEADER_LEN + len) else {
        return Ok(None);
    };
    Ok(Some((decode_body(body)?, FRAME_HEADER_LEN + len)))
}
