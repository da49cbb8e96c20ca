//! Cut-off mode on a real network: two servers in two network namespaces joined by a veth
//! pair, with no default route, find each other by mDNS (the peers are added by id only, no
//! address) and sync. A packet capture in both namespaces (an AF_PACKET socket opened inside
//! each, seeing every interface there) shows no packet to or from any address outside them.
//!
//! Needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and `ip` (iproute2); where a namespace cannot
//! be created the test says why and skips, unless `CI` is set (`.ci/run` sets it): then it
//! fails, so a machine that lost the capability cannot turn the test green by skipping.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::harness::{pseudo_random, read_tree, write_file, Archive, BIN};
use crate::network::{id_of, Serving};
use test_support::netns::{self, Link};

const SUBNET: [u8; 3] = [10, 77, 0];

fn ns_output(ns: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One captured packet's addresses (IPv4, IPv6, or ARP's protocol addresses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    src: IpAddr,
    dst: IpAddr,
}

/// What a capture saw: addresses of every IP or ARP packet, and descriptions of any other
/// frame.
#[derive(Default)]
struct Captured {
    seen: Vec<Seen>,
    unknown: Vec<String>,
}

/// A packet capture inside a namespace, on every interface there.
struct Capture {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Result<Captured, String>>,
}

impl Capture {
    /// Starts capturing; returns once the capture socket is open.
    fn start(ns: &str) -> Capture {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let ns_name = ns.to_owned();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let socket = open_capture_socket(&ns_name);
            let _ = ready_tx.send(());
            let socket = socket?;
            let mut captured = Captured::default();
            let mut buf = vec![0u8; 65_536];
            while !flag.load(Ordering::Relaxed) {
                // SAFETY: `buf` is valid for `buf.len()` bytes; the descriptor is ours.
                let n = unsafe {
                    libc::recv(socket.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0)
                };
                if n <= 0 {
                    continue; // the 100 ms receive timeout
                }
                match parse_frame(&buf[..n as usize]) {
                    Ok(s) => captured.seen.push(s),
                    Err(what) => captured.unknown.push(what),
                }
            }
            Ok(captured)
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("capture thread started");
        Capture { stop, thread }
    }

    fn finish(self) -> Captured {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap().unwrap()
    }
}

/// Enters the namespace (this thread only) and opens a raw packet socket there.
fn open_capture_socket(ns: &str) -> Result<File, String> {
    netns::enter(ns)?;
    // SAFETY: plain system calls on a descriptor we own.
    unsafe {
        let fd = libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW,
            i32::from((libc::ETH_P_ALL as u16).to_be()),
        );
        if fd < 0 {
            return Err(format!(
                "AF_PACKET socket: {}",
                std::io::Error::last_os_error()
            ));
        }
        let timeout = libc::timeval {
            tv_sec: 0,
            tv_usec: 100_000,
        };
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&timeout as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        );
        Ok(<File as std::os::fd::FromRawFd>::from_raw_fd(fd))
    }
}

/// Reads the addresses out of an Ethernet frame (veth and loopback both carry an Ethernet
/// header on packet sockets). Frames of any other kind (none expected) are reported.
fn parse_frame(frame: &[u8]) -> Result<Seen, String> {
    let short = || format!("short frame of {} bytes", frame.len());
    let ethertype = u16::from_be_bytes(frame.get(12..14).ok_or_else(short)?.try_into().unwrap());
    let body = &frame[14..];
    let v4 = |b: &[u8]| IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(b).unwrap()));
    let v6 = |b: &[u8]| IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(b).unwrap()));
    match ethertype {
        0x0800 if body.len() >= 20 => Ok(Seen {
            src: v4(&body[12..16]),
            dst: v4(&body[16..20]),
        }),
        0x86DD if body.len() >= 40 => Ok(Seen {
            src: v6(&body[8..24]),
            dst: v6(&body[24..40]),
        }),
        0x0806 if body.len() >= 28 => Ok(Seen {
            src: v4(&body[14..18]),
            dst: v4(&body[24..28]),
        }),
        other => Err(format!("ethertype {other:#06x}, {} bytes", frame.len())),
    }
}

/// Addresses that belong to the two namespaces or never leave a link: the veth subnet,
/// loopback, link-local unicast and link-local multicast (mDNS, IGMP, MLD, neighbour
/// discovery), and the unspecified address (duplicate address detection).
fn stays_inside(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => {
            let o = a.octets();
            o[..3] == SUBNET
                || a.is_loopback()
                || a.is_unspecified()
                || (o[0] == 224 && o[1] == 0 && o[2] == 0)
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            a.is_loopback() || a.is_unspecified() || s[0] & 0xffc0 == 0xfe80 || s[0] == 0xff02
        }
    }
}

fn is_mdns_group(addr: IpAddr) -> bool {
    addr == IpAddr::V4(Ipv4Addr::new(224, 0, 0, 251))
        || addr == IpAddr::V6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0xfb))
}

/// `archive serve` inside a namespace, mDNS on, bound to the namespace's own address.
fn serve_in(ns: &str, a: &Archive, bind: &str) -> Serving {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, BIN, "--data-dir"])
        .arg(a.data_dir())
        .args(["serve", "--bind", bind])
        .arg("--http")
        .arg(format!(
            "{}:0",
            bind.rsplit_once(':').map_or(bind, |(ip, _)| ip)
        ))
        .env_remove("ARCHIVE_DIR")
        .env("RUST_BACKTRACE", "1");
    Serving::spawn(c)
}

#[test]
fn servers_in_cut_off_namespaces_find_each_other_by_mdns_and_sync() {
    let Some(link) = Link::or_skip("archive", SUBNET) else {
        return;
    };
    for ns in &link.names {
        let routes = ns_output(ns, &["ip", "route", "show", "default"]);
        assert!(
            routes.trim().is_empty(),
            "{ns} has a default route: {routes}"
        );
    }
    let captures: Vec<Capture> = link.names.iter().map(|ns| Capture::start(ns)).collect();

    let net_json = r#"{"mdns": true, "timeout_secs": 10}"#;
    let a = Archive::initialised();
    let b = Archive::initialised();
    for s in [&a, &b] {
        std::fs::write(s.data_dir().join("net.json"), net_json).unwrap();
    }
    let tree = a.path("tree");
    for i in 0..50u64 {
        write_file(
            &tree.join(format!("f{i}.txt")),
            &pseudo_random(100 + i as usize * 97, i),
        );
    }
    write_file(&tree.join("big.bin"), &pseudo_random(3 << 20, 99));
    a.ok(&["add", tree.to_str().unwrap(), "--as", ""]);

    let server_a = serve_in(&link.names[0], &a, &format!("{}:7740", link.addr(0)));
    let server_b = serve_in(&link.names[1], &b, &format!("{}:7740", link.addr(1)));
    // Paired by id alone: the address has to come from mDNS.
    a.ok(&["peer", "add", &id_of(&b), "--name", "b"]);
    b.ok(&["peer", "add", &id_of(&a), "--name", "a"]);

    // mDNS announcements take a moment; retry until the peer is found.
    let deadline = Instant::now() + Duration::from_secs(60);
    let report = loop {
        let out = b.run(&["sync", "a", "--json"]);
        if out.status.success() {
            break serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "no sync within 60 s: {}\nA's log:\n{}\nB's log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            server_a.log(),
            server_b.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(report["entries_received"], 51, "{report}");
    b.ok(&["export", b.path("out").to_str().unwrap()]);
    assert!(read_tree(&b.path("out")) == read_tree(&tree));
    // And the other way: A pulls something B added.
    write_file(&b.path("note.txt"), b"from B");
    b.ok(&["add", b.path("note.txt").to_str().unwrap()]);
    let back = a.json(&["sync", "b"]);
    assert_eq!(back["entries_received"], 1, "{back}");

    drop(server_a);
    drop(server_b);
    let mut between = 0;
    let mut mdns = 0;
    for (ns, capture) in link.names.iter().zip(captures) {
        let Captured { seen, unknown } = capture.finish();
        assert!(
            unknown.is_empty(),
            "{ns}: frames of unknown kinds: {unknown:?}"
        );
        let outside: Vec<&Seen> = seen
            .iter()
            .filter(|s| !stays_inside(s.src) || !stays_inside(s.dst))
            .collect();
        assert!(
            outside.is_empty(),
            "{ns}: traffic with addresses outside the namespaces: {outside:?}"
        );
        let (x, y) = (IpAddr::V4(link.addr(0)), IpAddr::V4(link.addr(1)));
        between += seen
            .iter()
            .filter(|s| (s.src == x && s.dst == y) || (s.src == y && s.dst == x))
            .count();
        mdns += seen.iter().filter(|s| is_mdns_group(s.dst)).count();
    }
    eprintln!("captured: {between} packets between the servers, {mdns} mDNS packets, none outside");
    // The capture saw the sync itself and the mDNS traffic (so it was not blind).
    assert!(between > 100, "only {between} packets between the servers");
    assert!(mdns > 0, "no mDNS packets captured");
}
