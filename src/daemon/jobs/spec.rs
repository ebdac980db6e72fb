//! Job definitions: what makes one valid, and when one is next due.

use chrono::{DateTime, Utc};

use crate::api::jobs::{parse_schedule, schedule_zone, JobSpec, MIN_INTERVAL};

/// The next time a job is due after `after`; `None` for a job that only runs when
/// triggered.
pub fn next_after(spec: &JobSpec, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if let Some(interval) = spec.interval {
        return Some(after + chrono::Duration::milliseconds(interval.as_millis() as i64));
    }
    let cron = parse_schedule(spec.schedule.as_deref()?).ok()?;
    // In the schedule's zone, so "0 3 * * *" is 03:00 there, across its DST changes.
    let zone = schedule_zone(spec.time_zone.as_deref()).ok()?;
    let after = jiff::Timestamp::from_millisecond(after.timestamp_millis()).ok()?;
    let next = cron
        .find_next_occurrence(&after.to_zoned(zone), false)
        .ok()?;
    DateTime::from_timestamp_millis(next.timestamp().as_millisecond())
}

/// Why a job definition is refused.
pub fn check_spec(spec: &JobSpec) -> Result<(), String> {
    let valid_name = !spec.name.is_empty()
        && spec.name.len() <= 63
        && spec
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid_name {
        return Err(format!(
            "job name {:?} must be 1-63 letters, digits, '-' or '_'",
            spec.name
        ));
    }
    match (&spec.command, &spec.path) {
        (Some(_), Some(_)) => return Err("a job runs a command or calls a path, not both".into()),
        (None, None) => return Err("a job needs a command or a path".into()),
        (None, Some(path)) if !path.starts_with('/') => {
            return Err(format!("path {path:?} must start with '/'"))
        }
        _ => {}
    }
    if spec.schedule.is_some() && spec.interval.is_some() {
        return Err("a job has a schedule or an interval, not both".into());
    }
    if let Some(schedule) = &spec.schedule {
        parse_schedule(schedule).map_err(|e| format!("schedule {e}"))?;
    }
    if let Some(zone) = &spec.time_zone {
        if spec.schedule.is_none() {
            return Err(format!(
                "time_zone {zone:?} applies to a cron schedule, and this job has none"
            ));
        }
        schedule_zone(Some(zone))?;
    }
    if spec.interval.is_some_and(|i| i < MIN_INTERVAL) {
        return Err(format!("interval must be at least {MIN_INTERVAL}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> JobSpec {
        JobSpec {
            name: "cleanup".into(),
            command: Some("true".into()),
            method: None,
            path: None,
            schedule: None,
            time_zone: None,
            interval: None,
            timeout: None,
            retries: None,
            process_group: None,
        }
    }

    #[test]
    fn intervals_and_cron_schedules_give_the_next_time() {
        let at = DateTime::parse_from_rfc3339("2026-11-24T10:07:30Z")
            .expect("time")
            .with_timezone(&Utc);
        let every = JobSpec {
            interval: Some("10m".parse().expect("duration")),
            ..spec()
        };
        assert_eq!(
            next_after(&every, at).expect("due").to_rfc3339(),
            "2026-11-24T10:17:30+00:00"
        );
        let nightly = JobSpec {
            schedule: Some("0 3 * * *".into()),
            ..spec()
        };
        assert_eq!(
            next_after(&nightly, at).expect("due").to_rfc3339(),
            "2026-11-25T03:00:00+00:00"
        );
        assert_eq!(next_after(&spec(), at), None, "manual jobs are never due");
    }

    #[test]
    fn a_schedule_is_read_in_its_time_zone_through_daylight_saving() {
        let nightly = JobSpec {
            schedule: Some("0 3 * * *".into()),
            time_zone: Some("Europe/Berlin".into()),
            ..spec()
        };
        let next = |at: &str| {
            let at = DateTime::parse_from_rfc3339(at)
                .expect("time")
                .with_timezone(&Utc);
            next_after(&nightly, at).expect("due").to_rfc3339()
        };
        // 03:00 in Berlin: UTC+1 in winter, UTC+2 in summer.
        assert_eq!(next("2026-11-24T10:07:30Z"), "2026-11-25T02:00:00+00:00");
        assert_eq!(next("2026-07-01T10:00:00Z"), "2026-07-02T01:00:00+00:00");
        // The night the clocks go forward, 03:00 is the hour after 01:59 UTC+1.
        assert_eq!(next("2027-03-27T12:00:00Z"), "2027-03-28T01:00:00+00:00");
    }

    #[test]
    fn bad_definitions_are_refused_with_the_reason() {
        assert!(check_spec(&spec()).is_ok());
        let both = JobSpec {
            path: Some("/x".into()),
            ..spec()
        };
        assert!(check_spec(&both).unwrap_err().contains("not both"));
        let bad_cron = JobSpec {
            schedule: Some("every day".into()),
            ..spec()
        };
        assert!(check_spec(&bad_cron)
            .unwrap_err()
            .contains("not a cron expression"));
        let bad_name = JobSpec {
            name: "no spaces".into(),
            ..spec()
        };
        assert!(check_spec(&bad_name).unwrap_err().contains("job name"));
        let unknown_zone = JobSpec {
            schedule: Some("0 3 * * *".into()),
            time_zone: Some("Mars/Olympus".into()),
            ..spec()
        };
        assert!(check_spec(&unknown_zone)
            .unwrap_err()
            .contains("\"Mars/Olympus\" is not a zone this host knows"));
        let zone_without_schedule = JobSpec {
            time_zone: Some("local".into()),
            ..spec()
        };
        assert!(check_spec(&zone_without_schedule)
            .unwrap_err()
            .contains("applies to a cron schedule"));
    }
}
