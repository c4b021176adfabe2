//! The WebSocket wire layer (RFC 6455) under the frame protocol, for both ends of a connection:
//! the relay's connections (`ws`) and the load generator's (`examples/loadgen.rs`).
//!
//! Reading: `fastwebsockets` parses each frame. It reads into a buffer's spare capacity without
//! zeroing it first, unmasks in place and hands the payload over without a copy. Fragments are
//! joined here, within a size limit.
//!
//! An idle connection holds no read buffer: the library's reader (8 KiB of buffer) is made when a
//! message's first bytes arrive and let go once its buffer holds nothing unread. Measured with
//! `loadgen idle` (10,000 connections, memory store, server profile): 11.3 KiB of relay memory per
//! idle connection before, 7.2 KiB after (6.7 KiB with the smaller queue slots of `ws::Outgoing`). The cost: a connection whose buffer drained reads the
//! next message's first bytes (at most 16) with one extra read.
//!
//! Writing: [`write_frames`] writes a burst of frames with vectored writes, each frame's header
//! (formatted by tungstenite's `FrameHeader`, which takes the length apart from the payload) followed
//! by its payload pieces where they lie.
//!
//! Why not tungstenite for the whole connection, as before: it copies each outgoing frame into its
//! write buffer, and moves the unsent rest of that buffer to its front after every partial write, and
//! it zeroes its read buffer before every read. At 64 KiB per message that was a fifth of the relay's
//! CPU time, and over a third of the load generator's.

use std::io::IoSlice;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use doorless_frames::ErrorCode;
use fastwebsockets::{OpCode, Payload, WebSocketError};
use futures_util::StreamExt as _;
use futures_util::stream::{self, BoxStream};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tungstenite::protocol::frame::FrameHeader;

pub use fastwebsockets::Role;

/// Longest frame header: 2 bytes, 8 of length, 4 of mask (a client's frames are masked).
const MAX_HEAD: usize = 14;

/// A whole message from the peer (fragments joined), or a control frame.
#[derive(Debug)]
pub enum Incoming {
    /// A binary message.
    Binary(BytesMut),
    /// A text message (the frame protocol has none).
    Text,
    /// A ping, with its payload (to be echoed in the pong).
    Ping(BytesMut),
    /// A pong.
    Pong,
    /// The peer's closing frame.
    Close,
}

/// The peer's messages, from a stream that owns the read in progress, so that a `select!` may drop
/// `next()` without losing a half-read frame. `Err` is the error to answer with; the stream ends
/// after it, and ends without an error when the peer has gone. Once ended it stays ended: polling it
/// again yields `None` (a connection's closing drain reads on after the end).
pub type Reader = BoxStream<'static, Result<Incoming, ErrorCode>>;

/// Bytes an idle connection reads by itself before it hands the connection back to the library
/// (which then allocates its read buffer); enough for any frame header.
const WAKE_BYTES: usize = 16;

/// The read half of a connection, shared by the reader's idle wait and the library's reader.
struct Source<R> {
    io: R,
    /// Bytes the idle wait read, not yet passed on to the library: `woken[at..len]`.
    woken: [u8; WAKE_BYTES],
    at: usize,
    len: usize,
    /// Bytes passed on to the library in all.
    passed: u64,
}

type SharedSource<R> = Arc<Mutex<Source<R>>>;

/// What the library reads from: the idle wait's bytes first, then the connection; it counts what
/// it passes on, so that the reader knows when the library's buffer holds nothing unread.
struct Feed<R>(SharedSource<R>);

fn lock<R>(source: &SharedSource<R>) -> std::sync::MutexGuard<'_, Source<R>> {
    // A poisoned lock means a read panicked half-way: the bytes are still consistent (the count is
    // updated after the copy), and the connection's own panic handling ends it anyway.
    source.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<R: AsyncRead + Unpin> AsyncRead for Feed<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let mut source = lock(&self.0);
        let source = &mut *source;
        let before = buf.filled().len();
        if source.at < source.len {
            let n = (source.len - source.at).min(buf.remaining());
            buf.put_slice(&source.woken[source.at..source.at + n]);
            source.at += n;
        } else {
            ready!(Pin::new(&mut source.io).poll_read(cx, buf))?;
        }
        source.passed += (buf.filled().len() - before) as u64;
        Poll::Ready(Ok(()))
    }
}

/// Waits, holding no buffer, until the connection has bytes to read; reads up to [`WAKE_BYTES`] of
/// them. `Ok(false)` at the end of the stream.
async fn wake<R: AsyncRead + Unpin>(source: &SharedSource<R>) -> std::io::Result<bool> {
    std::future::poll_fn(|cx| {
        let mut source = lock(source);
        let source = &mut *source;
        let mut buf = ReadBuf::new(&mut source.woken);
        ready!(Pin::new(&mut source.io).poll_read(cx, &mut buf))?;
        let n = buf.filled().len();
        source.at = 0;
        source.len = n;
        Poll::Ready(Ok(n > 0))
    })
    .await
}

/// Reads the peer's messages from the read half of a connection, refusing any above `limit` bytes:
/// a single frame from its header alone, before its payload is read; fragments once they add up to
/// more. `role` is this end's: a server refuses a frame its client did not mask, and a client one
/// its server did (RFC 6455 section 5.1), with `Malformed`.
///
/// An idle connection holds no read buffer: the library's reader (and its 8 KiB buffer) exists
/// only from the first bytes of a message until its buffer holds nothing unread again, which the
/// reader knows by comparing the bytes passed to the library with the frames it returned. A
/// connection with a backlog keeps its reader from one message to the next.
pub fn reader<R>(io: R, limit: usize, role: Role) -> Reader
where
    R: AsyncRead + Unpin + Send + 'static,
{
    let source = Arc::new(Mutex::new(Source { io, woken: [0; WAKE_BYTES], at: 0, len: 0, passed: 0 }));
    let state = Some(ReadState { source, ws: None, taken: 0, fragments: Fragments::default() });
    stream::unfold(state, move |state| async move {
        let mut state = state?;
        loop {
            let ws = match &mut state.ws {
                Some(ws) => ws,
                None => match wake(&state.source).await {
                    Ok(true) => state.ws.insert(library_reader(&state.source, limit, role)),
                    Ok(false) | Err(_) => return None,
                },
            };
            let frame =
                ws.read_frame(&mut |_| std::future::ready(Ok::<(), std::convert::Infallible>(()))).await;
            let mut frame = match frame {
                Ok(frame) => frame,
                Err(WebSocketError::UnexpectedEOF | WebSocketError::IoError(_)) => return None,
                Err(WebSocketError::FrameTooLarge) => return Some((Err(ErrorCode::FrameTooLarge), None)),
                Err(_) => return Some((Err(ErrorCode::Malformed), None)),
            };
            // The library keeps the masking key to itself (also after unmasking a server's frame);
            // its header formatter shows whether there is one, as the mask bit of the second byte.
            let mut head = [0; MAX_HEAD];
            let head_len = frame.fmt_head(&mut head);
            if (head[1] & 0x80 != 0) != role_expects_mask(role) {
                return Some((Err(ErrorCode::Malformed), None));
            }
            // The header as formatted is the shortest form: a peer that sent a longer one leaves the
            // count above what was taken, and its connection simply keeps its buffer.
            state.taken += (head_len + frame.payload.len()) as u64;
            let (fin, opcode) = (frame.fin, frame.opcode);
            let payload = match frame.payload {
                Payload::Bytes(bytes) => bytes,
                other => BytesMut::from(&other[..]),
            };
            if lock(&state.source).passed == state.taken {
                // Nothing unread in the library's buffer: let it go until the next message.
                state.ws = None;
            }
            match state.fragments.push(fin, opcode, payload, limit) {
                Ok(Some(incoming)) => return Some((Ok(incoming), Some(state))),
                Ok(None) => continue,
                Err(code) => return Some((Err(code), None)),
            }
        }
    })
    .fuse()
    .boxed()
}

/// Whether frames from the peer must be masked: a client's must, a server's must not (RFC 6455
/// section 5.1).
fn role_expects_mask(role: Role) -> bool {
    role == Role::Server
}

/// The reader's state between messages.
struct ReadState<R> {
    source: SharedSource<R>,
    /// The library's reader, while a message is being read or bytes wait in its buffer.
    ws: Option<fastwebsockets::WebSocketRead<Feed<R>>>,
    /// Bytes of the frames the library returned, in all.
    taken: u64,
    fragments: Fragments,
}

/// The library's reader over `source`, configured for this end of the connection.
fn library_reader<R: AsyncRead + Unpin>(
    source: &SharedSource<R>,
    limit: usize,
    role: Role,
) -> fastwebsockets::WebSocketRead<Feed<R>> {
    // The write half the library asks for is never used: with automatic pongs and closes off, the
    // reader has nothing to send; its owner answers pings and closes itself.
    let (mut ws, _) = fastwebsockets::after_handshake_split(Feed(source.clone()), tokio::io::sink(), role);
    ws.set_auto_pong(false);
    ws.set_auto_close(false);
    ws.set_max_message_size(limit);
    ws
}

/// A message arriving in fragments (RFC 6455 section 5.4), joined up to the size limit.
#[derive(Default)]
struct Fragments {
    /// The first fragment's opcode, and what has arrived so far.
    partial: Option<(OpCode, BytesMut)>,
}

impl Fragments {
    /// Takes one frame; yields a message once it is whole. Control frames may arrive between
    /// fragments and pass straight through.
    fn push(
        &mut self,
        fin: bool,
        opcode: OpCode,
        payload: BytesMut,
        limit: usize,
    ) -> Result<Option<Incoming>, ErrorCode> {
        let (opcode, message) = match opcode {
            OpCode::Ping => return Ok(Some(Incoming::Ping(payload))),
            OpCode::Pong => return Ok(Some(Incoming::Pong)),
            OpCode::Close => return Ok(Some(Incoming::Close)),
            OpCode::Binary | OpCode::Text if self.partial.is_some() => return Err(ErrorCode::Malformed),
            OpCode::Binary | OpCode::Text if !fin => {
                self.partial = Some((opcode, payload));
                return Ok(None);
            }
            OpCode::Binary | OpCode::Text => (opcode, payload),
            OpCode::Continuation => {
                let Some((first, mut joined)) = self.partial.take() else {
                    return Err(ErrorCode::Malformed);
                };
                if joined.len().saturating_add(payload.len()) > limit {
                    return Err(ErrorCode::FrameTooLarge);
                }
                joined.extend_from_slice(&payload);
                if !fin {
                    self.partial = Some((first, joined));
                    return Ok(None);
                }
                (first, joined)
            }
        };
        Ok(Some(match opcode {
            OpCode::Binary => Incoming::Binary(message),
            _ => Incoming::Text,
        }))
    }
}

/// One frame to write: its header (opcode, and the mask the payload was masked with, if any), and
/// its payload as up to two pieces sent one after the other.
pub type OutFrame<'a> = (FrameHeader, [&'a [u8]; 2]);

/// Writes `frames` with vectored writes: each frame's header, then its payload pieces where they
/// lie; nothing is copied. Returns once all is written.
pub async fn write_frames<W: AsyncWrite + Unpin>(io: &mut W, frames: &[OutFrame<'_>]) -> std::io::Result<()> {
    let mut heads = Vec::with_capacity(frames.len());
    for (header, [first, second]) in frames {
        let len = (first.len() + second.len()) as u64;
        let mut head = [0; MAX_HEAD];
        let mut out = &mut head[..];
        header.format(len, &mut out).map_err(std::io::Error::other)?;
        let written = MAX_HEAD - out.len();
        heads.push((head, written));
    }
    let mut slices = Vec::with_capacity(3 * frames.len());
    for ((_, pieces), (head, len)) in frames.iter().zip(&heads) {
        slices.push(IoSlice::new(&head[..*len]));
        slices.extend(pieces.iter().filter(|piece| !piece.is_empty()).map(|piece| IoSlice::new(piece)));
    }
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        let written = io.write_vectored(rest).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut rest, written);
    }
    io.flush().await
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tungstenite::protocol::frame::coding::{Control, Data, OpCode as WsOpCode};

    use super::*;

    /// A socket that takes at most `step` bytes per write, so that every slice boundary is crossed
    /// part-way at some point.
    struct Trickle {
        written: Vec<u8>,
        step: usize,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            let n = buf.len().min(self.step);
            self.written.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<std::io::Result<usize>> {
            let mut left = self.step;
            for buf in bufs {
                let n = buf.len().min(left);
                self.written.extend_from_slice(&buf[..n]);
                left -= n;
                if left == 0 {
                    break;
                }
            }
            Poll::Ready(Ok(self.step - left))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn header(opcode: WsOpCode, mask: Option<[u8; 4]>) -> FrameHeader {
        FrameHeader { opcode, mask, ..FrameHeader::default() }
    }

    #[tokio::test]
    async fn frames_survive_partial_vectored_writes() {
        let binary = WsOpCode::Data(Data::Binary);
        // Payload lengths on both sides of each header-size boundary (125/126, 65535/65536).
        let sizes = [0, 1, 125, 126, 1024, 65_535, 65_536, 70_000];
        let payloads: Vec<Vec<u8>> =
            sizes.iter().map(|&n| (0..n).map(|i| (i * 7 % 256) as u8).collect()).collect();
        let split = vec![8; 65_536 - 42];
        let mut frames: Vec<OutFrame<'_>> =
            payloads.iter().map(|p| (header(binary, None), [&p[..], &[]])).collect();
        frames.push((header(binary, None), [&[9; 42], &split]));
        frames.push((header(binary, None), [&[7; 42], &[]]));
        frames.push((header(WsOpCode::Control(Control::Ping), None), [&[], &[]]));
        frames.push((header(WsOpCode::Control(Control::Pong), None), [b"pong", &[]]));
        frames.push((header(WsOpCode::Control(Control::Close), None), [&[], &[]]));
        for step in [1, 3, 1000, usize::MAX] {
            let mut socket = Trickle { written: Vec::new(), step };
            write_frames(&mut socket, &frames).await.unwrap();
            // Read back as the client would.
            let mut reader = reader(std::io::Cursor::new(socket.written), usize::MAX, Role::Client);
            for (header, pieces) in &frames {
                let message = reader.next().await.unwrap().unwrap();
                let expected = pieces.concat();
                match (header.opcode, message) {
                    (WsOpCode::Data(Data::Binary), Incoming::Binary(got)) => {
                        assert_eq!(got[..], expected[..])
                    }
                    (WsOpCode::Control(Control::Ping), Incoming::Ping(got)) => {
                        assert_eq!(got[..], expected[..])
                    }
                    (WsOpCode::Control(Control::Pong), Incoming::Pong) => assert_eq!(expected, b"pong"),
                    (WsOpCode::Control(Control::Close), Incoming::Close) => {}
                    (opcode, message) => panic!("step {step}: sent {opcode:?}, read {message:?}"),
                }
            }
            assert!(reader.next().await.is_none(), "step {step}: nothing after the frames");
            assert!(reader.next().await.is_none(), "step {step}: still nothing when asked again");
        }
    }

    #[tokio::test]
    async fn masked_frames_are_read_unmasked() {
        let mask = [0x12, 0x34, 0x56, 0x78];
        let plain: Vec<u8> = (0..3000u32).map(|i| (i % 253) as u8).collect();
        let mut masked = plain.clone();
        fastwebsockets::unmask(&mut masked, mask);
        let frames = [(header(WsOpCode::Data(Data::Binary), Some(mask)), [&masked[..], &[]])];
        let mut socket = Trickle { written: Vec::new(), step: 100 };
        write_frames(&mut socket, &frames).await.unwrap();
        let mut reader = reader(std::io::Cursor::new(socket.written), usize::MAX, Role::Server);
        match reader.next().await {
            Some(Ok(Incoming::Binary(got))) => assert_eq!(got[..], plain[..]),
            other => panic!("expected the message, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn frames_masked_the_wrong_way_are_refused() {
        let payload = b"\x01\x00".to_vec();
        let frame = |mask| [(header(WsOpCode::Data(Data::Binary), mask), [&payload[..], &[]])];
        for (mask, role) in [(None, Role::Server), (Some([1, 2, 3, 4]), Role::Client)] {
            let mut socket = Trickle { written: Vec::new(), step: usize::MAX };
            write_frames(&mut socket, &frame(mask)).await.unwrap();
            let mut reader = reader(std::io::Cursor::new(socket.written), 1000, role);
            assert!(matches!(reader.next().await, Some(Err(ErrorCode::Malformed))), "mask {mask:?}");
            assert!(reader.next().await.is_none());
        }
    }

    #[tokio::test]
    async fn a_frame_over_the_limit_is_refused_from_its_header() {
        let payload = vec![0; 2000];
        let frames = [(header(WsOpCode::Data(Data::Binary), None), [&payload[..], &[]])];
        let mut socket = Trickle { written: Vec::new(), step: usize::MAX };
        write_frames(&mut socket, &frames).await.unwrap();
        // Only the header arrives: the refusal does not wait for the payload.
        socket.written.truncate(4);
        let mut reader = reader(std::io::Cursor::new(socket.written), 1000, Role::Client);
        assert!(matches!(reader.next().await, Some(Err(ErrorCode::FrameTooLarge))));
        // Ended for good: asked again (as a closing connection does), still nothing, no panic.
        assert!(reader.next().await.is_none());
        assert!(reader.next().await.is_none());
    }

    /// A connection that delivers `chunks` one per read (each as far as the reader's buffer
    /// allows), then ends; it records how much room each read offered.
    struct Script {
        chunks: std::collections::VecDeque<Vec<u8>>,
        offered: Arc<Mutex<Vec<usize>>>,
    }

    impl AsyncRead for Script {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            self.offered.lock().unwrap().push(buf.remaining());
            if let Some(chunk) = self.chunks.front_mut() {
                let n = chunk.len().min(buf.remaining());
                buf.put_slice(&chunk[..n]);
                chunk.drain(..n);
                if chunk.is_empty() {
                    self.chunks.pop_front();
                }
            }
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn an_idle_connection_holds_no_read_buffer_and_a_backlog_keeps_it() {
        let mask = [9, 8, 7, 6];
        let frame = |len: usize, fill: u8| {
            let mut masked = vec![fill; len];
            fastwebsockets::unmask(&mut masked, mask);
            masked
        };
        let mut wire = Vec::new();
        for (len, fill) in [(3000, 1), (1000, 2), (20, 3)] {
            let payload = frame(len, fill);
            let mut socket = Trickle { written: Vec::new(), step: usize::MAX };
            write_frames(
                &mut socket,
                &[(header(WsOpCode::Data(Data::Binary), Some(mask)), [&payload[..], &[]])],
            )
            .await
            .unwrap();
            wire.push(socket.written);
        }
        // The first message alone; then the second and third in one piece (a backlog).
        let backlog = [wire[1].clone(), wire[2].clone()].concat();
        let offered = Arc::new(Mutex::new(Vec::new()));
        let script = Script { chunks: [wire[0].clone(), backlog].into(), offered: offered.clone() };
        let mut reader = reader(script, usize::MAX, Role::Server);
        let mut got = Vec::new();
        while let Some(Ok(Incoming::Binary(message))) = reader.next().await {
            got.push((message.len(), message[0]));
        }
        assert_eq!(got, [(3000, 1), (1000, 2), (20, 3)]);
        let offered = offered.lock().unwrap().clone();
        let idle: Vec<bool> = offered.iter().map(|room| *room == WAKE_BYTES).collect();
        // Idle wait, the library reads the rest of message 1; idle wait again (its buffer let go),
        // the library reads the backlog and returns messages 2 and 3 without reading; idle wait, end.
        assert_eq!(idle, [true, false, true, false, true], "room offered per read: {offered:?}");
        assert!(offered.iter().filter(|room| **room != WAKE_BYTES).all(|room| *room >= 4096), "{offered:?}");
    }

    #[test]
    fn fragments_join_and_refuse() {
        let mut fragments = Fragments::default();
        let part = |bytes: &[u8]| BytesMut::from(bytes);
        assert!(matches!(fragments.push(false, OpCode::Binary, part(b"ab"), 10), Ok(None)));
        // A control frame between fragments passes through.
        assert!(matches!(fragments.push(true, OpCode::Pong, part(b""), 10), Ok(Some(Incoming::Pong))));
        assert!(matches!(fragments.push(false, OpCode::Continuation, part(b"cd"), 10), Ok(None)));
        match fragments.push(true, OpCode::Continuation, part(b"ef"), 10) {
            Ok(Some(Incoming::Binary(joined))) => assert_eq!(&joined[..], b"abcdef"),
            other => panic!("expected the joined message, got {other:?}"),
        }
        // Over the limit, counted over all fragments.
        assert!(matches!(fragments.push(false, OpCode::Binary, part(b"123456"), 10), Ok(None)));
        assert!(matches!(
            fragments.push(true, OpCode::Continuation, part(b"78901"), 10),
            Err(ErrorCode::FrameTooLarge)
        ));
        // Nothing to continue; a new message before the last ended.
        let mut fragments = Fragments::default();
        assert!(matches!(
            fragments.push(true, OpCode::Continuation, part(b"x"), 10),
            Err(ErrorCode::Malformed)
        ));
        assert!(matches!(fragments.push(false, OpCode::Text, part(b"x"), 10), Ok(None)));
        assert!(matches!(fragments.push(true, OpCode::Binary, part(b"y"), 10), Err(ErrorCode::Malformed)));
        // A fragmented text message is still text.
        let mut fragments = Fragments::default();
        assert!(matches!(fragments.push(false, OpCode::Text, part(b"x"), 10), Ok(None)));
        assert!(matches!(
            fragments.push(true, OpCode::Continuation, part(b"y"), 10),
            Ok(Some(Incoming::Text))
        ));
    }
}
