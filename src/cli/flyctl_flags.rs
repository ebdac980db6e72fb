//! flyctl's flags of `deploy`, `launch`, `apps`, `scale count`, `logs` and `status` for
//! what one host does not have (Fly's builders, organizations, regions, IP addresses,
//! leases): those with nothing to do here are taken with a note, so a script written for
//! flyctl runs unchanged; those that would change what the command does are refused,
//! naming the flag, with what to do instead. None is shown in `--help`.

use clap::Args;

use crate::config::units::Duration;
use crate::output::Output;

/// `flyctl deploy`'s.
#[derive(Debug, Clone, Default, Args)]
pub struct DeployFlags {
    /// Build on Fly's builders.
    #[arg(long, hide = true)]
    pub remote_only: bool,
    /// Build with the local Docker.
    #[arg(long, hide = true, conflicts_with = "remote_only")]
    pub local_only: bool,
    /// Build with Depot's builders.
    #[arg(long, hide = true, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub depot: Option<bool>,
    /// Check the app's DNS after the deploy.
    #[arg(long, hide = true, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub dns_checks: Option<bool>,
    /// Allocate no public IP address.
    #[arg(long, hide = true)]
    pub no_public_ips: bool,
    /// Allocate a private (Flycast) address.
    #[arg(long, hide = true)]
    pub flycast: bool,
    /// How long to wait for a machine's lease.
    #[arg(long, hide = true, value_name = "DURATION", value_parser = Duration::parse_flag)]
    pub lease_timeout: Option<Duration>,
    /// The region new machines go to.
    #[arg(long, hide = true, value_name = "REGION")]
    pub primary_region: Option<String>,
    /// Accept the prompts: lakefly's deploy asks nothing.
    #[arg(short = 'y', long, hide = true)]
    pub yes: bool,
    /// Two machines per group on a first deploy: `--ha=false` is what lakefly does,
    /// `--ha=true` is refused with the way to run two.
    #[arg(long, hide = true, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", value_parser = only_false(ONE_MACHINE))]
    pub ha: Option<bool>,
    /// Run a container image: refused.
    #[arg(short = 'i', long, hide = true, value_name = "IMAGE", value_parser = refuse(NO_IMAGES))]
    pub image: Option<String>,
    /// Build the image and stop: refused (`=false` is what lakefly does).
    #[arg(long, hide = true, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", value_parser = only_false(NO_IMAGE_BUILD))]
    pub build_only: Option<bool>,
    /// Push the image built: refused (`=false` is what lakefly does).
    #[arg(long, hide = true, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", value_parser = only_false(NO_IMAGE_BUILD))]
    pub push: Option<bool>,
    /// Only these regions: refused.
    #[arg(long, hide = true, value_name = "REGIONS", value_parser = refuse(ONE_REGION))]
    pub regions: Option<String>,
    /// Every region but these: refused.
    #[arg(long, hide = true, value_name = "REGIONS", value_parser = refuse(ONE_REGION))]
    pub exclude_regions: Option<String>,
    /// Only these process groups: refused.
    #[arg(long, hide = true, value_name = "GROUPS", value_parser = refuse(EVERY_GROUP))]
    pub process_groups: Option<String>,
    /// No machines for new process groups: refused (`=false` is what lakefly does).
    #[arg(long, hide = true, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", value_parser = only_false(EVERY_GROUP))]
    pub update_only: Option<bool>,
    /// Deploy without asking: lakefly's deploy asks nothing.
    #[arg(long, hide = true)]
    pub now: bool,
    /// Apps V2 (machines): what every lakefly app is.
    #[arg(long, hide = true)]
    pub force_machines: bool,
    /// Fly's builders (Nixpacks, BuildKit, its builder app and its network): noted.
    #[command(flatten)]
    pub builders: BuilderFlags,
    /// Labels of the image built: noted, as lakefly builds no image.
    #[arg(long = "label", hide = true, value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// The tag of the image built: noted, as lakefly builds no image.
    #[arg(long, hide = true, value_name = "LABEL")]
    pub image_label: Option<String>,
    /// How many times a failed deploy is tried again: noted.
    #[arg(long, hide = true, value_name = "N|auto")]
    pub deploy_retries: Option<String>,
    /// How many machines are updated at once: noted (`--max-unavailable` is that here).
    #[arg(long, hide = true, value_name = "N")]
    pub max_concurrent: Option<u32>,
    /// The same, for the immediate strategy: noted.
    #[arg(long, hide = true, value_name = "N")]
    pub immediate_max_concurrent: Option<u32>,
    /// The size of volumes a first deploy makes: noted.
    #[arg(long, hide = true, value_name = "GB")]
    pub volume_initial_size: Option<u32>,
    /// The signal old machines stop with under bluegreen: refused (fly.toml's
    /// `kill_signal` is that here).
    #[arg(short = 's', long, hide = true, value_name = "SIGNAL", value_parser = refuse(KILL_SIGNAL))]
    pub signal: Option<String>,
    /// Secrets for the image build's `RUN` steps: refused.
    #[arg(long, hide = true, value_name = "NAME=VALUE", value_parser = refuse(NO_BUILD_SECRETS))]
    pub build_secret: Vec<String>,
    /// Files written into machines: refused, as `[[files]]` is not applied.
    #[arg(long, hide = true, value_name = "PATH=VALUE", value_parser = refuse(NO_FILES))]
    pub file_literal: Vec<String>,
    /// The same, from a local file: refused.
    #[arg(long, hide = true, value_name = "PATH=FILE", value_parser = refuse(NO_FILES))]
    pub file_local: Vec<String>,
    /// The same, from a secret: refused.
    #[arg(long, hide = true, value_name = "PATH=SECRET", value_parser = refuse(NO_FILES))]
    pub file_secret: Vec<String>,
    /// Only these machines: refused.
    #[arg(long, hide = true, value_name = "IDS", value_parser = refuse(EVERY_MACHINE))]
    pub only_machines: Vec<String>,
    /// Every machine but these: refused.
    #[arg(long, hide = true, value_name = "IDS", value_parser = refuse(EVERY_MACHINE))]
    pub exclude_machines: Vec<String>,
}

/// `flyctl deploy`'s flags for Fly's builders, which lakefly has none of.
#[derive(Debug, Clone, Default, Args)]
pub struct BuilderFlags {
    /// Build with Nixpacks.
    #[arg(long, hide = true)]
    pub nixpacks: bool,
    /// Build with a BuildKit builder.
    #[arg(long, hide = true)]
    pub buildkit: bool,
    /// A remote BuildKit daemon's address.
    #[arg(long, hide = true, value_name = "ADDR")]
    pub buildkit_addr: Option<String>,
    /// The image of the remote BuildKit daemon.
    #[arg(long, hide = true, value_name = "IMAGE")]
    pub buildkit_image: Option<String>,
    /// Make Fly's builder app again.
    #[arg(long, hide = true)]
    pub recreate_builder: bool,
    /// Which pool of Fly's builders.
    #[arg(long, hide = true, value_name = "POOL")]
    pub builder_pool: Option<String>,
    /// Reach the builder over WireGuard.
    #[arg(long, hide = true, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub wireguard: Option<bool>,
    /// Fall back to HTTPS when WireGuard to the builder fails.
    #[arg(long, hide = true, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub https_failover: Option<bool>,
    /// The scope of Depot's build cache.
    #[arg(long, hide = true, value_name = "SCOPE")]
    pub depot_scope: Option<String>,
}

impl BuilderFlags {
    /// The first of them given, by its flag.
    fn given(&self) -> Option<&'static str> {
        [
            (self.nixpacks, "--nixpacks"),
            (self.buildkit, "--buildkit"),
            (self.buildkit_addr.is_some(), "--buildkit-addr"),
            (self.buildkit_image.is_some(), "--buildkit-image"),
            (self.recreate_builder, "--recreate-builder"),
            (self.builder_pool.is_some(), "--builder-pool"),
            (self.wireguard.is_some(), "--wireguard"),
            (self.https_failover.is_some(), "--https-failover"),
            (self.depot_scope.is_some(), "--depot-scope"),
        ]
        .into_iter()
        .find_map(|(set, flag)| set.then_some(flag))
    }
}

impl DeployFlags {
    /// Says on stderr (not under `--json`), for each flag given that has nothing to do here,
    /// why.
    pub fn note(&self, out: &Output) {
        let builds = "lakefly builds on the daemon's host";
        let addresses = "lakefly allocates no addresses; its edge serves every app";
        note_each(
            out,
            &[
                (self.remote_only, "--remote-only", builds),
                (self.local_only, "--local-only", builds),
                (self.depot.is_some(), "--depot", builds),
                (
                    self.dns_checks.is_some(),
                    "--dns-checks",
                    "the edge routes by Host; lakefly has no DNS to check",
                ),
                (self.no_public_ips, "--no-public-ips", addresses),
                (self.flycast, "--flycast", addresses),
                (
                    self.lease_timeout.is_some(),
                    "--lease-timeout",
                    "an app's releases roll out one at a time, with no machine leases",
                ),
                (
                    self.primary_region.is_some(),
                    "--primary-region",
                    ONE_REGION_HERE,
                ),
                (
                    self.builders.given().is_some(),
                    self.builders.given().unwrap_or_default(),
                    builds,
                ),
                (!self.labels.is_empty(), "--label", NO_IMAGE_TO_LABEL),
                (self.image_label.is_some(), "--image-label", NO_IMAGE_TO_LABEL),
                (
                    self.deploy_retries.is_some(),
                    "--deploy-retries",
                    "a failed release is not tried again: the one before keeps running",
                ),
                (
                    self.max_concurrent.is_some(),
                    "--max-concurrent",
                    "a rolling release replaces --max-unavailable machines at a time ([deploy] max_unavailable)",
                ),
                (
                    self.immediate_max_concurrent.is_some(),
                    "--immediate-max-concurrent",
                    "an immediate release replaces every machine at once",
                ),
                (
                    self.volume_initial_size.is_some(),
                    "--volume-initial-size",
                    "a volume is a directory on the daemon's host, with the room its disk has",
                ),
            ],
        );
    }
}

/// `flyctl launch`'s.
#[derive(Debug, Clone, Default, Args)]
pub struct LaunchFlags {
    /// Deploy once the config is written: what `launch` does unless `--no-deploy`.
    #[arg(long, hide = true, conflicts_with = "no_deploy")]
    pub now: bool,
    /// Keep the config file there is and deploy it, instead of writing one.
    #[arg(long, hide = true)]
    pub copy_config: bool,
    /// Take the defaults instead of asking (the app's name: the directory's).
    #[arg(short = 'y', long, hide = true)]
    pub yes: bool,
    /// The organization the app belongs to.
    #[command(flatten)]
    pub org: OrgFlag,
    /// The region the app's machines go to.
    #[command(flatten)]
    pub region: RegionFlag,
    /// Two machines per group: `--ha=false` is what lakefly does, `--ha=true` is refused
    /// with the way to run two.
    #[arg(long, hide = true, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", value_parser = only_false(ONE_MACHINE))]
    pub ha: Option<bool>,
    /// No Postgres, Redis, Tigris bucket or GitHub workflow: lakefly launches none.
    #[arg(long, hide = true)]
    pub no_db: bool,
    /// See `no_db`.
    #[arg(long, hide = true)]
    pub no_redis: bool,
    /// See `no_db`.
    #[arg(long, hide = true)]
    pub no_object_storage: bool,
    /// See `no_db`.
    #[arg(long, hide = true)]
    pub no_github_workflow: bool,
}

impl LaunchFlags {
    /// Says on stderr (not under `--json`), for each flag given that has nothing to do here,
    /// why.
    pub fn note(&self, out: &Output) {
        self.org.note(out);
        self.region.note(out);
    }
}

/// `flyctl apps create`'s.
#[derive(Debug, Clone, Default, Args)]
pub struct AppsCreateFlags {
    /// The organization.
    #[command(flatten)]
    pub org: OrgFlag,
    /// A custom private network.
    #[arg(long, hide = true, value_name = "NETWORK")]
    pub network: Option<String>,
    /// The machines platform: what every lakefly app runs on.
    #[arg(long, hide = true)]
    pub machines: bool,
}

impl AppsCreateFlags {
    /// Says on stderr (not under `--json`), for each flag given that has nothing to do here,
    /// why.
    pub fn note(&self, out: &Output) {
        self.org.note(out);
        note_each(
            out,
            &[(
                self.network.is_some(),
                "--network",
                "machines are processes on the daemon's host, with no private network",
            )],
        );
    }
}

/// `flyctl ssh console`'s and `flyctl console`'s.
#[derive(Debug, Clone, Default, Args)]
pub struct ConsoleFlags {
    /// The user to run as: refused.
    #[arg(short = 'u', long, hide = true, value_name = "USER", value_parser = refuse(CONSOLE_USER))]
    pub user: Option<String>,
    /// The machine's private address: refused.
    #[arg(short = 'A', long, hide = true, value_name = "ADDR", value_parser = refuse(BY_MACHINE_ID))]
    pub address: Option<String>,
    /// The container of a multi-container machine.
    #[arg(long, hide = true, value_name = "NAME")]
    pub container: Option<String>,
    /// Not in a container.
    #[arg(long, hide = true)]
    pub no_container: bool,
    /// The region.
    #[arg(short = 'r', long, hide = true, value_name = "REGION")]
    pub region: Option<String>,
}

impl ConsoleFlags {
    /// Says on stderr (not under `--json`), for each flag given that has nothing to do here,
    /// why.
    pub fn note(&self, out: &Output) {
        let containers = "a machine here is the app's processes, in no container";
        note_each(
            out,
            &[
                (self.container.is_some(), "--container", containers),
                (self.no_container, "--no-container", containers),
                (self.region.is_some(), "--region", ONE_REGION_HERE),
            ],
        );
    }
}

/// `flyctl volumes create`'s.
#[derive(Debug, Clone, Default, Args)]
pub struct VolumeCreateFlags {
    /// Place it in another hardware zone than the app's others.
    #[arg(long, hide = true, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub require_unique_zone: Option<bool>,
    /// The same, over every volume of the app.
    #[arg(long, hide = true)]
    pub unique_zone_app_wide: bool,
    /// Days its snapshots are kept.
    #[arg(long, hide = true, value_name = "DAYS")]
    pub snapshot_retention: Option<u32>,
    /// Take daily snapshots.
    #[arg(long, hide = true, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub scheduled_snapshots: Option<bool>,
    /// Leave its contents unencrypted.
    #[arg(long, hide = true)]
    pub no_encryption: bool,
    /// Its file system: `ext4` is taken (a directory of the host's), `raw` refused.
    #[arg(long, hide = true, value_name = "TYPE", value_parser = ext4_only)]
    pub fs_type: Option<String>,
    /// Start from a snapshot: refused.
    #[arg(long, hide = true, value_name = "ID", value_parser = refuse(NO_SNAPSHOTS))]
    pub snapshot_id: Option<String>,
    /// How many to make: one is taken, more refused.
    #[arg(short = 'n', long, hide = true, value_name = "N", value_parser = one_only)]
    pub count: Option<u32>,
}

impl VolumeCreateFlags {
    /// Says on stderr (not under `--json`), for each flag given that has nothing to do here,
    /// why.
    pub fn note(&self, out: &Output) {
        let zones = "one host is one zone";
        let snapshots =
            "lakefly takes no volume snapshots (`lakeflyd backup --volumes` copies them)";
        note_each(
            out,
            &[
                (
                    self.require_unique_zone.is_some(),
                    "--require-unique-zone",
                    zones,
                ),
                (self.unique_zone_app_wide, "--unique-zone-app-wide", zones),
                (
                    self.snapshot_retention.is_some(),
                    "--snapshot-retention",
                    snapshots,
                ),
                (
                    self.scheduled_snapshots.is_some(),
                    "--scheduled-snapshots",
                    snapshots,
                ),
                (
                    self.no_encryption,
                    "--no-encryption",
                    "a volume is a directory on the daemon's host, encrypted as its disk is",
                ),
            ],
        );
    }
}

/// `--fs-type`: a volume is a directory of the host's file system, which `ext4` stands for.
fn ext4_only(value: &str) -> Result<String, String> {
    match value {
        "ext4" => Ok(value.to_string()),
        _ => Err(
            "a volume is a directory on the daemon's host: only ext4 (a file system) is taken"
                .into(),
        ),
    }
}

/// `--count`: one volume per name here.
fn one_only(value: &str) -> Result<u32, String> {
    match value.parse::<u32>() {
        Ok(1) => Ok(1),
        Ok(_) => Err(ONE_VOLUME.into()),
        Err(_) => Err("give a whole number".into()),
    }
}

/// `-o`/`--org` (`launch`, `apps create`, `apps list`): one host has no organizations.
#[derive(Debug, Clone, Default, Args)]
pub struct OrgFlag {
    /// The organization.
    #[arg(short = 'o', long, hide = true, value_name = "ORG")]
    pub org: Option<String>,
}

impl OrgFlag {
    /// Says on stderr, when it is given, that it changes nothing.
    pub fn note(&self, out: &Output) {
        note_each(out, &[(self.org.is_some(), "--org", NO_ORGS)]);
    }
}

/// `-r`/`--region` (`launch`, `logs`): one host is one region.
#[derive(Debug, Clone, Default, Args)]
pub struct RegionFlag {
    /// The region.
    #[arg(short = 'r', long, hide = true, value_name = "REGION")]
    pub region: Option<String>,
}

impl RegionFlag {
    /// Says on stderr, when it is given, that it changes nothing.
    pub fn note(&self, out: &Output) {
        note_each(out, &[(self.region.is_some(), "--region", ONE_REGION_HERE)]);
    }
}

/// `flyctl status`'s.
#[derive(Debug, Clone, Default, Args)]
pub struct StatusFlags {
    /// Show stopped machines too: `status` always does.
    #[arg(long, hide = true)]
    pub all: bool,
    /// Show the deployment's status: `status` shows the release's.
    #[arg(long, hide = true)]
    pub deployment: bool,
    /// Seconds between `--watch` redraws.
    #[arg(long, hide = true, value_name = "SECONDS")]
    pub rate: Option<u32>,
}

impl StatusFlags {
    /// Says on stderr (not under `--json`), for each flag given that has nothing to do here,
    /// why.
    pub fn note(&self, out: &Output) {
        note_each(
            out,
            &[(
                self.rate.is_some(),
                "--rate",
                "`--watch` redraws on each change, not on a timer",
            )],
        );
    }
}

/// `flyctl scale count`'s.
#[derive(Debug, Clone, Default, Args)]
pub struct ScaleCountFlags {
    /// The region the count is for.
    #[arg(short = 'r', long, hide = true, value_name = "REGION")]
    pub region: Option<String>,
    /// The most machines one region may hold: refused.
    #[arg(long, hide = true, value_name = "N", value_parser = refuse(ONE_REGION_COUNT))]
    pub max_per_region: Option<String>,
    /// A new volume for each new machine.
    #[arg(long, hide = true)]
    pub with_new_volumes: bool,
    /// New volumes from a snapshot: refused.
    #[arg(long, hide = true, value_name = "ID", value_parser = refuse(NO_SNAPSHOTS))]
    pub from_snapshot: Option<String>,
    /// Environment of the new machines: refused.
    #[arg(short = 'e', long, hide = true, value_name = "NAME=VALUE", value_parser = refuse(ENV_BY_RELEASE))]
    pub env: Vec<String>,
}

impl ScaleCountFlags {
    /// Says on stderr (not under `--json`), for each flag given that has nothing to do here,
    /// why.
    pub fn note(&self, out: &Output) {
        note_each(
            out,
            &[
                (
                    self.region.is_some(),
                    "--region",
                    "one host is one region: the count is this host's",
                ),
                (
                    self.with_new_volumes,
                    "--with-new-volumes",
                    "a volume here is one directory per name, which every machine whose [mounts] source names it mounts",
                ),
            ],
        );
    }
}

/// A note for each flag given (`set`) with why it changes nothing; none under `--json`,
/// whose stderr is errors only.
fn note_each(out: &Output, flags: &[(bool, &str, &str)]) {
    if out.json {
        return;
    }
    for (_, flag, why) in flags.iter().filter(|(set, ..)| *set) {
        out.note(&format!("    note: {flag} changes nothing: {why}"));
    }
}

const NO_ORGS: &str = "a lakeflyd host has no organizations (who may deploy is who holds \
     one of its API tokens)";
const ONE_REGION_HERE: &str = "one host is one region";
const ONE_REGION_COUNT: &str = "one lakeflyd host is one region, so a region's most is the \
     count itself: give the count you want";

const ONE_MACHINE: &str = "a first deploy starts one machine per group here; run two with \
     `lakefly scale count 2` (it is kept by later deploys)";
const NO_IMAGES: &str = "lakefly runs no container images (no container engine): deploy the \
     app's directory instead; its Dockerfile is read, not built";
const NO_IMAGE_BUILD: &str = "lakefly builds no image: the daemon builds the release from the \
     app's directory as it deploys it; deploy without it";
const ONE_REGION: &str = "one lakeflyd host is every region there is: deploy without it, or \
     to another host with `lakefly --remote NAME deploy`";
const CONSOLE_USER: &str = "a console runs as the machine's user, which is lakeflyd's: run \
     `su` or `sudo -u` in it where the host allows";
const BY_MACHINE_ID: &str = "machines are named by id here: give --machine ID (or -s to pick \
     one)";
const NO_SNAPSHOTS: &str = "lakefly takes no volume snapshots: copy the volume's directory \
     into a new one (`lakefly volumes list` shows where it is)";
const ONE_VOLUME: &str = "a volume here is one directory per name, which every machine whose \
     [mounts] source names it mounts: make one";
const ENV_BY_RELEASE: &str = "every machine of a group runs its release's [env]: deploy the \
     change (`lakefly deploy -e NAME=VALUE`, or [env] in fly.toml)";
const NO_IMAGE_TO_LABEL: &str = "lakefly builds no image to label";
const KILL_SIGNAL: &str = "old machines stop with their kill_signal, under every strategy: \
     set it in fly.toml (`lakefly config set kill_signal=SIGTERM`)";
const NO_BUILD_SECRETS: &str = "lakefly runs no Dockerfile `RUN` step, which build secrets are \
     for: a [build] command runs on the daemon's host without the app's secrets, as a Fly build \
     does; keep what it needs out of the build, or in the release command (which has them)";
const NO_FILES: &str = "lakefly writes no files into machines: put the file in the app's \
     directory (it is uploaded with the app), or its content in a secret the app reads \
     (`lakefly secrets set NAME=- < file`)";
const EVERY_MACHINE: &str = "a release replaces every machine of the app: deploy without it \
     (`lakefly machines restart ID` restarts machines alone)";
const EVERY_GROUP: &str = "a release runs every process group its config names, and replaces \
     the machines of each: deploy without it (`lakefly machines restart ID` restarts machines \
     alone)";

/// A parser that refuses every value with `why`: clap's error then names the flag.
fn refuse(why: &'static str) -> impl Fn(&str) -> Result<String, String> + Clone {
    move |_| Err(why.to_string())
}

/// A yes-or-no flag whose `false` is what lakefly does; `true` is refused with `why`.
fn only_false(why: &'static str) -> impl Fn(&str) -> Result<bool, String> + Clone {
    move |value| match value {
        "false" | "0" => Ok(false),
        "true" | "1" => Err(why.to_string()),
        _ => Err("give true or false".into()),
    }
}
