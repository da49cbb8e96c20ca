//! Settings: one TOML file, `archive.toml` (ARCHITECTURE.md, "The settings file").
//!
//! Where it is: `--config FILE` / `ARCHIVE_CONFIG`; else, when no data folder is named,
//! `/etc/archive/archive.toml` if it exists (the Debian package's); else `archive.toml` in the
//! data folder. A data folder without `archive.toml` but with the `net.json` of earlier
//! versions is read as before (its fields mean what they meant); `archive config` prints
//! the settings in effect as TOML, to move them over.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::schedule::Window;

/// The settings file's name in a data folder.
pub(crate) const FILE: &str = "archive.toml";
/// The settings of a system-wide install (the Debian package).
pub(crate) const SYSTEM_FILE: &str = "/etc/archive/archive.toml";
/// Network settings of earlier versions, read when there is no `archive.toml`.
pub(crate) const LEGACY_FILE: &str = "net.json";
/// Larger settings files are refused unread.
const MAX_FILE: u64 = 1 << 20;

/// The port servers listen on unless told otherwise.
pub(crate) const DEFAULT_PORT: u16 = 7740;
/// The port of the web UI unless told otherwise (80 needs root; a Pi's package can forward).
pub(crate) const DEFAULT_HTTP_PORT: u16 = 8080;

/// Where the data folder is, and the settings file named for it.
#[derive(Debug, Clone)]
pub(crate) struct Location {
    pub(crate) dir: PathBuf,
    /// A settings file named by `--config`, `ARCHIVE_CONFIG` or the system install; `None`:
    /// `archive.toml` in the data folder, if there is one.
    pub(crate) config: Option<PathBuf>,
}

/// Finds the data folder and the settings file (see the module's description).
pub(crate) fn locate(config: Option<PathBuf>, data_dir_flag: Option<PathBuf>) -> Result<Location> {
    let config = match config {
        Some(c) if c.as_os_str().is_empty() => {
            bail!("the settings file (--config or ARCHIVE_CONFIG) is empty")
        }
        Some(c) => Some(c),
        None if data_dir_flag.is_none() && Path::new(SYSTEM_FILE).exists() => {
            Some(PathBuf::from(SYSTEM_FILE))
        }
        None => None,
    };
    let Some(config) = config else {
        return Ok(Location {
            dir: data_dir(data_dir_flag)?,
            config: None,
        });
    };
    let settings = Settings::read(&config)?;
    let dir = match (data_dir_flag, settings.data_dir) {
        (Some(flag), _) => data_dir(Some(flag))?,
        (None, Some(dir)) => dir,
        (None, None) => data_dir(None)?,
    };
    Ok(Location {
        dir,
        config: Some(config),
    })
}

/// `--data-dir` / `ARCHIVE_DIR` if set, else `$XDG_DATA_HOME/archive`, else
/// `~/.local/share/archive`.
fn data_dir(flag: Option<PathBuf>) -> Result<PathBuf> {
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

/// Everything `archive.toml` can say; every field optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Settings {
    /// The data folder (read from a settings file outside it: `--config`, /etc).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) data_dir: Option<PathBuf>,
    /// How much the server logs: `error`, `warn`, `info` (default) or `debug`.
    pub(crate) log_level: LogLevel,
    pub(crate) network: Network,
    pub(crate) web: Web,
    pub(crate) quotas: Quotas,
    /// Scheduled syncs, `[[sync]]` tables.
    #[serde(rename = "sync", skip_serializing_if = "Vec::is_empty")]
    pub(crate) schedules: Vec<SyncSchedule>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
}

/// `[network]`: how this server reaches its peers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Network {
    /// `lan` (no relay, no public lookup, no port mapping) or `internet`.
    pub(crate) profile: String,
    /// With `internet`: the community's own relay (a URL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) relay: Option<String>,
    /// Find and be found by servers on the local network (mDNS).
    pub(crate) mdns: bool,
    /// Where `archive serve` listens for peers.
    pub(crate) bind: SocketAddr,
    /// Where `sync` and `diff --peer` bind when no server runs [default: any, random port].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) client_bind: Option<SocketAddr>,
    /// Longest wait for a peer.
    #[serde(with = "human_duration")]
    pub(crate) timeout: Duration,
    /// A peer's connection with no request open for this long is closed.
    #[serde(with = "human_duration")]
    pub(crate) idle: Duration,
    /// Connection attempts one source address may make per minute.
    pub(crate) handshakes_per_minute: u32,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            profile: "lan".into(),
            relay: None,
            mdns: true,
            bind: SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)),
            client_bind: None,
            timeout: Duration::from_secs(30),
            idle: archive_net::Caps::default().idle,
            handshakes_per_minute: archive_net::Caps::default().handshakes_per_minute,
        }
    }
}

/// `[web]`: the pages and the JSON API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Web {
    /// Where `archive serve` serves the web UI (plain HTTP, for the local network).
    pub(crate) http: SocketAddr,
}

impl Default for Web {
    fn default() -> Self {
        Web {
            http: SocketAddr::from(([0, 0, 0, 0], DEFAULT_HTTP_PORT)),
        }
    }
}

/// `[quotas]`: sizes as a number of bytes or a string such as `"5 GiB"`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Quotas {
    /// Most bytes this store may hold (blobs plus entries); a sync that would pass it stops.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) store: Option<ByteSize>,
    /// Most bytes one peer may bring (entries plus new blobs) until it is purged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) peer: Option<ByteSize>,
    /// Most entries one peer may bring until it is purged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) peer_entries: Option<u64>,
    /// The largest file the files page takes.
    pub(crate) file: ByteSize,
    /// Bytes a person's own folder may hold.
    pub(crate) person: ByteSize,
    /// Bytes the community's shared folder may hold (the disk's free space limits it too).
    pub(crate) community: ByteSize,
}

impl Default for Quotas {
    fn default() -> Self {
        let shares = archive_core::shares::ShareLimits::default();
        Quotas {
            store: None,
            peer: None,
            peer_entries: archive_net::Limits::default().peer_max_entries,
            file: ByteSize(shares.max_file),
            person: ByteSize(shares.person_quota),
            community: ByteSize(shares.community_quota),
        }
    }
}

/// One `[[sync]]` table: when this server syncs which collections with a peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SyncSchedule {
    /// The peer's name (`archive peer ls`).
    pub(crate) peer: String,
    /// The collections, synced one after the other.
    pub(crate) collections: Vec<String>,
    /// How often, e.g. `"6h"` [default: once a day within `window`].
    #[serde(
        default,
        with = "human_duration_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) every: Option<Duration>,
    /// Only within this daily window, local time, e.g. `"01:00-05:00"`; a sync still running
    /// at its end stops and resumes in the next window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) window: Option<Window>,
    /// Most bytes per second this sync moves, both ways together, e.g. `"200 KiB"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) max_rate: Option<ByteSize>,
    /// The first wait after a failure, doubled at each failure up to an hour (or `every`).
    #[serde(
        default,
        with = "human_duration_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) retry: Option<Duration>,
    /// `both` (default), `pull` (only fetch) or `push` (only give).
    #[serde(default, skip_serializing_if = "Direction::is_both")]
    pub(crate) direction: Direction,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Direction {
    #[default]
    Both,
    Pull,
    Push,
}

impl Direction {
    fn is_both(&self) -> bool {
        *self == Direction::Both
    }
}

/// The slowest rate a schedule may set: below it a sync would hit the peer's timeouts.
pub(crate) const MIN_RATE: u64 = 4 * 1024;

impl SyncSchedule {
    fn check(&self) -> Result<()> {
        crate::peers::check_name(&self.peer)?;
        if self.collections.is_empty() {
            bail!("a [[sync]] with `{}` names no collections", self.peer);
        }
        for c in &self.collections {
            archive_core::validate_collection(c)?;
        }
        if self.every.is_none() && self.window.is_none() {
            bail!(
                "the [[sync]] with `{}` needs `every` (such as \"6h\") or `window` (such as \"01:00-05:00\")",
                self.peer
            );
        }
        if self.every.is_some_and(|e| e < Duration::from_secs(1)) {
            bail!(
                "the [[sync]] with `{}`: `every` must be at least 1s",
                self.peer
            );
        }
        if self.retry.is_some_and(|e| e < Duration::from_secs(1)) {
            bail!(
                "the [[sync]] with `{}`: `retry` must be at least 1s",
                self.peer
            );
        }
        if self.max_rate.is_some_and(|r| r.0 < MIN_RATE) {
            bail!(
                "the [[sync]] with `{}`: `max_rate` must be at least 4 KiB (a second)",
                self.peer
            );
        }
        Ok(())
    }
}

impl Settings {
    /// The settings for the data folder at `location`: its settings file, `net.json` of
    /// earlier versions, or the defaults.
    pub(crate) fn load(location: &Location) -> Result<Settings> {
        if let Some(config) = &location.config {
            return Settings::read(config);
        }
        let path = location.dir.join(FILE);
        if path.exists() {
            return Settings::read(&path);
        }
        let legacy = location.dir.join(LEGACY_FILE);
        match read_limited(&legacy) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Settings::default()),
            Err(e) => bail!("cannot read {}: {e}", legacy.display()),
            Ok(bytes) => {
                let s: LegacyNetJson = serde_json::from_slice(&bytes)
                    .map_err(|e| anyhow::anyhow!("{} is not valid: {e}", legacy.display()))?;
                let settings = Settings::from(s);
                settings
                    .check()
                    .map_err(|e| anyhow::anyhow!("{}: {e:#}", legacy.display()))?;
                Ok(settings)
            }
        }
    }

    /// Reads and checks one settings file.
    pub(crate) fn read(path: &Path) -> Result<Settings> {
        let bytes =
            read_limited(path).with_context(|| format!("cannot read {}", path.display()))?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| anyhow::anyhow!("{} is not UTF-8 text", path.display()))?;
        let settings: Settings = toml::from_str(text)
            .map_err(|e| anyhow::anyhow!("{} is not valid: {e}", path.display()))?;
        settings
            .check()
            .map_err(|e| anyhow::anyhow!("{}: {e:#}", path.display()))?;
        Ok(settings)
    }

    /// The settings as `archive.toml` would say them.
    pub(crate) fn to_toml(&self) -> String {
        toml::to_string(self).expect("settings serialise")
    }

    fn check(&self) -> Result<()> {
        let n = &self.network;
        if n.timeout.is_zero() || n.timeout > Duration::from_secs(3600) {
            bail!("network.timeout must be 1s to 1h");
        }
        if n.idle.is_zero() || n.idle > Duration::from_secs(86_400) {
            bail!("network.idle must be 1s to 24h");
        }
        if n.handshakes_per_minute == 0 {
            bail!("network.handshakes_per_minute must be at least 1");
        }
        if let Some(dir) = &self.data_dir {
            if dir.as_os_str().is_empty() || dir.is_relative() {
                bail!("data_dir must be an absolute path");
            }
        }
        self.config(None)?;
        for (i, s) in self.schedules.iter().enumerate() {
            s.check()?;
            if self.schedules[..i].iter().any(|o| {
                o.peer == s.peer && o.collections.iter().any(|c| s.collections.contains(c))
            }) {
                bail!(
                    "two [[sync]] tables sync the same collection with `{}`",
                    s.peer
                );
            }
        }
        Ok(())
    }

    /// The endpoint configuration, listening on `bind`.
    pub(crate) fn config(&self, bind: Option<SocketAddr>) -> Result<archive_net::NetConfig> {
        let n = &self.network;
        let profile = match (n.profile.as_str(), &n.relay) {
            ("lan", None) => archive_net::Profile::Lan,
            ("lan", Some(_)) => bail!("`relay` needs profile \"internet\""),
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
            mdns: n.mdns,
        })
    }

    /// The files page's limits.
    pub(crate) fn share_limits(&self) -> archive_core::shares::ShareLimits {
        archive_core::shares::ShareLimits {
            max_file: self.quotas.file.0,
            person_quota: self.quotas.person.0,
            community_quota: self.quotas.community.0,
            ..archive_core::shares::ShareLimits::default()
        }
    }

    pub(crate) fn limits(&self) -> archive_net::Limits {
        archive_net::Limits {
            timeout: self.network.timeout,
            max_store_bytes: self.quotas.store.map(|b| b.0),
            peer_quota_bytes: self.quotas.peer.map(|b| b.0),
            peer_max_entries: self.quotas.peer_entries,
            caps: archive_net::Caps {
                idle: self.network.idle,
                handshakes_per_minute: self.network.handshakes_per_minute,
                ..archive_net::Caps::default()
            },
            ..archive_net::Limits::default()
        }
    }
}

fn read_limited(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_FILE + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(std::io::Error::other("larger than 1 MiB"));
    }
    Ok(bytes)
}

/// `net.json` of earlier versions: flat, seconds as numbers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct LegacyNetJson {
    profile: String,
    relay: Option<String>,
    mdns: bool,
    bind: SocketAddr,
    http: SocketAddr,
    client_bind: Option<SocketAddr>,
    quota_bytes: Option<u64>,
    peer_quota_bytes: Option<u64>,
    peer_max_entries: Option<u64>,
    timeout_secs: u64,
    idle_secs: u64,
    handshakes_per_minute: u32,
    files_max_bytes: Option<u64>,
    files_person_quota_bytes: Option<u64>,
    files_community_quota_bytes: Option<u64>,
}

impl Default for LegacyNetJson {
    fn default() -> Self {
        let (n, w, q) = (Network::default(), Web::default(), Quotas::default());
        LegacyNetJson {
            profile: n.profile,
            relay: None,
            mdns: n.mdns,
            bind: n.bind,
            http: w.http,
            client_bind: None,
            quota_bytes: None,
            peer_quota_bytes: None,
            peer_max_entries: q.peer_entries,
            timeout_secs: n.timeout.as_secs(),
            idle_secs: n.idle.as_secs(),
            handshakes_per_minute: n.handshakes_per_minute,
            files_max_bytes: None,
            files_person_quota_bytes: None,
            files_community_quota_bytes: None,
        }
    }
}

impl From<LegacyNetJson> for Settings {
    fn from(j: LegacyNetJson) -> Settings {
        let q = Quotas::default();
        Settings {
            network: Network {
                profile: j.profile,
                relay: j.relay,
                mdns: j.mdns,
                bind: j.bind,
                client_bind: j.client_bind,
                timeout: Duration::from_secs(j.timeout_secs),
                idle: Duration::from_secs(j.idle_secs),
                handshakes_per_minute: j.handshakes_per_minute,
            },
            web: Web { http: j.http },
            quotas: Quotas {
                store: j.quota_bytes.map(ByteSize),
                peer: j.peer_quota_bytes.map(ByteSize),
                peer_entries: j.peer_max_entries,
                file: j.files_max_bytes.map_or(q.file, ByteSize),
                person: j.files_person_quota_bytes.map_or(q.person, ByteSize),
                community: j.files_community_quota_bytes.map_or(q.community, ByteSize),
            },
            ..Settings::default()
        }
    }
}

/// A number of bytes: an integer, or a string with a unit (`"200 KiB"`, `"5 GB"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ByteSize(pub(crate) u64);

const UNITS: [(&str, u64); 9] = [
    ("TiB", 1 << 40),
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("TB", 1_000_000_000_000),
    ("GB", 1_000_000_000),
    ("MB", 1_000_000),
    ("KB", 1_000),
    ("B", 1),
];

impl std::str::FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (digits, unit) = t.split_at(split);
        let unit = unit.trim();
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("`{s}`: a size is a whole number and a unit, like \"5 GiB\""))?;
        let factor = if unit.is_empty() {
            1
        } else {
            UNITS
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(unit))
                .map(|(_, f)| *f)
                .ok_or_else(|| {
                    format!("`{s}`: unknown unit `{unit}` (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)")
                })?
        };
        n.checked_mul(factor)
            .map(ByteSize)
            .ok_or_else(|| format!("`{s}` is too large"))
    }
}

impl std::fmt::Display for ByteSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (name, factor) in UNITS {
            if self.0 >= factor && self.0.is_multiple_of(factor) {
                return write!(f, "{} {name}", self.0 / factor);
            }
        }
        write!(f, "{} B", self.0)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom("a size is a number of bytes or a string like \"5 GiB\"")
        })? {
            Raw::Number(n) => Ok(ByteSize(n)),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// Durations as humans write them: `"30s"`, `"6h"`, `"1day"`.
mod human_duration {
    use std::time::Duration;

    pub(super) fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Duration, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "`{text}`: {e} (write durations like \"30s\" or \"6h\")"
            ))
        })
    }
}

mod human_duration_opt {
    use std::time::Duration;

    pub(super) fn serialize<S: serde::Serializer>(
        d: &Option<Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::human_duration::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        super::human_duration::deserialize(d).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_print() {
        for (text, n) in [
            ("0", 0),
            ("200 KiB", 200 << 10),
            ("5GiB", 5 << 30),
            ("5 gb", 5_000_000_000),
            ("12 B", 12),
        ] {
            assert_eq!(text.parse::<ByteSize>().unwrap().0, n, "{text}");
            let shown = ByteSize(n).to_string();
            assert_eq!(shown.parse::<ByteSize>().unwrap().0, n, "{shown}");
        }
        for bad in [
            "",
            "KiB",
            "-1 KiB",
            "1.5 GiB",
            "5 parsecs",
            "99999999999 TiB",
        ] {
            assert!(bad.parse::<ByteSize>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_full_file_reads_and_prints_back_the_same() {
        let text = r#"
data_dir = "/var/lib/archive"
log_level = "warn"

[network]
profile = "internet"
relay = "https://relay.example.org/"
bind = "0.0.0.0:7000"
timeout = "1m"

[web]
http = "127.0.0.1:8081"

[quotas]
store = "1 TiB"
person = 1000

[[sync]]
peer = "river"
collections = ["docs", "shares/community"]
every = "6h"
window = "22:00-05:30"
max_rate = "200 KiB"
retry = "1m"
direction = "pull"
"#;
        let s: Settings = toml::from_str(text).unwrap();
        s.check().unwrap();
        assert_eq!(s.log_level, LogLevel::Warn);
        assert_eq!(s.network.timeout, Duration::from_secs(60));
        assert_eq!(s.quotas.store, Some(ByteSize(1 << 40)));
        assert_eq!(s.quotas.person, ByteSize(1000));
        assert_eq!(s.schedules[0].max_rate, Some(ByteSize(200 << 10)));
        assert_eq!(s.schedules[0].window.unwrap().to_string(), "22:00-05:30");
        let again: Settings = toml::from_str(&s.to_toml()).unwrap();
        assert_eq!(again.to_toml(), s.to_toml());
        assert_eq!(again.schedules, s.schedules);
    }

    #[test]
    fn bad_settings_name_what_is_wrong() {
        let cases = [
            ("nonsense = 1", "unknown field `nonsense`"),
            ("[network]\nprofile = \"moon\"", "profile `moon`"),
            ("[network]\ntimeout = \"soon\"", "`soon`"),
            ("[network]\ntimeout = \"0s\"", "network.timeout"),
            ("[quotas]\nfile = \"5 parsecs\"", "unknown unit"),
            ("log_level = \"loud\"", "log_level"),
            ("data_dir = \"relative\"", "absolute"),
            ("[[sync]]\npeer = \"b\"\ncollections = [\"docs\"]", "needs `every`"),
            ("[[sync]]\npeer = \"b\"\ncollections = []\nevery = \"1h\"", "no collections"),
            ("[[sync]]\npeer = \"../b\"\ncollections = [\"d\"]\nevery = \"1h\"", "peer name"),
            ("[[sync]]\npeer = \"b\"\ncollections = [\"\"]\nevery = \"1h\"", "collection"),
            ("[[sync]]\npeer = \"b\"\ncollections = [\"d\"]\nwindow = \"25:00-01:00\"", "25:00"),
            ("[[sync]]\npeer = \"b\"\ncollections = [\"d\"]\nevery = \"1h\"\nmax_rate = 10", "max_rate"),
            (
                "[[sync]]\npeer = \"b\"\ncollections = [\"d\"]\nevery = \"1h\"\n[[sync]]\npeer = \"b\"\ncollections = [\"d\"]\nevery = \"2h\"",
                "same collection",
            ),
        ];
        for (text, says) in cases {
            let err = match toml::from_str::<Settings>(text) {
                Err(e) => e.to_string(),
                Ok(s) => format!("{:#}", s.check().expect_err(text)),
            };
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn net_json_of_earlier_versions_means_what_it_meant() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(LEGACY_FILE),
            r#"{"mdns": false, "timeout_secs": 7, "http": "127.0.0.1:9", "files_max_bytes": 5}"#,
        )
        .unwrap();
        let location = Location {
            dir: dir.path().to_owned(),
            config: None,
        };
        let s = Settings::load(&location).unwrap();
        assert!(!s.network.mdns);
        assert_eq!(s.network.timeout, Duration::from_secs(7));
        assert_eq!(s.web.http, "127.0.0.1:9".parse().unwrap());
        assert_eq!(s.share_limits().max_file, 5);
        // archive.toml beside it wins.
        std::fs::write(dir.path().join(FILE), "[network]\nmdns = true\n").unwrap();
        assert!(Settings::load(&location).unwrap().network.mdns);
    }
}
