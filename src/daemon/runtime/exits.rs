//! Reading a machine's `machine.exited` events the same way wherever a crash matters:
//! the rollout that waits for new machines, and the edge holding requests for one it
//! started.

/// A machine that exits this many times before it is ever healthy is crashing, not slow.
pub const CRASHES_BEFORE_FAILING: u32 = 2;

/// How a machine's process ended, by the `code` and `signal` of its `machine.exited` event
/// (or `last_exit`): "exited with code 1", "was ended by SIGKILL".
pub fn how_it_ended(data: &serde_json::Value) -> String {
    if data["oom_killed"].as_bool() == Some(true) {
        return "was killed for going over its memory limit ([[vm]] memory)".to_string();
    }
    match (data["code"].as_i64(), data["signal"].as_str()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signal)) => format!("was ended by {signal}"),
        (None, None) => "ended".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exit_is_told_by_its_code_else_its_signal() {
        let said = |data| how_it_ended(&data);
        assert_eq!(
            said(serde_json::json!({"code": 3, "signal": null})),
            "exited with code 3"
        );
        assert_eq!(
            said(serde_json::json!({"code": null, "signal": "SIGKILL"})),
            "was ended by SIGKILL"
        );
        assert_eq!(said(serde_json::json!({})), "ended");
        assert_eq!(
            said(serde_json::json!({"code": null, "signal": "SIGKILL", "oom_killed": true})),
            "was killed for going over its memory limit ([[vm]] memory)"
        );
    }
}
