//! The wire types of `lakefly scale`: machine counts, and each group's size (`[[vm]]`),
//! changed by a new release.

use std::collections::BTreeMap;

use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::client::{Client, ClientError};

/// `POST /v1/apps/{app}/scale`: machine counts per process group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScaleRequest {
    /// Group name to the number of machines it should have.
    pub counts: BTreeMap<String, u32>,
}

/// One group's count, before and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScaleChange {
    /// Machines before.
    pub from: u32,
    /// Machines after.
    pub to: u32,
}

/// `GET /v1/apps/{app}/scale`: each group of the current release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupScale {
    /// The process group.
    pub process_group: String,
    /// Machines it has (not destroyed).
    pub count: u32,
    /// Of those, running.
    pub running: u32,
    /// `[[vm]] size`, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// Memory in MiB, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
    /// How the memory limit is enforced (`cgroup_v2` or `resident_watch`); absent without
    /// a limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_enforced: Option<String>,
    /// CPUs, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// Whether the CPU limit is held (a cgroup's `cpu.max`); absent without a limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus_enforced: Option<bool>,
}

/// The smallest memory limit a group takes, in MiB: below it not even a shell starts.
pub const MIN_MEMORY_MB: u64 = 32;

/// A memory limit below [`MIN_MEMORY_MB`], refused alike by the client and the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0} MB is too little memory; the smallest limit is {MIN_MEMORY_MB} MB")]
pub struct TooLittleMemory(pub u64);

/// `mb` as a memory limit, unless it is below [`MIN_MEMORY_MB`].
pub fn memory_limit(mb: u64) -> Result<u64, TooLittleMemory> {
    if mb < MIN_MEMORY_MB {
        return Err(TooLittleMemory(mb));
    }
    Ok(mb)
}

/// `POST /v1/apps/{app}/scale/memory`: a group's memory limit, applied by a new release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryRequest {
    /// The group (default: `app`, or the only group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_group: Option<String>,
    /// The limit in MiB.
    pub memory_mb: u64,
}

/// What a memory change did: the release it started, if anything changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryChange {
    /// The group.
    pub process_group: String,
    /// The limit before, in MiB.
    pub from: Option<u64>,
    /// The limit now, in MiB.
    pub to: u64,
    /// The release that applies it; none when the limit was already so.
    pub release: Option<u64>,
}

/// `POST /v1/apps/{app}/scale/vm`: a group's size preset (`fly scale vm`), its CPUs and
/// memory with it, applied by a new release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmRequest {
    /// The group (default: `app`, or the only group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_group: Option<String>,
    /// The size (`shared-cpu-2x`).
    pub size: String,
    /// Memory in MiB instead of the size's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
}

/// A group's size as `[[vm]]` gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmSize {
    /// The size preset, if named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// CPUs, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// Memory in MiB, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
}

/// What a size change did: the release it started, if anything changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmChange {
    /// The group.
    pub process_group: String,
    /// Its size before.
    pub from: VmSize,
    /// Its size now.
    pub to: VmSize,
    /// The release that applies it; none when it was already so.
    pub release: Option<u64>,
}

impl Client {
    /// `POST /v1/apps/{app}/scale/memory`: a group's memory limit, by a new release.
    pub async fn scale_memory(
        &self,
        app: &str,
        request: &MemoryRequest,
    ) -> Result<MemoryChange, ClientError> {
        self.call(
            Method::POST,
            &format!("/v1/apps/{app}/scale/memory"),
            Some(request),
        )
        .await
    }

    /// `POST /v1/apps/{app}/scale/vm`: a group's size preset, by a new release.
    pub async fn scale_vm(&self, app: &str, request: &VmRequest) -> Result<VmChange, ClientError> {
        self.call(
            Method::POST,
            &format!("/v1/apps/{app}/scale/vm"),
            Some(request),
        )
        .await
    }
}
