//! `/v1/apps/{app}/volumes` and `/v1/volumes`: the directories that hold apps' `[mounts]`
//! data on the host, as `fly volumes list` and `fly volumes destroy` show and remove them.

use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::client::{Client, ClientError, MACHINES_TIMEOUT};

/// One volume: a mount source's directory under the daemon's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// The app it belongs to.
    pub app: String,
    /// The `[mounts] source` it is for.
    pub name: String,
    /// Its directory on the daemon's host.
    pub path: String,
    /// Disk space its files take, in bytes (as `du` counts it).
    pub used_bytes: u64,
    /// The app's machines whose spec mounts it, stopped ones included: they mount it again
    /// when they start.
    pub mounted_by: Vec<VolumeMount>,
}

/// `POST /v1/apps/{app}/volumes`: a volume to make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateVolume {
    /// Its name, as `[mounts] source` names it.
    pub name: String,
}

/// A machine that mounts a volume, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeMount {
    /// The machine.
    pub machine: String,
    /// Its process group.
    pub process_group: String,
    /// The `[mounts] destination` it sees the volume at.
    pub destination: String,
}

impl Client {
    /// `GET /v1/apps/{app}/volumes`: also answers for a destroyed app whose volumes were
    /// kept.
    pub async fn volumes(&self, app: &str) -> Result<Vec<Volume>, ClientError> {
        self.call(Method::GET, &format!("/v1/apps/{app}/volumes"), None::<&()>)
            .await
    }

    /// `GET /v1/volumes`: every app's, destroyed apps' kept ones included, by app.
    pub async fn all_volumes(&self) -> Result<Vec<Volume>, ClientError> {
        self.call(Method::GET, "/v1/volumes", None::<&()>).await
    }

    /// `POST /v1/apps/{app}/volumes`: an empty volume, before a machine mounts it.
    pub async fn create_volume(&self, app: &str, name: &str) -> Result<Volume, ClientError> {
        let request = CreateVolume {
            name: name.to_string(),
        };
        self.call(
            Method::POST,
            &format!("/v1/apps/{app}/volumes"),
            Some(&request),
        )
        .await
    }

    /// `DELETE /v1/apps/{app}/volumes/{name}`: deletes its data; refused while a machine
    /// mounts it.
    pub async fn destroy_volume(&self, app: &str, name: &str) -> Result<(), ClientError> {
        let path = format!("/v1/apps/{app}/volumes/{name}");
        // Deleting many files can take a while.
        (self
            .send(Method::DELETE, &path, None::<&()>, MACHINES_TIMEOUT)
            .await)
            .map(|_| ())
    }
}
