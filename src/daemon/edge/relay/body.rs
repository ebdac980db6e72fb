//! Message bodies as they pass through the relay: bytes are forwarded as they arrive, in
//! their own framing (a chunked body stays chunked), and only tracked far enough to know
//! where the message ends, so a kept-alive connection can carry the next one.

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::daemon::edge::compress::{Coding, Encoder};

/// Bytes a read asks for at least.
const READ_CHUNK: usize = 16 * 1024;
/// Below this, body bytes already read go out in the same write as the head.
const COALESCE_BELOW: usize = 16 * 1024;

/// How a message says where its body ends (RFC 9112, section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (a GET without one, a response to HEAD, 204, 304).
    Empty,
    /// `Content-Length`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// A response that ends when the connection does.
    UntilClose,
}

/// Where a body stands: how much more belongs to it.
#[derive(Debug)]
pub struct Tracker {
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Length(u64),
    UntilClose,
    Chunk(Chunk),
    Done,
}

/// The chunked-coding grammar, one byte (or one run of data) at a time. Every line ends
/// in CRLF (RFC 9112 7.1): bytes pass through as they came, so a bare LF or CR that this
/// relay read one way and the app another would let a client hide a second request in a
/// body ("funky chunks" smuggling). It is refused, as hyper refuses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Size { size: u64, digits: bool },
    Extension { size: u64 },
    SizeLf { size: u64 },
    Data(u64),
    DataCr,
    DataLf,
    TrailerLineStart,
    TrailerLine,
    TrailerLf,
    EndLf,
}

impl Chunk {
    /// Whether a byte read in this state is one of the trailer section's.
    fn in_trailers(self) -> bool {
        matches!(
            self,
            Chunk::TrailerLineStart | Chunk::TrailerLine | Chunk::TrailerLf
        )
    }
}

/// A chunked body that breaks the grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed chunked body")]
pub struct Malformed;

impl Tracker {
    /// A tracker for a body framed as `framing`.
    pub fn new(framing: Framing) -> Self {
        let state = match framing {
            Framing::Empty | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Chunk(Chunk::Size {
                size: 0,
                digits: false,
            }),
            Framing::UntilClose => State::UntilClose,
        };
        Tracker { state }
    }

    /// Whether the body has ended.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Whether the body ends only when its connection closes.
    pub fn until_close(&self) -> bool {
        self.state == State::UntilClose
    }

    /// How many of `bytes` (which follow what was seen before) belong to the body.
    pub fn advance(&mut self, bytes: &[u8]) -> Result<usize, Malformed> {
        self.advance_with(bytes, |_| {})
    }

    /// As [`Tracker::advance`], giving `payload` each run of the body's own bytes (a
    /// chunked body's data, without its framing).
    pub fn advance_with(
        &mut self,
        bytes: &[u8],
        payload: impl FnMut(&[u8]),
    ) -> Result<usize, Malformed> {
        self.advance_parts(bytes, payload, |_| {})
    }

    /// As [`Tracker::advance_with`], also giving `trailer` each byte of a chunked body's
    /// trailer fields: their lines, CRLFs included, without the empty line that ends them.
    pub fn advance_parts(
        &mut self,
        bytes: &[u8],
        mut payload: impl FnMut(&[u8]),
        mut trailer: impl FnMut(u8),
    ) -> Result<usize, Malformed> {
        let mut at = 0;
        while at < bytes.len() {
            match &mut self.state {
                State::Done => break,
                State::UntilClose => {
                    payload(&bytes[at..]);
                    return Ok(bytes.len());
                }
                State::Length(left) => {
                    let take = usize::try_from(*left)
                        .map_or(bytes.len() - at, |left| left.min(bytes.len() - at));
                    payload(&bytes[at..at + take]);
                    *left -= take as u64;
                    at += take;
                    if *left == 0 {
                        self.state = State::Done;
                    }
                }
                State::Chunk(Chunk::Data(left)) => {
                    let take = usize::try_from(*left)
                        .map_or(bytes.len() - at, |left| left.min(bytes.len() - at));
                    payload(&bytes[at..at + take]);
                    *left -= take as u64;
                    at += take;
                    if *left == 0 {
                        self.state = State::Chunk(Chunk::DataCr);
                    }
                }
                State::Chunk(chunk) => {
                    let next = step(*chunk, bytes[at])?;
                    if chunk.in_trailers() && next != State::Chunk(Chunk::EndLf) {
                        trailer(bytes[at]);
                    }
                    self.state = next;
                    at += 1;
                }
            }
        }
        Ok(at)
    }
}

/// The chunked grammar's next state after one byte outside chunk data.
fn step(chunk: Chunk, byte: u8) -> Result<State, Malformed> {
    let after_size = |size: u64| {
        State::Chunk(if size == 0 {
            Chunk::TrailerLineStart
        } else {
            Chunk::Data(size)
        })
    };
    let next = match (chunk, byte) {
        (Chunk::Size { size, .. }, b) if b.is_ascii_hexdigit() => {
            let digit = u64::from(char::from(b).to_digit(16).ok_or(Malformed)?);
            let size = size
                .checked_mul(16)
                .and_then(|s| s.checked_add(digit))
                .ok_or(Malformed)?;
            State::Chunk(Chunk::Size { size, digits: true })
        }
        (Chunk::Size { size, digits: true }, b';' | b' ' | b'\t') => {
            State::Chunk(Chunk::Extension { size })
        }
        (Chunk::Size { size, digits: true } | Chunk::Extension { size }, b'\r') => {
            State::Chunk(Chunk::SizeLf { size })
        }
        (Chunk::SizeLf { size }, b'\n') => after_size(size),
        // Any other byte of an extension (a bare LF is none: it would end the line for a
        // lenient reader).
        (Chunk::Extension { size }, b) if b != b'\n' => State::Chunk(Chunk::Extension { size }),
        (Chunk::DataCr, b'\r') => State::Chunk(Chunk::DataLf),
        (Chunk::DataLf, b'\n') => State::Chunk(Chunk::Size {
            size: 0,
            digits: false,
        }),
        (Chunk::TrailerLineStart, b'\r') => State::Chunk(Chunk::EndLf),
        (Chunk::EndLf, b'\n') => State::Done,
        (Chunk::TrailerLine, b'\r') => State::Chunk(Chunk::TrailerLf),
        (Chunk::TrailerLf, b'\n') => State::Chunk(Chunk::TrailerLineStart),
        (Chunk::TrailerLineStart | Chunk::TrailerLine, b) if b != b'\n' => {
            State::Chunk(Chunk::TrailerLine)
        }
        _ => return Err(Malformed),
    };
    Ok(next)
}

/// Which side of a relayed message failed.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The body broke its framing before any byte of the message was sent: its sender
    /// can still be given an error answer.
    #[error("{0}")]
    Unsent(Malformed),
    /// Reading the message from where it comes failed, or it ended early.
    #[error("reading: {0}")]
    Read(std::io::Error),
    /// Writing it to where it goes failed.
    #[error("writing: {0}")]
    Write(std::io::Error),
}

impl RelayError {
    /// A body that broke its framing after some of its message was sent.
    fn malformed(e: Malformed) -> Self {
        RelayError::Read(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }
}

/// One side of a connection being read: the stream and what was read but not used yet.
pub struct Source<'a, R> {
    /// The stream.
    pub stream: &'a mut R,
    /// Bytes read from it and not consumed.
    pub buf: &'a mut BytesMut,
}

/// Reads more from `stream` into `buf`; `Ok(0)` at the end of the stream.
pub async fn fill<R: AsyncRead + Unpin>(
    stream: &mut R,
    buf: &mut BytesMut,
) -> std::io::Result<usize> {
    if buf.capacity() - buf.len() < READ_CHUNK / 2 {
        buf.reserve(READ_CHUNK);
    }
    stream.read_buf(buf).await
}

/// Sends `head` and then the body framed as `framing`, read from `src`, to `dst`.
/// Body bytes already in the source's buffer go out with the head when they are few.
/// Stops at the end of the body, leaving what follows it in the buffer.
pub async fn relay<R, W>(
    mut head: Vec<u8>,
    framing: Framing,
    src: Source<'_, R>,
    dst: &mut W,
) -> Result<(), RelayError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let Source { stream, buf } = src;
    let mut tracker = Tracker::new(framing);
    let take = tracker.advance(buf).map_err(RelayError::Unsent)?;
    if take < COALESCE_BELOW || tracker.is_done() {
        head.extend_from_slice(&buf[..take]);
        dst.write_all(&head).await.map_err(RelayError::Write)?;
    } else {
        dst.write_all(&head).await.map_err(RelayError::Write)?;
        dst.write_all(&buf[..take])
            .await
            .map_err(RelayError::Write)?;
    }
    buf.advance(take);
    while !tracker.is_done() && read_more(stream, buf, &tracker).await? {
        let take = tracker.advance(buf).map_err(RelayError::malformed)?;
        dst.write_all(&buf[..take])
            .await
            .map_err(RelayError::Write)?;
        buf.advance(take);
    }
    Ok(())
}

/// As [`relay`], the body compressed with `coding` on its way and sent chunked (`head`
/// says so): each read's worth is compressed and flushed, so a body streamed in parts
/// still arrives part by part. A chunked body's trailers follow the coding's end (those
/// over [`MAX_HEAD`](super::MAX_HEAD) in all are dropped: they are held until then).
pub async fn relay_compressed<R, W>(
    head: Vec<u8>,
    framing: Framing,
    src: Source<'_, R>,
    dst: &mut W,
    coding: Coding,
) -> Result<(), RelayError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let Source { stream, buf } = src;
    let mut tracker = Tracker::new(framing);
    let mut encoder = Encoder::new(coding).map_err(RelayError::Write)?;
    let mut payload = Vec::new();
    let mut trailers = Vec::new();
    let mut too_many_trailers = false;
    let mut out = head;
    let mut sent_head = false;
    loop {
        let take = tracker
            .advance_parts(
                buf,
                |data| payload.extend_from_slice(data),
                |byte| trailers.push(byte),
            )
            .map_err(|e| match sent_head {
                false => RelayError::Unsent(e),
                true => RelayError::malformed(e),
            })?;
        buf.advance(take);
        if trailers.len() > super::MAX_HEAD {
            trailers = Vec::new();
            too_many_trailers = true;
        }
        if !payload.is_empty() {
            let piece = encoder.piece(&payload).map_err(RelayError::Write)?;
            payload.clear();
            chunk(&mut out, &piece);
        }
        if tracker.is_done() {
            break;
        }
        if !out.is_empty() {
            dst.write_all(&out).await.map_err(RelayError::Write)?;
            out.clear();
            sent_head = true;
        }
        if !read_more(stream, buf, &tracker).await? {
            break;
        }
    }
    if framing != Framing::Empty {
        let end = encoder.finish().map_err(RelayError::Write)?;
        chunk(&mut out, &end);
        out.extend_from_slice(b"0\r\n");
        if !too_many_trailers {
            out.extend_from_slice(&trailers);
        }
        out.extend_from_slice(b"\r\n");
    }
    dst.write_all(&out).await.map_err(RelayError::Write)
}

/// Reads more of a body into `buf`: `Ok(false)` when its stream ended where the body may
/// (one that runs until the connection closes), an error when it ended before the body.
async fn read_more<R: AsyncRead + Unpin>(
    stream: &mut R,
    buf: &mut BytesMut,
    tracker: &Tracker,
) -> Result<bool, RelayError> {
    match fill(stream, buf).await.map_err(RelayError::Read)? {
        0 if tracker.until_close() => Ok(false),
        0 => Err(RelayError::Read(std::io::ErrorKind::UnexpectedEof.into())),
        _ => Ok(true),
    }
}

/// `data` as one chunk of a chunked body (nothing when it is empty: an empty chunk
/// would end the body).
fn chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(framing: Framing, parts: &[&[u8]]) -> Result<(usize, bool), Malformed> {
        let mut tracker = Tracker::new(framing);
        let mut taken = 0;
        for part in parts {
            taken += tracker.advance(part)?;
            if tracker.is_done() {
                break;
            }
        }
        Ok((taken, tracker.is_done()))
    }

    #[test]
    fn a_length_body_ends_after_its_bytes_and_leaves_the_rest() {
        assert_eq!(
            feed(Framing::Length(5), &[b"hel", b"loGET /"]),
            Ok((5, true))
        );
        assert_eq!(feed(Framing::Length(5), &[b"hel"]), Ok((3, false)));
        assert_eq!(feed(Framing::Empty, &[b"GET /"]), Ok((0, true)));
    }

    #[test]
    fn a_chunked_body_ends_after_its_last_chunk_and_trailers() {
        let body: &[u8] = b"5\r\nhello\r\n1a;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\nNEXT";
        assert_eq!(feed(Framing::Chunked, &[body]), Ok((body.len() - 4, true)));
        // The same, a byte at a time.
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(feed(Framing::Chunked, &bytes), Ok((body.len() - 4, true)));
        let trailers: &[u8] = b"0\r\nx-checksum: 1\r\n\r\n";
        assert_eq!(
            feed(Framing::Chunked, &[trailers]),
            Ok((trailers.len(), true))
        );
        assert_eq!(feed(Framing::Chunked, &[b"5\r\nhel"]), Ok((6, false)));
    }

    #[test]
    fn a_broken_chunked_body_is_refused() {
        assert_eq!(feed(Framing::Chunked, &[b"zz\r\n"]), Err(Malformed));
        assert_eq!(feed(Framing::Chunked, &[b"\r\n"]), Err(Malformed));
        assert_eq!(feed(Framing::Chunked, &[b"2\r\nabX"]), Err(Malformed));
        assert_eq!(
            feed(Framing::Chunked, &[b"ffffffffffffffffff\r\n"]),
            Err(Malformed)
        );
    }

    #[test]
    fn a_chunked_line_not_ended_by_crlf_is_refused() {
        for body in [
            &b"4\nabcd\r\n0\r\n\r\n"[..],
            b"4;ext\nabcd\r\n0\r\n\r\n",
            b"4\r\nabcd\n0\r\n\r\n",
            b"4\r\nabcd\rX0\r\n\r\n",
            b"0\n\n",
            b"0\r\n\n",
            b"0\r\nx-t: 1\n\r\n",
            b"0\r\nx-t: 1\rX\r\n\r\n",
            b"0\r\n\rX",
        ] {
            assert_eq!(
                feed(Framing::Chunked, &[body]),
                Err(Malformed),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        // A CR inside an extension is no line end either.
        assert_eq!(
            feed(Framing::Chunked, &[b"1;a\rb\r\nx\r\n"]),
            Err(Malformed)
        );
        let two_trailers: &[u8] = b"0\r\na: 1\r\nb: 2\r\n\r\n";
        assert_eq!(
            feed(Framing::Chunked, &[two_trailers]),
            Ok((two_trailers.len(), true))
        );
    }

    /// A small deterministic generator, so a failure can be replayed.
    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn any_bytes_in_any_split_never_panic_or_overrun() {
        let alphabet = b"0123456789abcdefABCDEF;= \t\r\nxyz";
        let mut seed = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            let len = (xorshift(&mut seed) % 64) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[(xorshift(&mut seed) % alphabet.len() as u64) as usize])
                .collect();
            let whole = feed(Framing::Chunked, &[&bytes]);
            let cut = (xorshift(&mut seed) % (len as u64 + 1)) as usize;
            let split = feed(Framing::Chunked, &[&bytes[..cut], &bytes[cut..]]);
            match (whole, split) {
                (Ok((taken, done)), Ok(again)) => {
                    assert!(taken <= len);
                    // Where a body ends does not depend on how its bytes arrived.
                    assert_eq!(
                        (taken, done),
                        again,
                        "{:?}",
                        String::from_utf8_lossy(&bytes)
                    );
                }
                (Err(Malformed), Err(Malformed)) => {}
                (a, b) => panic!("{a:?} vs {b:?} for {:?}", String::from_utf8_lossy(&bytes)),
            }
        }
    }

    #[tokio::test]
    async fn relay_streams_the_body_and_keeps_what_follows() {
        let (mut to_src, mut src) = tokio::io::duplex(64);
        let mut buf = BytesMut::from(&b"5\r\nhel"[..]);
        let writer = tokio::spawn(async move {
            to_src
                .write_all(b"lo\r\n0\r\n\r\nNEXT")
                .await
                .expect("write");
        });
        let mut out = Vec::new();
        relay(
            b"HEAD\r\n".to_vec(),
            Framing::Chunked,
            Source {
                stream: &mut src,
                buf: &mut buf,
            },
            &mut out,
        )
        .await
        .expect("relay");
        writer.await.expect("writer");
        assert_eq!(out, b"HEAD\r\n5\r\nhello\r\n0\r\n\r\n");
        assert_eq!(&buf[..], b"NEXT");
    }

    /// The payload of a chunked body (extensions aside), its trailer section, and what
    /// follows.
    fn unchunk(mut bytes: &[u8]) -> (Vec<u8>, &[u8], &[u8]) {
        let mut payload = Vec::new();
        loop {
            let line = bytes.windows(2).position(|w| w == b"\r\n").unwrap();
            let size = usize::from_str_radix(std::str::from_utf8(&bytes[..line]).unwrap(), 16);
            let size = size.unwrap();
            bytes = &bytes[line + 2..];
            if size == 0 {
                // The empty line: a CRLF at the start, or right after another.
                let end = (0..bytes.len())
                    .find(|&at| {
                        bytes[at..].starts_with(b"\r\n")
                            && (at == 0 || bytes[..at].ends_with(b"\r\n"))
                    })
                    .unwrap();
                return (payload, &bytes[..end], &bytes[end + 2..]);
            }
            payload.extend_from_slice(&bytes[..size]);
            bytes = &bytes[size + 2..];
        }
    }

    #[tokio::test]
    async fn a_compressed_relay_sends_the_payload_compressed_and_chunked() {
        for framing in [Framing::Chunked, Framing::Length(11)] {
            let (mut to_src, mut src) = tokio::io::duplex(64);
            let (first, rest): (&[u8], &[u8]) = match framing {
                Framing::Chunked => (
                    b"5;x=y\r\nhel",
                    b"lo\r\n6\r\n world\r\n0\r\nT: 1\r\nX-Sum: abc\r\n\r\nNEXT",
                ),
                _ => (b"hel", b"lo worldNEXT"),
            };
            let mut buf = BytesMut::from(first);
            let writer = tokio::spawn(async move {
                to_src.write_all(rest).await.expect("write");
            });
            let mut out = Vec::new();
            let source = Source {
                stream: &mut src,
                buf: &mut buf,
            };
            relay_compressed(
                b"HEAD\r\n".to_vec(),
                framing,
                source,
                &mut out,
                Coding::Gzip,
            )
            .await
            .expect("relay");
            writer.await.expect("writer");
            assert_eq!(&buf[..], b"NEXT", "{framing:?}");
            let (payload, trailers, after) = unchunk(out.strip_prefix(b"HEAD\r\n").unwrap());
            assert!(after.is_empty(), "{framing:?}: {after:?}");
            // The app's trailer fields come after the compressed payload, as they came.
            let sent: &[u8] = match framing {
                Framing::Chunked => b"T: 1\r\nX-Sum: abc\r\n",
                _ => b"",
            };
            assert_eq!(trailers, sent, "{framing:?}");
            let mut decoded = Vec::new();
            std::io::Read::read_to_end(
                &mut flate2::read::GzDecoder::new(&payload[..]),
                &mut decoded,
            )
            .unwrap();
            assert_eq!(decoded, b"hello world", "{framing:?}");
        }
    }

    #[tokio::test]
    async fn trailers_over_the_head_limit_are_dropped_not_held() {
        let (mut to_src, mut src) = tokio::io::duplex(4096);
        let line = format!("X-Pad: {}\r\n", "p".repeat(1000));
        let many = line.repeat(super::super::MAX_HEAD / line.len() + 2);
        let writer = tokio::spawn(async move {
            let rest = format!("{many}\r\nNEXT");
            to_src.write_all(rest.as_bytes()).await.expect("write");
        });
        let mut buf = BytesMut::from(&b"3\r\nabc\r\n0\r\n"[..]);
        let mut out = Vec::new();
        let source = Source {
            stream: &mut src,
            buf: &mut buf,
        };
        relay_compressed(Vec::new(), Framing::Chunked, source, &mut out, Coding::Gzip)
            .await
            .expect("relay");
        writer.await.expect("writer");
        assert_eq!(&buf[..], b"NEXT");
        let (_, trailers, after) = unchunk(&out);
        assert!(
            trailers.is_empty() && after.is_empty(),
            "{} bytes",
            out.len()
        );
    }

    #[tokio::test]
    async fn a_body_cut_short_is_a_read_error() {
        let (to_src, mut src) = tokio::io::duplex(64);
        drop(to_src);
        let mut buf = BytesMut::from(&b"abc"[..]);
        let mut out = Vec::new();
        let err = relay(
            Vec::new(),
            Framing::Length(10),
            Source {
                stream: &mut src,
                buf: &mut buf,
            },
            &mut out,
        )
        .await
        .expect_err("cut short");
        assert!(matches!(err, RelayError::Read(_)), "{err:?}");
        assert_eq!(out, b"abc");
    }

    #[tokio::test]
    async fn a_body_broken_from_the_start_sends_nothing() {
        let relay_of = |first: &'static [u8], rest: &'static [u8]| async move {
            let (mut to_src, mut src) = tokio::io::duplex(64);
            to_src.write_all(rest).await.expect("write");
            drop(to_src);
            let mut buf = BytesMut::from(first);
            let mut out = Vec::new();
            let src = Source {
                stream: &mut src,
                buf: &mut buf,
            };
            let err = relay(b"HEAD\r\n".to_vec(), Framing::Chunked, src, &mut out)
                .await
                .expect_err("malformed");
            (err, out)
        };
        let (err, out) = relay_of(b"ZZ\r\nabc\r\n", b"").await;
        assert!(matches!(err, RelayError::Unsent(Malformed)), "{err:?}");
        assert!(out.is_empty(), "nothing sent: {out:?}");
        // Broken only in what came later: the head and first chunk are already out.
        let (err, out) = relay_of(b"3\r\nabc\r\n", b"ZZ\r\n").await;
        assert!(matches!(err, RelayError::Read(_)), "{err:?}");
        assert_eq!(out, b"HEAD\r\n3\r\nabc\r\n");
    }
}
