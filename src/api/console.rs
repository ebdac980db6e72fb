//! `lakefly console`: a terminal in a machine's environment. The client asks with
//! `GET /v1/apps/{app}/machines/{id}/console` and `Upgrade: lakefly-console`; once the
//! daemon answers `101 Switching Protocols`, both sides send [`Frame`]s on the connection:
//! a kind byte, a 4-byte big-endian length, then that many bytes.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::client::ClientError;

/// The `Upgrade` protocol name.
pub const PROTOCOL: &str = "lakefly-console";

/// The largest frame either side accepts; a terminal's pieces are far smaller.
const MAX_FRAME: usize = 1024 * 1024;

/// What `GET .../console` takes (as its query).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConsoleRequest {
    /// Run through `/bin/sh -c`; default: an interactive `bash`, else `sh`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// The terminal's width in columns.
    pub cols: u16,
    /// The terminal's height in rows.
    pub rows: u16,
    /// The client's `$TERM`, so programs draw for the terminal it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term: Option<String>,
}

impl ConsoleRequest {
    /// The command an empty `command` means: the machine's user's interactive shell.
    pub const DEFAULT_COMMAND: &str =
        "if command -v bash >/dev/null 2>&1; then exec bash -i; else exec sh -i; fi";
}

/// One piece of a console session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Client to daemon: what was typed.
    Input(Vec<u8>),
    /// Client to daemon: the terminal's new size.
    Resize {
        /// Width in columns.
        cols: u16,
        /// Height in rows.
        rows: u16,
    },
    /// Daemon to client: what the terminal shows.
    Output(Vec<u8>),
    /// Daemon to client, last: the command's exit code (128 + the signal that ended it).
    Exit(i32),
}

impl Frame {
    const INPUT: u8 = 0;
    const RESIZE: u8 = 1;
    const OUTPUT: u8 = 2;
    const EXIT: u8 = 3;

    /// The frame as it goes on the wire.
    pub fn encode(&self) -> Vec<u8> {
        let (kind, payload): (u8, std::borrow::Cow<[u8]>) = match self {
            Frame::Input(bytes) => (Self::INPUT, bytes.into()),
            Frame::Output(bytes) => (Self::OUTPUT, bytes.into()),
            Frame::Resize { cols, rows } => {
                let mut size = cols.to_be_bytes().to_vec();
                size.extend_from_slice(&rows.to_be_bytes());
                (Self::RESIZE, size.into())
            }
            Frame::Exit(code) => (Self::EXIT, code.to_be_bytes().to_vec().into()),
        };
        let mut wire = Vec::with_capacity(5 + payload.len());
        wire.push(kind);
        wire.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        wire.extend_from_slice(&payload);
        wire
    }

    /// Writes the frame and flushes it.
    pub async fn write<W: AsyncWrite + Unpin>(&self, to: &mut W) -> std::io::Result<()> {
        to.write_all(&self.encode()).await?;
        to.flush().await
    }

    /// Reads the next frame; `None` when the connection ends between frames.
    pub async fn read<R: AsyncRead + Unpin>(from: &mut R) -> std::io::Result<Option<Frame>> {
        let mut head = [0u8; 5];
        match from.read_exact(&mut head).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if len > MAX_FRAME {
            return Err(invalid(format!("a console frame of {len} bytes")));
        }
        let mut payload = vec![0u8; len];
        from.read_exact(&mut payload).await?;
        let fixed = |n: usize| -> std::io::Result<()> {
            match len == n {
                true => Ok(()),
                false => Err(invalid(format!(
                    "a console frame of kind {} and {len} bytes",
                    head[0]
                ))),
            }
        };
        Ok(Some(match head[0] {
            Self::INPUT => Frame::Input(payload),
            Self::OUTPUT => Frame::Output(payload),
            Self::RESIZE => {
                fixed(4)?;
                Frame::Resize {
                    cols: u16::from_be_bytes([payload[0], payload[1]]),
                    rows: u16::from_be_bytes([payload[2], payload[3]]),
                }
            }
            Self::EXIT => {
                fixed(4)?;
                Frame::Exit(i32::from_be_bytes([
                    payload[0], payload[1], payload[2], payload[3],
                ]))
            }
            other => return Err(invalid(format!("a console frame of unknown kind {other}"))),
        }))
    }
}

impl super::client::Client {
    /// `GET /v1/apps/{app}/machines/{id}/console`, upgraded: the connection the console's
    /// frames go on.
    pub async fn console(
        &self,
        app: &str,
        id: &str,
        request: &ConsoleRequest,
    ) -> Result<reqwest::Upgraded, ClientError> {
        let mut query = vec![
            ("cols", request.cols.to_string()),
            ("rows", request.rows.to_string()),
        ];
        query.extend(request.command.clone().map(|c| ("command", c)));
        query.extend(request.term.clone().map(|t| ("term", t)));
        let path = format!("/v1/apps/{app}/machines/{id}/console");
        self.upgrade(&path, &query, PROTOCOL, "a console").await
    }
}

fn invalid(what: String) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("{what}: not the console protocol"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_survive_the_wire_and_garbage_is_refused() {
        let frames = [
            Frame::Input(b"ls -l\r".to_vec()),
            Frame::Resize {
                cols: 120,
                rows: 40,
            },
            Frame::Output(vec![0x1b, b'[', b'H']),
            Frame::Exit(-1),
            Frame::Input(Vec::new()),
        ];
        let wire: Vec<u8> = frames.iter().flat_map(Frame::encode).collect();
        let mut reader = &wire[..];
        for frame in &frames {
            assert_eq!(
                Frame::read(&mut reader).await.unwrap().as_ref(),
                Some(frame)
            );
        }
        assert_eq!(Frame::read(&mut reader).await.unwrap(), None);
        // Unknown kinds, wrong fixed sizes and huge lengths are errors, not frames.
        for bad in [
            vec![9, 0, 0, 0, 0],
            vec![1, 0, 0, 0, 2, 0, 80],
            vec![0, 0xff, 0xff, 0xff, 0xff],
        ] {
            assert!(Frame::read(&mut &bad[..]).await.is_err(), "{bad:?}");
        }
        // A frame cut short is an error too; nothing at all is the clean end.
        let cut = &Frame::Output(b"hello".to_vec()).encode()[..7];
        assert!(Frame::read(&mut &cut[..]).await.is_err());
    }
}
