//! Who may use an API served without tokens. Loopback is open to every user of the host,
//! so an open API takes requests only from the user lakeflyd runs as, from root (who can
//! read its state anyway), and from the members of `--local-group`: Docker's socket rule,
//! for TCP. Anyone else needs a token (`--token-file`).

use std::ffi::CString;
use std::net::SocketAddr;
use std::sync::Arc;

use nix::unistd::{Gid, Group, Uid, User};

use super::socket_owner::{self, OwnerError};

/// `--local-group` names no group of this host.
#[derive(Debug, thiserror::Error)]
#[error("--local-group {0}: no such group on this host")]
pub struct UnknownGroup(pub String);

/// The users an open API serves.
#[derive(Debug, Clone)]
pub struct LocalUsers {
    /// The user lakeflyd runs as.
    daemon: Uid,
    /// `--local-group`: its members are served too.
    group: Option<(String, Gid)>,
}

/// Whether a connection's user may use the open API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It may.
    Allowed,
    /// It may not: the message says who asked and who may.
    Refused(String),
}

/// A connection to the API: its two ends, and the verdict on its user, reached at its
/// first request that needs one.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The connection's far end.
    pub remote: SocketAddr,
    /// The API's end.
    pub local: SocketAddr,
    verdict: Arc<tokio::sync::OnceCell<Verdict>>,
}

impl Peer {
    /// A connection from `remote` to `local`, not judged yet.
    pub fn new(remote: SocketAddr, local: SocketAddr) -> Self {
        Peer {
            remote,
            local,
            verdict: Arc::default(),
        }
    }
}

impl LocalUsers {
    /// The user this process runs as, and the members of `group` (a name or a gid).
    pub fn new(group: Option<&str>) -> Result<Self, UnknownGroup> {
        let group = match group {
            None => None,
            Some(name) => {
                let unknown = || UnknownGroup(name.to_string());
                let found = match name.parse::<u32>() {
                    Ok(gid) => Group::from_gid(Gid::from_raw(gid)),
                    Err(_) => Group::from_name(name),
                };
                let group = found.ok().flatten().ok_or_else(unknown)?;
                Some((group.name, group.gid))
            }
        };
        Ok(LocalUsers {
            daemon: nix::unistd::geteuid(),
            group,
        })
    }

    /// Whether `peer`'s user may use the API; judged once per connection (the kernel and
    /// the user database asked off the async threads).
    pub async fn judge(&self, peer: &Peer) -> Verdict {
        peer.verdict
            .get_or_init(|| async {
                let users = self.clone();
                let (local, remote) = (peer.local, peer.remote);
                tokio::task::spawn_blocking(move || {
                    users.verdict(socket_owner::owner(local, remote))
                })
                .await
                .unwrap_or_else(|e| Verdict::Refused(format!("could not tell who is asking: {e}")))
            })
            .await
            .clone()
    }

    /// The verdict on a connection whose far end is owned by `owner`.
    fn verdict(&self, owner: Result<u32, OwnerError>) -> Verdict {
        let uid = match owner {
            Ok(uid) => Uid::from_raw(uid),
            // As before lakeflyd could tell: on such a system an open API is open to every
            // local user, which the start says.
            Err(OwnerError::Unsupported) => return Verdict::Allowed,
            Err(e) => {
                return Verdict::Refused(format!(
                    "lakeflyd serves its own user without a token, and cannot tell who this request comes from: {e}"
                ))
            }
        };
        if uid == self.daemon || uid.is_root() {
            return Verdict::Allowed;
        }
        let asker = User::from_uid(uid).ok().flatten();
        if asker.as_ref().is_some_and(|user| self.in_group(user)) {
            return Verdict::Allowed;
        }
        let who = |uid: Uid, user: Option<User>| match user {
            Some(user) => format!("{} (uid {uid})", user.name),
            None => format!("uid {uid}"),
        };
        let user = if self.daemon.is_root() {
            "that user"
        } else {
            "that user and root"
        };
        let served = match &self.group {
            Some((name, _)) => format!("{user} and the members of group {name}"),
            None => format!("only {user}"),
        };
        Verdict::Refused(format!(
            "this daemon runs as {} and, without a token, serves {served}; this request comes from {}",
            who(self.daemon, User::from_uid(self.daemon).ok().flatten()),
            who(uid, asker)
        ))
    }

    /// Whether `user` is a member of `--local-group`, as the user database says now (so a
    /// user added with `usermod -aG` is served from their next connection).
    fn in_group(&self, user: &User) -> bool {
        let Some((_, gid)) = &self.group else {
            return false;
        };
        if user.gid == *gid {
            return true;
        }
        let Ok(name) = CString::new(user.name.as_str()) else {
            return false;
        };
        nix::unistd::getgrouplist(&name, user.gid).is_ok_and(|groups| groups.contains(gid))
    }

    /// What an open API's start says of who it serves.
    pub fn describe(&self) -> String {
        if cfg!(not(target_os = "linux")) {
            return "this system does not tell lakeflyd which user a connection comes from: every local user can use the API; give --token-file on a shared host".into();
        }
        match &self.group {
            Some((name, _)) => format!("without a token, the API serves this user, root and the members of group {name}"),
            None => "without a token, the API serves only this user and root (--local-group adds a group's members)".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(group: Option<(&str, u32)>) -> LocalUsers {
        LocalUsers {
            daemon: Uid::from_raw(4242),
            group: group.map(|(name, gid)| (name.to_string(), Gid::from_raw(gid))),
        }
    }

    #[test]
    fn the_daemons_own_user_and_root_are_served() {
        assert_eq!(users(None).verdict(Ok(4242)), Verdict::Allowed);
        assert_eq!(users(None).verdict(Ok(0)), Verdict::Allowed);
    }

    #[test]
    fn another_user_is_refused_and_told_who_may() {
        let Verdict::Refused(why) = users(None).verdict(Ok(4243)) else {
            panic!("another user is served");
        };
        assert!(
            why.contains("uid 4242") && why.contains("uid 4243"),
            "{why}"
        );
        assert!(why.contains("only that user and root"), "{why}");
        let Verdict::Refused(why) = users(Some(("deploy", 4999))).verdict(Ok(4243)) else {
            panic!("a user outside the group is served");
        };
        assert!(why.contains("members of group deploy"), "{why}");
    }

    #[test]
    fn an_unknown_asker_is_refused_unless_the_system_cannot_tell() {
        let gone = OwnerError::NotFound {
            peer: "127.0.0.1:5000".parse().unwrap(),
            local: "127.0.0.1:4280".parse().unwrap(),
        };
        assert!(
            matches!(users(None).verdict(Err(gone)), Verdict::Refused(why) if why.contains("cannot tell"))
        );
        assert_eq!(
            users(None).verdict(Err(OwnerError::Unsupported)),
            Verdict::Allowed
        );
    }

    #[test]
    fn a_group_member_is_served() {
        // root's primary group is gid 0 on every Unix.
        let root_group = users(Some(("root", 0)));
        let root = User::from_uid(Uid::from_raw(0)).unwrap().expect("root");
        assert!(root_group.in_group(&root));
        // A uid with no account is in no group.
        assert!(matches!(
            root_group.verdict(Ok(4_000_000_000)),
            Verdict::Refused(_)
        ));
    }

    #[test]
    fn an_unknown_group_is_refused_by_name() {
        let e = LocalUsers::new(Some("no-such-group-here")).unwrap_err();
        assert!(
            e.to_string().contains("--local-group no-such-group-here"),
            "{e}"
        );
        assert!(LocalUsers::new(Some("0")).is_ok());
    }
}
