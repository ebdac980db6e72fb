//! Excerpts of text too long to keep whole in a record or a log line (a check's answer,
//! a job's output): its head or its tail, cut on a character boundary.

/// Cuts `text` to its first `limit` bytes (fewer, to end on a character), marked `…`.
pub(crate) fn head(text: &mut String, limit: usize) {
    if text.len() > limit {
        let mut end = limit;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
}

/// The last `limit` bytes of `text` (fewer, to begin on a character).
pub(crate) fn tail(mut text: String, limit: usize) -> String {
    if text.len() > limit {
        let mut start = text.len() - limit;
        while !text.is_char_boundary(start) {
            start += 1;
        }
        text = text.split_off(start);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_fall_between_characters() {
        let mut text = "aé".repeat(4); // 12 bytes, é is two
        head(&mut text, 4);
        assert_eq!(text, "aéa…");
        assert_eq!(tail("éa".repeat(3), 5), "aéa");
        let mut short = "ok".to_string();
        head(&mut short, 4);
        assert_eq!(
            (short.as_str(), tail("ok".into(), 4).as_str()),
            ("ok", "ok")
        );
    }
}
