//! Where the store lives when no `--data-dir` is given.

use std::path::PathBuf;

use anyhow::{bail, Result};

/// `--data-dir` / `ARCHIVE_DIR` if set, else `$XDG_DATA_HOME/archive`, else
/// `~/.local/share/archive`.
pub(crate) fn data_dir(flag: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(dir) = flag {
        if dir.as_os_str().is_empty() {
            bail!("the data folder (--data-dir or ARCHIVE_DIR) is empty");
        }
        return Ok(dir);
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(xdg).join("archive"));
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".local/share/archive")),
        None => bail!("cannot choose a data folder: HOME is not set; pass --data-dir"),
    }
}

/// Network settings: `net.json` in the data folder, every field optional.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct NetSettings {
    /// `lan` (no relay, no public lookup, no port mapping) or `internet`.
    pub(crate) profile: String,
    /// With `internet`: the community's own relay (a URL).
    pub(crate) relay: Option<String>,
    /// Find and be found by servers on the local network (mDNS).
    pub(crate) mdns: bool,
    /// Where `archive serve` listens for peers.
    pub(crate) bind: std::net::SocketAddr,
    /// Where `archive serve` serves the web UI (plain HTTP, for the local network).
    pub(crate) http: std::net::SocketAddr,
    /// Where `sync` and `diff --peer` bind when no server runs [default: any, random port].
    pub(crate) client_bind: Option<std::net::SocketAddr>,
    /// Most bytes this store may hold (blobs plus entries); a sync that would pass it stops.
    pub(crate) quota_bytes: Option<u64>,
    /// Most bytes one peer may bring (entries plus new blobs) until it is purged.
    pub(crate) peer_quota_bytes: Option<u64>,
    /// Most entries one peer may bring until it is purged [default: 10,000,000].
    pub(crate) peer_max_entries: Option<u64>,
    /// Longest wait for a peer, in seconds.
    pub(crate) timeout_secs: u64,
    /// A peer's connection with no request open for this long is closed, in seconds.
    pub(crate) idle_secs: u64,
    /// Connection attempts one source address may make per minute.
    pub(crate) handshakes_per_minute: u32,
    /// The largest file the files page takes [default: 4 GiB].
    pub(crate) files_max_bytes: Option<u64>,
    /// Bytes a person's own folder may hold [default: 5 GiB].
    pub(crate) files_person_quota_bytes: Option<u64>,
    /// Bytes the community's shared folder may hold [default: 100 GiB; the disk's free
    /// space limits it too].
    pub(crate) files_community_quota_bytes: Option<u64>,
}

/// The port servers listen on unless told otherwise.
pub(crate) const DEFAULT_PORT: u16 = 7740;
/// The port of the web UI unless told otherwise (80 needs root; a Pi's package can forward).
pub(crate) const DEFAULT_HTTP_PORT: u16 = 8080;

impl Default for NetSettings {
    fn default() -> Self {
        NetSettings {
            profile: "lan".into(),
            relay: None,
            mdns: true,
            bind: std::net::SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)),
            http: std::net::SocketAddr::from(([0, 0, 0, 0], DEFAULT_HTTP_PORT)),
            client_bind: None,
            quota_bytes: None,
            peer_quota_bytes: None,
            peer_max_entries: archive_net::Limits::default().peer_max_entries,
            timeout_secs: 30,
            idle_secs: archive_net::Caps::default().idle.as_secs(),
            handshakes_per_minute: archive_net::Caps::default().handshakes_per_minute,
            files_max_bytes: None,
            files_person_quota_bytes: None,
            files_community_quota_bytes: None,
        }
    }
}

impl NetSettings {
    /// Reads `net.json` from `dir`; defaults when there is none.
    pub(crate) fn load(dir: &std::path::Path) -> Result<Self> {
        let path = dir.join("net.json");
        match std::fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(NetSettings::default()),
            Err(e) => bail!("cannot read {}: {e}", path.display()),
            Ok(bytes) => {
                let s: NetSettings = serde_json::from_slice(&bytes)
                    .map_err(|e| anyhow::anyhow!("{} is not valid: {e}", path.display()))?;
                if s.timeout_secs == 0 || s.timeout_secs > 3600 {
                    bail!("{}: timeout_secs must be 1..=3600", path.display());
                }
                if s.idle_secs == 0 || s.idle_secs > 86_400 {
                    bail!("{}: idle_secs must be 1..=86400", path.display());
                }
                if s.handshakes_per_minute == 0 {
                    bail!(
                        "{}: handshakes_per_minute must be at least 1",
                        path.display()
                    );
                }
                s.config(None)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                Ok(s)
            }
        }
    }

    /// The endpoint configuration, listening on `bind`.
    pub(crate) fn config(
        &self,
        bind: Option<std::net::SocketAddr>,
    ) -> Result<archive_net::NetConfig> {
        let profile = match (self.profile.as_str(), &self.relay) {
            ("lan", None) => archive_net::Profile::Lan,
            ("lan", Some(_)) => bail!("`relay` needs \"profile\": \"internet\""),
            ("internet", relay) => archive_net::Profile::Internet {
                relay: relay
                    .as_deref()
                    .map(|r| r.parse())
                    .transpose()
                    .map_err(|e| anyhow::anyhow!("relay: not a URL: {e}"))?,
            },
            (other, _) => bail!("profile `{other}`: use \"lan\" or \"internet\""),
        };
        Ok(archive_net::NetConfig {
            profile,
            bind,
            mdns: self.mdns,
        })
    }

    /// The files page's limits.
    pub(crate) fn share_limits(&self) -> archive_core::shares::ShareLimits {
        let d = archive_core::shares::ShareLimits::default();
        archive_core::shares::ShareLimits {
            max_file: self.files_max_bytes.unwrap_or(d.max_file),
            person_quota: self.files_person_quota_bytes.unwrap_or(d.person_quota),
            community_quota: self
                .files_community_quota_bytes
                .unwrap_or(d.community_quota),
            ..d
        }
    }

    pub(crate) fn limits(&self) -> archive_net::Limits {
        archive_net::Limits {
            timeout: std::time::Duration::from_secs(self.timeout_secs),
            max_store_bytes: self.quota_bytes,
            peer_quota_bytes: self.peer_quota_bytes,
            peer_max_entries: self.peer_max_entries,
            caps: archive_net::Caps {
                idle: std::time::Duration::from_secs(self.idle_secs),
                handshakes_per_minute: self.handshakes_per_minute,
                ..archive_net::Caps::default()
            },
            ..archive_net::Limits::default()
        }
    }
}
