//! A small HTTP/1.1 client for the web UI's tests and its load benchmark: raw bytes in (any
//! method, path, header or body, valid or not), status, headers and body out, from a chosen
//! loopback address (the server's rate limits count per address), keeping cookies like a
//! browser.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// One client: its source address and its cookies.
pub struct Client {
    server: SocketAddr,
    source: IpAddr,
    /// Its cookies, as the server set them.
    pub cookies: BTreeMap<String, String>,
}

/// A response.
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The headers, as sent.
    pub headers: Vec<(String, String)>,
    /// The body (chunked encoding undone).
    pub body: Vec<u8>,
}

impl Reply {
    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the body when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text()))
    }
}

/// The server's address from its printed web address (`http://IP:PORT/`).
pub fn server_addr(web: &str) -> SocketAddr {
    web.trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap_or_else(|_| panic!("not an http://IP:PORT/ address: {web}"))
}

impl Client {
    /// A client at 127.0.0.1.
    pub fn new(server: SocketAddr) -> Client {
        Client::from_addr(server, [127, 0, 0, 1].into())
    }

    /// A client at another loopback address (127.0.0.0/8 is all loopback on Linux).
    pub fn from_addr(server: SocketAddr, source: IpAddr) -> Client {
        Client {
            server,
            source,
            cookies: BTreeMap::new(),
        }
    }

    /// The same client (same cookies) at another loopback address.
    pub fn at(&self, last_octet: u8) -> Client {
        Client {
            server: self.server,
            source: IpAddr::from([127, 0, 0, last_octet]),
            cookies: self.cookies.clone(),
        }
    }

    /// Sends one request on a new connection and reads the whole response.
    pub fn send(
        &mut self,
        method: &str,
        path: &[u8],
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        self.send_timed(method, path, headers, body).0
    }

    /// A connection from this client's address.
    fn connect(&self) -> TcpStream {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket
            .bind(&SocketAddr::new(self.source, 0).into())
            .unwrap();
        socket.connect(&self.server.into()).unwrap();
        socket.set_tcp_nodelay(true).unwrap();
        socket.into()
    }

    /// [`Client::send`], and the time from sending to the response's first byte.
    pub fn send_timed(
        &mut self,
        method: &str,
        path: &[u8],
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (Reply, Duration) {
        let mut stream = self.connect();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut request = Vec::new();
        request.extend_from_slice(method.as_bytes());
        request.push(b' ');
        request.extend_from_slice(path);
        request.extend_from_slice(b" HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            request.extend_from_slice(format!("Cookie: {}\r\n", jar.join("; ")).as_bytes());
        }
        for (k, v) in headers {
            request.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        request.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        request.extend_from_slice(body);
        // The server may answer (and close) before reading a refused body whole.
        let started = Instant::now();
        let _ = stream.write_all(&request);
        let mut reader = BufReader::new(stream);
        let _ = reader.fill_buf();
        let first_byte = started.elapsed();
        let reply = read_reply(&mut reader);
        for (k, v) in &reply.headers {
            if k.eq_ignore_ascii_case("set-cookie") {
                let pair = v.split(';').next().unwrap_or("");
                if let Some((name, value)) = pair.split_once('=') {
                    if value.is_empty() || v.contains("Max-Age=0") {
                        self.cookies.remove(name);
                    } else {
                        self.cookies.insert(name.to_owned(), value.to_owned());
                    }
                }
            }
        }
        (reply, first_byte)
    }

    /// Opens a server-sent event stream: its status, and the reader positioned at the
    /// first event (read them with [`next_event`]).
    pub fn events(&mut self, path: &str, headers: &[(&str, &str)]) -> (u16, BufReader<TcpStream>) {
        let stream = self.connect();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut w = stream.try_clone().unwrap();
        let jar: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: test\r\nCookie: {}\r\n",
            jar.join("; ")
        );
        for (k, v) in headers {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str("\r\n");
        w.write_all(request.as_bytes()).unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            if line.trim_end().is_empty() {
                break;
            }
        }
        (status, reader)
    }

    /// A GET.
    pub fn get(&mut self, path: &str) -> Reply {
        self.send("GET", path.as_bytes(), &[], b"")
    }

    /// A form post, carrying `csrf` as the page's forms do.
    pub fn form(&mut self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let body = serde_urlencoded::to_string(fields).unwrap();
        self.send(
            "POST",
            path.as_bytes(),
            &[("Content-Type", "application/x-www-form-urlencoded")],
            body.as_bytes(),
        )
    }

    /// A JSON call with the CSRF header.
    pub fn api(&mut self, method: &str, path: &str, csrf: &str, body: &serde_json::Value) -> Reply {
        let body = serde_json::to_vec(body).unwrap();
        self.send(
            method,
            path.as_bytes(),
            &[("Content-Type", "application/json"), ("X-CSRF-Token", csrf)],
            &body,
        )
    }

    /// The pre-session token the sign-in form carries (from `GET /api/session`).
    pub fn pre_token(&mut self) -> String {
        let r = self.get("/api/session");
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["csrf"].as_str().unwrap().to_owned()
    }

    /// Signs in with the form; the session's CSRF token.
    pub fn sign_in(&mut self, name: &str, password: &str) -> String {
        let pre = self.pre_token();
        let r = self.form(
            "/login",
            &[("csrf", &pre), ("name", name), ("password", password)],
        );
        assert_eq!(r.status, 303, "sign-in of {name}: {}", r.text());
        assert_eq!(r.header("location"), Some("/rooms"));
        self.session_csrf()
    }

    /// The signed-in session's CSRF token.
    pub fn session_csrf(&mut self) -> String {
        let r = self.get("/api/session");
        r.json()["csrf"].as_str().unwrap().to_owned()
    }
}

fn read_reply(r: &mut impl BufRead) -> Reply {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {line:?}"));
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line).unwrap();
            let size = usize::from_str_radix(line.trim(), 16).unwrap_or(0);
            if size == 0 {
                break;
            }
            let mut chunk = vec![0; size];
            r.read_exact(&mut chunk).unwrap();
            body.extend_from_slice(&chunk);
            line.clear();
            r.read_line(&mut line).unwrap();
        }
    } else {
        let _ = r.read_to_end(&mut body);
    }
    Reply {
        status,
        headers,
        body,
    }
}

/// One server-sent event: its name, id (if any) and data. Comments (keep-alives) and the
/// chunked encoding's size lines are skipped.
pub fn next_event(r: &mut BufReader<TcpStream>) -> (String, Option<String>, String) {
    let (mut event, mut id, mut data) = (String::new(), None, String::new());
    let mut line = String::new();
    loop {
        line.clear();
        let n = r.read_line(&mut line).expect("an event within 20 s");
        assert!(n > 0, "the event stream ended");
        let l = line.trim_end_matches(['\r', '\n']);
        if let Some(v) = l.strip_prefix("event:") {
            event = v.trim().to_owned();
        } else if let Some(v) = l.strip_prefix("id:") {
            id = Some(v.trim().to_owned());
        } else if let Some(v) = l.strip_prefix("data:") {
            data.push_str(v.strip_prefix(' ').unwrap_or(v));
        } else if l.is_empty() && !event.is_empty() {
            return (event, id, data);
        }
    }
}
