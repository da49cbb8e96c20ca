//! Two network namespaces joined by a veth pair, for tests of servers on a real network that
//! the test can cut and heal. Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN) and `ip` (iproute2).

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::Command;

/// Runs `ip` with `args`; its error output on failure.
pub fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Two namespaces joined by a veth pair, with addresses `subnet.1` and `subnet.2` (/24) and
/// no other route. Deleted on drop (which also deletes the veth pair).
#[derive(Debug)]
pub struct Link {
    /// The namespaces' names.
    pub names: [String; 2],
    veth: [String; 2],
    subnet: [u8; 3],
}

impl Link {
    /// Creates the namespaces and the link, named after `tag` and this process.
    pub fn create(tag: &str, subnet: [u8; 3]) -> Result<Link, String> {
        let pid = std::process::id();
        let link = Link {
            names: [format!("{tag}-{pid}-a"), format!("{tag}-{pid}-b")],
            veth: [format!("{tag}a{pid}"), format!("{tag}b{pid}")],
            subnet,
        };
        for ns in &link.names {
            ip(&["netns", "add", ns])?;
        }
        ip(&[
            "link",
            "add",
            &link.veth[0],
            "type",
            "veth",
            "peer",
            "name",
            &link.veth[1],
        ])?;
        for (i, (ns, dev)) in link.names.iter().zip(&link.veth).enumerate() {
            ip(&["link", "set", dev, "netns", ns])?;
            let addr = format!("{}/24", link.addr(i));
            ip(&["-n", ns, "addr", "add", &addr, "dev", dev])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(link)
    }

    /// The address of side `i` (0 or 1).
    pub fn addr(&self, i: usize) -> Ipv4Addr {
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, i as u8 + 1)
    }

    /// Brings side 0's end of the link down (`false`: the sides are cut apart) or up.
    pub fn set_up(&self, up: bool) -> Result<(), String> {
        let state = if up { "up" } else { "down" };
        ip(&["-n", &self.names[0], "link", "set", &self.veth[0], state])
    }

    /// A link, or, where namespaces cannot be created, `None` after saying why; when `CI` is
    /// set a machine that cannot create them fails instead, so a lost capability cannot turn
    /// a test green by skipping.
    pub fn or_skip(tag: &str, subnet: [u8; 3]) -> Option<Link> {
        match Link::create(tag, subnet) {
            Ok(link) => Some(link),
            Err(why) => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "CI is set but network namespaces cannot be created: {why}"
                );
                eprintln!(
                    "SKIPPED: cannot create network namespaces here ({why}); set CI to fail instead"
                );
                None
            }
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        for ns in &self.names {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// Moves the calling thread into the network namespace `ns` (threads it starts afterwards
/// are born there; other threads stay where they are).
pub fn enter(ns: &str) -> Result<(), String> {
    let path = format!("/var/run/netns/{ns}");
    let file = File::open(&path).map_err(|e| format!("{path}: {e}"))?;
    // SAFETY: a plain system call on a descriptor we own; it affects only this thread.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(format!("setns {ns}: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}
