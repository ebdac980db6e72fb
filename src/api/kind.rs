//! Event kinds the daemon emits (`Event::kind`), shared by client and daemon.

/// An app was created.
pub const APP_CREATED: &str = "app.created";
/// An app was destroyed.
pub const APP_DESTROYED: &str = "app.destroyed";
/// `apps restart` ended: every running machine restarted and healthy again, or `error`
/// says at which it stopped.
pub const APP_RESTARTED: &str = "app.restarted";
/// A machine was recorded.
pub const MACHINE_CREATED: &str = "machine.created";
/// A machine's process started.
pub const MACHINE_STARTED: &str = "machine.started";
/// A machine's process ended (code or signal in the data).
pub const MACHINE_EXITED: &str = "machine.exited";
/// A machine's health changed (with the check's last output).
pub const MACHINE_HEALTH: &str = "machine.health";
/// A machine was stopped on request.
pub const MACHINE_STOPPED: &str = "machine.stopped";
/// A machine gave up restarting or could not start.
pub const MACHINE_FAILED: &str = "machine.failed";
/// A machine was destroyed.
pub const MACHINE_DESTROYED: &str = "machine.destroyed";
/// A signal was sent to a machine's main process (`lakefly machines kill`): `signal`,
/// `pid`.
pub const MACHINE_SIGNALED: &str = "machine.signaled";
/// A command was run in a machine's environment (`program`, `exit_code`, `timed_out`;
/// never its arguments, which may hold credentials).
pub const MACHINE_EXEC: &str = "machine.exec";
/// A release started rolling out.
pub const DEPLOY_STARTED: &str = "deploy.started";
/// A step of a release: unpack, build, release command, machine replaced...
pub const DEPLOY_PROGRESS: &str = "deploy.progress";
/// A release's bundle was unpacked.
pub const RELEASE_UNPACKED: &str = "release.unpacked";
/// A release's `[build] command` runs.
pub const RELEASE_BUILD: &str = "release.build";
/// A release's `release_command` runs.
pub const RELEASE_COMMAND: &str = "release.command";
/// A release reads its Dockerfile.
pub const RELEASE_DOCKERFILE: &str = "release.dockerfile";
/// An old machine gave way to a healthy new one.
pub const MACHINE_REPLACED: &str = "machine.replaced";
/// A release is live.
pub const DEPLOY_COMPLETE: &str = "deploy.complete";
/// A release failed; the previous one is kept.
pub const DEPLOY_FAILED: &str = "deploy.failed";
/// Secrets were set or unset (names only, never values).
pub const SECRETS_UPDATED: &str = "secrets.updated";
/// A group's machine count changed.
pub const SCALE_CHANGED: &str = "scale.changed";
/// A job was added (from fly.toml or the API).
pub const JOB_CREATED: &str = "job.created";
/// A job was removed.
pub const JOB_DELETED: &str = "job.deleted";
/// A job was started or stopped (scheduled or not).
pub const JOB_UPDATED: &str = "job.updated";
/// A job run began.
pub const JOB_RUN_STARTED: &str = "job.run.started";
/// A job run's attempt failed and the next begins (`attempt`, of `attempts`): the failed
/// one's `status`, `exit_code`, `http_status`.
pub const JOB_RUN_RETRYING: &str = "job.run.retrying";
/// A job run ended (or was skipped): `status`, `attempts`, `exit_code`, `http_status`.
pub const JOB_RUN_FINISHED: &str = "job.run.finished";
/// A volume was made on request, before a machine mounted it (`name`).
pub const VOLUME_CREATED: &str = "volume.created";
/// A volume's data was deleted (`name`).
pub const VOLUME_DESTROYED: &str = "volume.destroyed";
/// A bundle was uploaded and stored.
pub const BUNDLE_STORED: &str = "bundle.stored";
/// Sent first on a resumed stream when events before the retained window were dropped.
pub const GAP: &str = "gap";
/// The daemon started.
pub const DAEMON_STARTED: &str = "daemon.started";
/// The daemon is stopping.
pub const DAEMON_STOPPING: &str = "daemon.stopping";
/// A TLS certificate (the edge's or the API's) was read again on SIGHUP and is
/// served from now on.
pub const TLS_RELOADED: &str = "tls.reloaded";
/// A TLS certificate could not be read again; the one served so far stays.
pub const TLS_RELOAD_FAILED: &str = "tls.reload_failed";
/// A host name now routes to the app (`hostname` in the data).
pub const HOSTNAME_ADDED: &str = "hostname.added";
/// A host name no longer routes to the app.
pub const HOSTNAME_REMOVED: &str = "hostname.removed";
