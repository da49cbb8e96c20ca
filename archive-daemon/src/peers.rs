//! Paired peers: `peers.json` in the data folder, written atomically.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{bail, Context, Result};
use archive_net::{Access, EndpointAddr, EndpointId, PeerPolicy, Trust};
use serde::{Deserialize, Serialize};

const FILE: &str = "peers.json";

/// One paired server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Peer {
    pub(crate) name: String,
    /// Endpoint id (hex).
    pub(crate) id: String,
    /// Known direct addresses; empty means "find it on the local network".
    #[serde(default)]
    pub(crate) addrs: Vec<SocketAddr>,
    /// Collections it may read; absent means all.
    #[serde(default)]
    pub(crate) read: Option<Vec<String>>,
    /// Collections it may push into; absent means all.
    #[serde(default)]
    pub(crate) write: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Peers {
    pub(crate) peers: Vec<Peer>,
}

fn access(list: &Option<Vec<String>>) -> Access {
    match list {
        None => Access::All,
        Some(l) => Access::Only(l.iter().cloned().collect()),
    }
}

impl Peer {
    pub(crate) fn endpoint_id(&self) -> Result<EndpointId> {
        self.id
            .parse()
            .map_err(|e| anyhow::anyhow!("peer `{}` has a bad id in {FILE}: {e}", self.name))
    }

    pub(crate) fn endpoint_addr(&self) -> Result<EndpointAddr> {
        let mut addr = EndpointAddr::new(self.endpoint_id()?);
        for a in &self.addrs {
            addr = addr.with_ip_addr(*a);
        }
        Ok(addr)
    }

    pub(crate) fn policy(&self) -> PeerPolicy {
        PeerPolicy {
            name: self.name.clone(),
            read: access(&self.read),
            write: access(&self.write),
        }
    }
}

impl Peers {
    pub(crate) fn load(dir: &Path) -> Result<Peers> {
        let path = dir.join(FILE);
        let peers: Peers = match std::fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Peers::default()),
            Err(e) => bail!("cannot read {}: {e}", path.display()),
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| anyhow::anyhow!("{} is not valid: {e}", path.display()))?,
        };
        for p in &peers.peers {
            p.endpoint_id()?;
        }
        Ok(peers)
    }

    pub(crate) fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(FILE);
        let bytes = serde_json::to_vec_pretty(self).expect("peers serialise");
        write_durably(&path, &bytes).with_context(|| format!("cannot write {}", path.display()))
    }

    pub(crate) fn find(&self, name: &str) -> Result<&Peer> {
        self.peers.iter().find(|p| p.name == name).with_context(|| {
            format!("no peer named `{name}` (see `archive peer ls`; pair with `archive peer add`)")
        })
    }

    pub(crate) fn trust(&self) -> Result<Trust> {
        let trust = Trust::default();
        self.fill(&trust)?;
        Ok(trust)
    }

    pub(crate) fn fill(&self, trust: &Trust) -> Result<()> {
        let mut all = Vec::new();
        for p in &self.peers {
            all.push((p.endpoint_id()?, p.policy()));
        }
        trust.replace(all);
        Ok(())
    }
}

/// A pairing asked for (`archive peer add`, or the peers page).
pub(crate) struct NewPeer {
    /// A ticket (`archive1...`) or a bare endpoint id.
    pub(crate) target: String,
    /// More direct addresses.
    pub(crate) addrs: Vec<SocketAddr>,
    /// Its name here [default: `peer-` and the id's first 8 characters].
    pub(crate) name: Option<String>,
    pub(crate) read: Option<Vec<String>>,
    pub(crate) write: Option<Vec<String>>,
}

/// What else learns of a change of the peers: the running server's trust list (who may
/// connect) and the messenger's live delivery. Both absent when no server runs.
#[derive(Clone, Copy, Default)]
pub(crate) struct Running<'a> {
    pub(crate) trust: Option<&'a Trust>,
    pub(crate) delivery: Option<&'a chat::Delivery>,
}

/// Pairs with a server: checks the ticket, the name and that it is not paired already, saves
/// `peers.json`, and tells the running server. Callers hold the peers lock.
pub(crate) fn pair(
    dir: &Path,
    own: &archive_core::PublicKey,
    new: NewPeer,
    running: Running<'_>,
) -> Result<Peer> {
    let mut peers = Peers::load(dir)?;
    let target = new.target.trim();
    let (id, mut addrs) = if target.starts_with("archive1") {
        let t: archive_net::Ticket = target.parse()?;
        (t.id, t.addrs)
    } else {
        let id: EndpointId = target.parse().map_err(|e| {
            anyhow::anyhow!("`{target}` is neither a ticket (archive1...) nor an endpoint id: {e}")
        })?;
        (id, Vec::new())
    };
    addrs.extend(new.addrs);
    addrs.dedup();
    if id.as_bytes() == own.as_bytes() {
        bail!("that is this server's own id");
    }
    let name = new
        .name
        .filter(|n| !n.trim().is_empty())
        .map(|n| n.trim().to_owned())
        .unwrap_or_else(|| format!("peer-{}", &id.to_string()[..8]));
    check_name(&name)?;
    if peers.peers.iter().any(|p| p.name == name) {
        bail!(
            "a peer named `{name}` exists already (remove it first with `archive peer rm {name}`)"
        );
    }
    if let Some(p) = peers.peers.iter().find(|p| p.id == id.to_string()) {
        bail!(
            "this server is paired already as `{}` (remove it first to change it)",
            p.name
        );
    }
    // `--write ""` (an empty list) means none.
    let clean = |list: Option<Vec<String>>| -> Result<Option<Vec<String>>> {
        let Some(list) = list else { return Ok(None) };
        let list: Vec<String> = list.into_iter().filter(|c| !c.is_empty()).collect();
        for c in &list {
            archive_core::validate_collection(c)?;
        }
        Ok(Some(list))
    };
    let peer = Peer {
        name,
        id: id.to_string(),
        addrs,
        read: clean(new.read)?,
        write: clean(new.write)?,
    };
    peers.peers.push(peer.clone());
    peers.save(dir)?;
    if let Some(trust) = running.trust {
        peers.fill(trust)?;
    }
    // The messenger delivers to it from now on, not only after a restart.
    if let Some(delivery) = running.delivery {
        delivery.add_peer(peer.endpoint_addr()?);
    }
    Ok(peer)
}

/// Unpairs `name`. Callers hold the peers lock.
pub(crate) fn unpair(dir: &Path, name: &str, running: Running<'_>) -> Result<()> {
    let mut peers = Peers::load(dir)?;
    let id = peers.find(name)?.endpoint_id()?;
    peers.peers.retain(|p| p.name != name);
    peers.save(dir)?;
    if let Some(trust) = running.trust {
        peers.fill(trust)?;
    }
    if let Some(delivery) = running.delivery {
        delivery.remove_peer(id);
    }
    Ok(())
}

/// Peer names: what people type; kept simple so they need no quoting.
pub(crate) fn check_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        bail!("peer name `{name}`: use 1 to 64 letters, digits, `-`, `_` or `.`");
    }
    Ok(())
}

/// Temp name, fsync, rename, fsync the folder: a crash leaves the old file or the new one.
pub(crate) fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("json.tmp");
    // The data folder's files are its owner's only (see archive-core's `private`).
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}
