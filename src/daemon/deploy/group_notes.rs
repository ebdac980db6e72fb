//! What a deploy says of a group's machines beyond their rollout: ports they cannot share,
//! a group scaled to zero.

use crate::config::{plan, AppConfig};

/// Why more than one machine of `group` may not all start: the ports its processes bind
/// themselves (`plan::own_ports`), which machines on one host cannot share.
pub fn shared_ports(cfg: &AppConfig, group: &str) -> Option<String> {
    let ports = plan::own_ports(cfg, group);
    (!ports.is_empty()).then(|| {
        format!(
            "each machine of group {group} binds port {} itself (lakefly maps only internal_port \
             onto $PORT, and machines share the host's network), so only one of them can: run \
             one machine of the group, or have the app take those ports from the environment",
            ports.join(", ")
        )
    })
}

/// What a deploy says of a group that binds ports itself, whose old machines hold them:
/// they give way one by one, each just before its replacement starts.
pub fn stops_first(cfg: &AppConfig, group: &str) -> String {
    format!(
        "group {group} binds port {} itself, which its old machines hold: each stops just \
         before its replacement starts (a short gap for the group; it starts again if the \
         release fails)",
        plan::own_ports(cfg, group).join(", ")
    )
}

/// What a deploy says of a group scaled to zero: no machine of it runs the release until
/// a `scale count`, or a request the edge starts one for.
pub fn scaled_to_zero(cfg: &AppConfig, group: &str) -> String {
    let serves = |processes: &[String], auto_start: Option<bool>| {
        auto_start == Some(true) && processes.iter().any(|p| p == group)
    };
    let woken = (cfg.http_service.iter()).any(|h| serves(&h.processes, h.auto_start_machines))
        || (cfg.services.iter()).any(|s| serves(&s.processes, s.auto_start_machines));
    let request = match woken {
        true => "the first request starts one (auto_start_machines), or ",
        false => "",
    };
    format!(
        "group {group} is scaled to zero, so no machine runs it: {request}`lakefly scale count \
         {group}=1` starts one"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> AppConfig {
        crate::config::parse(text, std::path::Path::new("fly.toml")).config
    }

    #[test]
    fn a_group_scaled_to_zero_is_woken_only_by_a_service_that_auto_starts_it() {
        let text = "app = \"a\"\n[processes]\n  web = \"x\"\n  worker = \"y\"\n\
                    [http_service]\n  internal_port = 8080\n  processes = [\"web\"]\n\
                    auto_start_machines = true\n";
        let cfg = config(text);
        assert_eq!(
            scaled_to_zero(&cfg, "web"),
            "group web is scaled to zero, so no machine runs it: the first request starts one \
             (auto_start_machines), or `lakefly scale count web=1` starts one"
        );
        assert_eq!(
            scaled_to_zero(&cfg, "worker"),
            "group worker is scaled to zero, so no machine runs it: `lakefly scale count \
             worker=1` starts one"
        );
        let off =
            config(&text.replace("auto_start_machines = true", "auto_start_machines = false"));
        assert!(!scaled_to_zero(&off, "web").contains("request"));
    }
}
