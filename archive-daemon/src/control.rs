//! The local control socket: while `archive serve` holds the store, other `archive` commands
//! on the same data folder run inside the server and get their output back through it.
//!
//! Client to server: one line of JSON, `{"args": [...], "cwd": "..."}` (at most 1 MiB).
//! Server to client: frames of `tag (1 byte) || length (u32 LE) || bytes`, tag 1 = stdout,
//! 2 = stderr, 0 = the exit code (one byte) and the end.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// The socket's name in the data folder.
pub(crate) const SOCKET: &str = "control.sock";
const MAX_REQUEST: u64 = 1024 * 1024;
const MAX_FRAME: usize = 64 * 1024 * 1024;

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Request {
    pub(crate) args: Vec<String>,
    pub(crate) cwd: PathBuf,
}

/// Runs the command in the server if one runs for `dir`; `None` when none does.
pub(crate) fn forward(dir: &Path, args: Vec<String>) -> Result<Option<u8>> {
    let path = dir.join(SOCKET);
    let mut stream = match UnixStream::connect(&path) {
        Ok(s) => s,
        // No socket, or a stale one from a server that died: no server runs.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(e).context(format!("cannot reach the server at {}", path.display())),
    };
    let request = Request {
        args,
        cwd: std::env::current_dir().context("cannot read the current folder")?,
    };
    let mut line = serde_json::to_vec(&request)?;
    line.push(b'\n');
    stream.write_all(&line)?;
    let mut stdout = io::stdout().lock();
    let mut stderr = io::stderr().lock();
    loop {
        let mut head = [0u8; 5];
        stream
            .read_exact(&mut head)
            .context("the server closed the control connection early")?;
        let len = u32::from_le_bytes(head[1..].try_into().expect("4 bytes")) as usize;
        if len > MAX_FRAME {
            anyhow::bail!("the server sent an oversized frame");
        }
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body)?;
        match head[0] {
            0 => return Ok(Some(body.first().copied().unwrap_or(1))),
            1 => stdout.write_all(&body)?,
            2 => stderr.write_all(&body)?,
            t => anyhow::bail!("the server sent an unknown frame {t}"),
        }
    }
}

/// Reads a request from a client connection.
pub(crate) fn read_request(stream: &UnixStream) -> Result<Request> {
    let mut line = Vec::new();
    BufReader::new(stream.take(MAX_REQUEST)).read_until(b'\n', &mut line)?;
    serde_json::from_slice(&line).context("a bad control request")
}

/// Sends a forwarded command's output to its client.
pub(crate) struct SocketSink(pub(crate) UnixStream);

impl SocketSink {
    fn frame(&mut self, tag: u8, bytes: &[u8]) -> io::Result<()> {
        for piece in bytes
            .chunks(MAX_FRAME)
            .chain(bytes.is_empty().then_some(&[][..]))
        {
            let mut head = [tag, 0, 0, 0, 0];
            head[1..].copy_from_slice(&(piece.len() as u32).to_le_bytes());
            self.0.write_all(&head)?;
            self.0.write_all(piece)?;
        }
        Ok(())
    }

    pub(crate) fn exit(mut self, code: u8) -> io::Result<()> {
        self.frame(0, &[code])
    }
}

impl crate::output::Sink for SocketSink {
    fn write(&mut self, err: bool, bytes: &[u8]) -> io::Result<()> {
        self.frame(if err { 2 } else { 1 }, bytes)
    }
}
