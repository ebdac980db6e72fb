//! Lines of a machine's or a one-off command's output, read from its pipe whatever it
//! writes. `AsyncBufReadExt::lines` stops at the first byte that is not UTF-8, and holds
//! a line with no end in memory: the pipe then went unread, so the program blocked once
//! it was full, or died of `SIGPIPE` when it was dropped (a Latin-1 `é` crashed an app).

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// The longest line kept whole; a longer one comes in pieces of at most this many bytes
/// (journald splits at 48 KiB; a log line is read by people).
pub const MAX_LINE: usize = 16 * 1024;

/// Reads `\n`-ended lines (a `\r\n` loses its `\r`), a line longer than [`MAX_LINE`] in
/// pieces cut between characters, bytes that are not UTF-8 shown as U+FFFD.
pub struct OutputLines<R> {
    reader: BufReader<R>,
    line: Vec<u8>,
}

impl<R: AsyncRead + Unpin> OutputLines<R> {
    /// Lines of `pipe`.
    pub fn new(pipe: R) -> Self {
        OutputLines {
            reader: BufReader::new(pipe),
            line: Vec::new(),
        }
    }

    /// The next line (or piece of a long one); `None` once the pipe ended (or failed),
    /// after what it held without a final newline.
    pub async fn next_line(&mut self) -> Option<String> {
        loop {
            let available = match self.reader.fill_buf().await {
                Ok(available) if !available.is_empty() => available,
                _ => return (!self.line.is_empty()).then(|| self.take(self.line.len())),
            };
            let room = MAX_LINE - self.line.len();
            // One byte past the room: a line of just the longest length still ends here.
            let window = &available[..available.len().min(room + 1)];
            if let Some(end) = window.iter().position(|&b| b == b'\n') {
                self.line.extend_from_slice(&window[..end]);
                self.reader.consume(end + 1);
                if self.line.last() == Some(&b'\r') {
                    self.line.pop();
                }
                return Some(self.take(self.line.len()));
            }
            if room == 0 {
                // Full, and what follows does not end it: a piece, cut before a
                // character it would split (which starts the next piece).
                let whole = whole_characters(&self.line);
                return Some(self.take(if whole == 0 { MAX_LINE } else { whole }));
            }
            let read = window.len().min(room);
            self.line.extend_from_slice(&window[..read]);
            self.reader.consume(read);
        }
    }

    /// The first `n` bytes of the line being read, as text; the rest stays for the next.
    fn take(&mut self, n: usize) -> String {
        let text = String::from_utf8_lossy(&self.line[..n]).into_owned();
        self.line.drain(..n);
        text
    }
}

/// How many of `bytes` end in a whole character: all but a UTF-8 sequence begun at their
/// very end and not yet complete.
pub fn whole_characters(bytes: &[u8]) -> usize {
    for back in 1..=bytes.len().min(3) {
        let byte = bytes[bytes.len() - back];
        if byte & 0b1100_0000 == 0b1000_0000 {
            continue; // a continuation byte: its sequence began further back
        }
        let length = match byte {
            0xF0..=0xF7 => 4,
            0xE0..=0xEF => 3,
            0xC0..=0xDF => 2,
            // ASCII, or a byte no UTF-8 sequence starts with: nothing to wait for.
            _ => 1,
        };
        return if length > back {
            bytes.len() - back
        } else {
            bytes.len()
        };
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines_of(bytes: &[u8]) -> Vec<String> {
        let mut lines = OutputLines::new(bytes);
        let mut all = Vec::new();
        while let Some(line) = lines.next_line().await {
            all.push(line);
        }
        all
    }

    #[tokio::test]
    async fn bytes_that_are_not_utf8_are_shown_and_reading_goes_on() {
        let lines = lines_of(b"caf\xe9 latin-1\r\nnext\n\xff\xfe\nlast, no newline").await;
        assert_eq!(
            lines,
            [
                "caf\u{fffd} latin-1",
                "next",
                "\u{fffd}\u{fffd}",
                "last, no newline"
            ]
        );
        assert!(lines_of(b"").await.is_empty());
        assert_eq!(lines_of(b"\n\n").await, ["", ""]);
    }

    #[tokio::test]
    async fn a_line_without_end_comes_in_pieces_cut_between_characters() {
        // One byte short of the limit, then a two-byte character across it.
        let mut long = vec![b'a'; MAX_LINE - 1];
        long.extend_from_slice("é".as_bytes());
        long.extend_from_slice(&vec![b'b'; 2 * MAX_LINE]);
        long.push(b'\n');
        let lines = lines_of(&long).await;
        assert!(
            lines.iter().all(|l| l.len() <= MAX_LINE),
            "{:?}",
            lines.iter().map(String::len).collect::<Vec<_>>()
        );
        assert_eq!(lines[0], "a".repeat(MAX_LINE - 1));
        assert!(lines[1].starts_with('é'));
        assert_eq!(
            lines.concat(),
            String::from_utf8_lossy(&long[..long.len() - 1])
        );
        assert!(!lines.concat().contains('\u{fffd}'));
        // A line of just the longest length is one line, not one and an empty one.
        let mut longest = vec![b'c'; MAX_LINE];
        longest.extend_from_slice(b"\nnext\n");
        assert_eq!(
            lines_of(&longest).await,
            ["c".repeat(MAX_LINE), "next".into()]
        );
    }

    #[test]
    fn whole_characters_leaves_out_only_a_sequence_begun_at_the_end() {
        let text = "é☃😀".as_bytes();
        assert_eq!(whole_characters(text), text.len());
        assert_eq!(whole_characters(&text[..1]), 0); // half an é
        assert_eq!(whole_characters(&text[..4]), 2); // é, then two bytes of ☃
        assert_eq!(whole_characters(&text[..8]), 5); // é☃, then three bytes of 😀
        assert_eq!(whole_characters(b"a\xff"), 2); // not UTF-8: nothing to wait for
    }
}
