//! `archive serve` under a service manager: the sd_notify protocol systemd's `Type=notify`
//! and `WatchdogSec=` use, spoken to a datagram socket the test holds as systemd would.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use crate::harness::Archive;
use crate::network::Serving;

#[test]
fn serve_tells_the_service_manager_it_is_ready_then_feeds_the_watchdog_then_stops() {
    let a = Archive::initialised();
    std::fs::write(
        a.data_dir().join("archive.toml"),
        "[network]\nmdns = false\n",
    )
    .unwrap();
    let socket_path = a.path("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut serve = a.command(&["serve", "--bind", "127.0.0.1:0", "--http", "127.0.0.1:0"]);
    serve
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "1000000");
    let server = Serving::spawn(serve);
    let mut said = Vec::new();
    let mut buf = [0u8; 512];
    let start = Instant::now();
    while said
        .iter()
        .filter(|m: &&String| m.contains("WATCHDOG=1"))
        .count()
        < 3
    {
        assert!(start.elapsed() < Duration::from_secs(20), "{said:?}");
        let n = socket.recv(&mut buf).expect("a notification");
        said.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert_eq!(said[0], "READY=1\n", "ready first: {said:?}");
    // Fed about twice a second (half the watchdog's second), not in a busy loop.
    assert!(start.elapsed() >= Duration::from_millis(900), "{said:?}");
    // SIGTERM (systemctl stop): it says it is stopping, and exits cleanly.
    // SAFETY: kill(2) on the server's own process id.
    assert_eq!(unsafe { libc::kill(server.pid() as i32, libc::SIGTERM) }, 0);
    loop {
        let n = socket.recv(&mut buf).expect("STOPPING=1");
        if &buf[..n] == b"STOPPING=1\n" {
            break;
        }
    }
    assert!(
        !server.log().contains("cannot tell systemd"),
        "{}",
        server.log()
    );
}
