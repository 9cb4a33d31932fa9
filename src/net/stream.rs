//! A bidirectional QUIC stream that speaks frames: the unit both request
//! handlers (server side) and requests (client side) work with.

use std::future::Future;
use std::time::Duration;

use quinn::{
    Connection, ConnectionError, ReadError, ReadExactError, RecvStream, SendStream, VarInt,
    WriteError,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::time::timeout;

use super::NetError;
use crate::proto::{self, ProtoError, Validate, FRAME_HEADER_LEN};

/// One request stream: frames and raw bytes both ways, every read and write
/// bounded by a no-progress limit (see [`Watchdog`]). [`FramedStream::split`]
/// gives the two directions separately, for protocols where both sides send
/// at once.
pub struct FramedStream {
    sender: FrameSender,
    receiver: FrameReceiver,
}

/// The sending direction of a [`FramedStream`].
pub struct FrameSender {
    send: SendStream,
    peer: String,
    watchdog: Watchdog,
    finished: bool,
}

/// The receiving direction of a [`FramedStream`].
pub struct FrameReceiver {
    recv: RecvStream,
    peer: String,
    watchdog: Watchdog,
}

/// A stream operation's time limit, which follows the connection's progress
/// rather than the clock: an operation fails only after a whole limit in
/// which no stream of the connection moved.
///
/// Why not a timer per call: a call may wait for good reasons that have
/// nothing to do with this stream. A holder's second answer waits, its
/// stream window full, until the client has read the first one, which over
/// a lossy 50 ms link takes far longer than any fixed limit (a fixed 30 s
/// dropped slow holders: issue #14). Progress is stream data moving either
/// way, and the window updates (`MAX_DATA`, `MAX_STREAM_DATA`) that show the
/// peer reads what we send. (Stream data we send counts too: on a link
/// slower than 1/8 of a window per limit, window updates come too rarely to
/// show that the peer reads.) Keep-alives and acknowledgements are not
/// progress (a live peer that reads nothing is stuck, and gives us no
/// credit to send more); a dead connection ends at the QUIC idle timeout.
#[derive(Clone)]
struct Watchdog {
    conn: Connection,
    limit: Duration,
}

/// The limit is at least this many round trips, so that a few of QUIC's
/// backed-off loss probes on a long path fit in it.
const LIMIT_RTTS: u32 = 16;

impl Watchdog {
    /// The no-progress limit now: the configured one, or more on a long path.
    fn limit(&self) -> Duration {
        self.limit.max(self.conn.rtt() * LIMIT_RTTS)
    }

    /// Frames so far that show streams moving.
    fn progress(&self) -> u64 {
        let stats = self.conn.stats();
        let rx = stats.frame_rx;
        rx.stream + rx.max_stream_data + rx.max_data + stats.frame_tx.stream
    }

    /// Runs `op` until it completes, or fails it with [`NetError::Stalled`]
    /// once a whole limit passed without progress.
    async fn guard<F: Future>(&self, peer: &str, op: F) -> Result<F::Output, NetError> {
        tokio::pin!(op);
        let mut seen = self.progress();
        loop {
            let limit = self.limit();
            match timeout(limit, &mut op).await {
                Ok(out) => return Ok(out),
                Err(_) => {
                    let now = self.progress();
                    if now == seen {
                        return Err(NetError::Stalled {
                            peer: peer.to_owned(),
                            secs: limit.as_secs().max(1),
                        });
                    }
                    seen = now;
                }
            }
        }
    }
}

impl Drop for FrameSender {
    /// A stream dropped before [`FrameSender::finish`] (an error, a task
    /// aborted at shutdown) is reset, so the peer sees an error instead of
    /// an ordinary end of stream after a partial answer.
    fn drop(&mut self) {
        if !self.finished {
            let _ = self
                .send
                .reset(VarInt::from_u32(crate::proto::stream::SHUTDOWN));
        }
    }
}

impl FramedStream {
    /// A stream of `conn`, whose operations fail after `limit` without
    /// progress on the connection.
    pub(crate) fn new(
        (send, recv): (SendStream, RecvStream),
        conn: &Connection,
        peer: &str,
        limit: Duration,
    ) -> Self {
        let watchdog = Watchdog {
            conn: conn.clone(),
            limit,
        };
        FramedStream {
            sender: FrameSender {
                send,
                peer: peer.to_owned(),
                watchdog: watchdog.clone(),
                finished: false,
            },
            receiver: FrameReceiver {
                recv,
                peer: peer.to_owned(),
                watchdog,
            },
        }
    }

    /// Both directions, to send and receive concurrently.
    pub fn split(&mut self) -> (&mut FrameSender, &mut FrameReceiver) {
        (&mut self.sender, &mut self.receiver)
    }

    /// Reads the body of the next frame (see [`FrameReceiver::recv_body`]).
    pub async fn recv_body(&mut self) -> Result<Vec<u8>, NetError> {
        self.receiver.recv_body().await
    }

    /// Reads and decodes the next frame.
    pub async fn recv_frame<T: DeserializeOwned + Serialize + Validate>(
        &mut self,
    ) -> Result<T, NetError> {
        self.receiver.recv_frame().await
    }

    /// Reads and decodes the next frame, for as long as the connection lives
    /// (see [`FrameReceiver::recv_frame_after_work`]).
    pub async fn recv_frame_after_work<T: DeserializeOwned + Serialize + Validate>(
        &mut self,
    ) -> Result<T, NetError> {
        self.receiver.recv_frame_after_work().await
    }

    /// Encodes and sends one frame.
    pub async fn send_frame<T: Serialize + Validate>(
        &mut self,
        message: &T,
    ) -> Result<(), NetError> {
        self.sender.send_frame(message).await
    }

    /// Sends raw bytes (e.g. after a header frame announcing their length).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), NetError> {
        self.sender.send_raw(bytes).await
    }

    /// Sends raw bytes it takes ownership of, without copying them.
    pub async fn send_bytes(&mut self, bytes: bytes::Bytes) -> Result<(), NetError> {
        self.sender.send_bytes(bytes).await
    }

    /// Reads up to `max` raw bytes; `None` at the end of the stream.
    pub async fn recv_raw(&mut self, max: usize) -> Result<Option<quinn::Chunk>, NetError> {
        self.receiver.recv_raw(max).await
    }

    /// Fills `buf` with raw bytes (see [`FrameReceiver::recv_exact`]).
    pub async fn recv_exact(&mut self, buf: &mut [u8]) -> Result<(), NetError> {
        self.receiver.recv_exact(buf).await
    }

    /// Reads and discards up to `at_most` raw bytes (see
    /// [`FrameReceiver::skip_raw`]).
    pub async fn skip_raw(&mut self, at_most: u64) -> Result<(u64, bool), NetError> {
        self.receiver.skip_raw(at_most).await
    }

    /// Waits for the end of the peer's side; anything more is an error.
    pub async fn expect_end(&mut self) -> Result<(), NetError> {
        self.receiver.expect_end().await
    }

    /// [`FramedStream::expect_end`] for as long as the connection lives (see
    /// [`FrameReceiver::recv_frame_after_work`]).
    pub async fn expect_end_after_work(&mut self) -> Result<(), NetError> {
        self.receiver.expect_end_after_work().await
    }

    /// Ends our direction of the stream (the peer reads the end).
    pub fn finish(&mut self) {
        self.sender.finish();
    }

    /// Tells the peer we will not read the rest of what it sends.
    pub fn stop_reading(&mut self, code: u32) {
        let _ = self.receiver.recv.stop(VarInt::from_u32(code));
    }

    /// Aborts both directions with a stream error code (`proto::stream`).
    pub fn abort(&mut self, code: u32) {
        self.sender.finished = true;
        let _ = self.sender.send.reset(VarInt::from_u32(code));
        let _ = self.receiver.recv.stop(VarInt::from_u32(code));
    }

    /// The peer's name as this node knows it.
    pub fn peer(&self) -> &str {
        &self.sender.peer
    }

    /// The underlying QUIC streams, for handlers that need more control.
    pub fn parts(&mut self) -> (&mut SendStream, &mut RecvStream) {
        (&mut self.sender.send, &mut self.receiver.recv)
    }
}

impl FrameSender {
    /// Encodes and sends one frame.
    pub async fn send_frame<T: Serialize + Validate>(
        &mut self,
        message: &T,
    ) -> Result<(), NetError> {
        let frame = proto::encode_frame(message).map_err(|source| NetError::Protocol {
            peer: "this node".into(),
            source,
        })?;
        self.send_raw(&frame).await
    }

    /// Sends raw bytes, while the connection makes progress.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), NetError> {
        let write = self.send.write_all(bytes);
        let result = self.watchdog.guard(&self.peer, write).await?;
        result.map_err(|e| write_error(e, &self.peer))
    }

    /// Sends raw bytes it takes ownership of, without copying them.
    pub async fn send_bytes(&mut self, bytes: bytes::Bytes) -> Result<(), NetError> {
        let write = self.send.write_chunk(bytes);
        let result = self.watchdog.guard(&self.peer, write).await?;
        result.map_err(|e| write_error(e, &self.peer))
    }

    /// Ends this direction (the peer reads the end).
    pub fn finish(&mut self) {
        self.finished = true;
        let _ = self.send.finish();
    }
}

impl FrameReceiver {
    /// Reads the body of the next frame (at most `MAX_FRAME` bytes, checked
    /// before allocating).
    pub async fn recv_body(&mut self) -> Result<Vec<u8>, NetError> {
        let read = read_body(&mut self.recv);
        let result = self.watchdog.guard(&self.peer, read).await?;
        result.map_err(|e| e.into_net(&self.peer))
    }

    /// Reads and decodes the next frame.
    pub async fn recv_frame<T: DeserializeOwned + Serialize + Validate>(
        &mut self,
    ) -> Result<T, NetError> {
        let body = self.recv_body().await?;
        self.decode(&body)
    }

    /// Reads and decodes the next frame for as long as the connection lives,
    /// with no limit of its own: for an answer the peer must first work for
    /// (commit its tree, merge and apply what we sent), during which no
    /// stream moves. A dead peer or link still ends the wait, at the QUIC
    /// idle timeout (keep-alives are answered by the peer's QUIC stack while
    /// it works).
    pub async fn recv_frame_after_work<T: DeserializeOwned + Serialize + Validate>(
        &mut self,
    ) -> Result<T, NetError> {
        let body = read_body(&mut self.recv)
            .await
            .map_err(|e| e.into_net(&self.peer))?;
        self.decode(&body)
    }

    fn decode<T: DeserializeOwned + Serialize + Validate>(
        &self,
        body: &[u8],
    ) -> Result<T, NetError> {
        proto::decode_body(body).map_err(|source| NetError::Protocol {
            peer: self.peer.clone(),
            source,
        })
    }

    /// Reads up to `max` raw bytes; `None` at the end of the stream.
    pub async fn recv_raw(&mut self, max: usize) -> Result<Option<quinn::Chunk>, NetError> {
        let read = self.recv.read_chunk(max, true);
        let result = self.watchdog.guard(&self.peer, read).await?;
        result.map_err(|e| read_error(e, &self.peer))
    }

    /// Fills `buf` with raw bytes (one watchdog per call, not per
    /// packet-sized piece).
    pub async fn recv_exact(&mut self, buf: &mut [u8]) -> Result<(), NetError> {
        let read = read_exact(&mut self.recv, buf);
        let result = self.watchdog.guard(&self.peer, read).await?;
        result.map_err(|e| e.into_net(&self.peer))
    }

    /// Reads and discards up to `at_most` raw bytes (one watchdog per call,
    /// not per packet-sized chunk); returns the bytes read and whether the
    /// stream ended.
    pub async fn skip_raw(&mut self, at_most: u64) -> Result<(u64, bool), NetError> {
        let recv = &mut self.recv;
        let read = async {
            let mut got = 0u64;
            while got < at_most {
                match recv.read_chunk((at_most - got) as usize, true).await? {
                    Some(chunk) => got += chunk.bytes.len() as u64,
                    None => return Ok((got, true)),
                }
            }
            Ok::<_, ReadError>((got, false))
        };
        let result = self.watchdog.guard(&self.peer, read).await?;
        result.map_err(|e| read_error(e, &self.peer))
    }

    /// Waits for the end of the peer's side; anything more is an error.
    pub async fn expect_end(&mut self) -> Result<(), NetError> {
        let end = self.recv_raw(1).await?;
        self.end_of(end)
    }

    /// [`FrameReceiver::expect_end`] for as long as the connection lives (see
    /// [`FrameReceiver::recv_frame_after_work`]).
    pub async fn expect_end_after_work(&mut self) -> Result<(), NetError> {
        let end = self
            .recv
            .read_chunk(1, true)
            .await
            .map_err(|e| read_error(e, &self.peer))?;
        self.end_of(end)
    }

    fn end_of(&self, read: Option<quinn::Chunk>) -> Result<(), NetError> {
        match read {
            None => Ok(()),
            Some(_) => Err(NetError::Unexpected {
                peer: self.peer.clone(),
                what: "more data after the last frame".into(),
            }),
        }
    }
}

/// A failure to read one frame, before it is worded for a peer.
pub(crate) enum FrameReadError {
    Proto(ProtoError),
    Read(ReadError),
}

impl FrameReadError {
    pub(crate) fn into_net(self, peer: &str) -> NetError {
        match self {
            FrameReadError::Proto(source) => NetError::Protocol {
                peer: peer.to_owned(),
                source,
            },
            FrameReadError::Read(e) => read_error(e, peer),
        }
    }
}

pub(crate) async fn read_body(recv: &mut RecvStream) -> Result<Vec<u8>, FrameReadError> {
    let mut header = [0u8; FRAME_HEADER_LEN];
    read_exact(recv, &mut header).await?;
    let len = proto::frame_len(header).map_err(FrameReadError::Proto)?;
    let mut body = vec![0u8; len];
    read_exact(recv, &mut body).await?;
    Ok(body)
}

async fn read_exact(recv: &mut RecvStream, buf: &mut [u8]) -> Result<(), FrameReadError> {
    recv.read_exact(buf).await.map_err(|e| match e {
        ReadExactError::FinishedEarly(_) => FrameReadError::Proto(ProtoError::Truncated),
        ReadExactError::ReadError(e) => FrameReadError::Read(e),
    })
}

pub(crate) fn read_error(e: ReadError, peer: &str) -> NetError {
    match e {
        ReadError::Reset(code) => NetError::StreamReset {
            peer: peer.to_owned(),
            code: code.into_inner(),
        },
        ReadError::ConnectionLost(e) => connection_error(e, peer),
        other => NetError::Lost {
            peer: peer.to_owned(),
            reason: other.to_string(),
        },
    }
}

pub(crate) fn write_error(e: WriteError, peer: &str) -> NetError {
    match e {
        WriteError::Stopped(code) => NetError::StreamReset {
            peer: peer.to_owned(),
            code: code.into_inner(),
        },
        WriteError::ConnectionLost(e) => connection_error(e, peer),
        other => NetError::Lost {
            peer: peer.to_owned(),
            reason: other.to_string(),
        },
    }
}

/// True for a QUIC close caused by a TLS alert (transport error codes
/// 0x100-0x1ff): after our side accepted the peer's certificate, that means
/// the peer refused ours.
pub(crate) fn is_tls_refusal(e: &ConnectionError) -> bool {
    match e {
        ConnectionError::ConnectionClosed(close) => {
            let code = u64::from(close.error_code);
            (0x100..0x200).contains(&code)
        }
        ConnectionError::TransportError(t) => {
            let code = u64::from(t.code);
            (0x100..0x200).contains(&code)
        }
        _ => false,
    }
}

pub(crate) fn connection_error(e: ConnectionError, peer: &str) -> NetError {
    match e {
        ConnectionError::ApplicationClosed(close) => NetError::Closed {
            peer: peer.to_owned(),
            reason: if close.reason.is_empty() {
                format!("code {}", close.error_code)
            } else {
                String::from_utf8_lossy(&close.reason).into_owned()
            },
        },
        other => NetError::Lost {
            peer: peer.to_owned(),
            reason: other.to_string(),
        },
    }
}
