//! Optional bytes as a base64 string, for JSON fields (`machines exec` stdin).

use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serializer};

/// Writes the bytes as standard base64.
pub fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    match bytes {
        Some(bytes) => s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes)),
        None => s.serialize_none(),
    }
}

/// Reads standard base64; anything else is an error naming the field's use.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
    let Some(text) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("stdin is not base64: {e}")))
}

#[cfg(test)]
mod tests {
    use crate::api::types::ExecRequest;

    #[test]
    fn stdin_goes_as_base64_and_comes_back_byte_for_byte() {
        let request = ExecRequest {
            command: "wc -c".into(),
            timeout: None,
            stdin: Some(vec![b'a', 0, 0xff]),
        };
        let json = serde_json::to_string(&request).unwrap();
        assert_eq!(json, r#"{"command":"wc -c","stdin":"YQD/"}"#);
        assert_eq!(serde_json::from_str::<ExecRequest>(&json).unwrap(), request);
        let absent: ExecRequest = serde_json::from_str(r#"{"command":"true"}"#).unwrap();
        assert_eq!(absent.stdin, None);
        let bad = serde_json::from_str::<ExecRequest>(r#"{"command":"true","stdin":"%%"}"#);
        assert!(bad.unwrap_err().to_string().contains("stdin is not base64"));
    }
}
