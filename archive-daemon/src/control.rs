//! The local control socket: while `archive serve` holds the store, other `archive` commands
//! on the same data folder run inside the server and get their output back through it.
//!
//! Client to server: one line of JSON, `{"args": [[bytes]...], "cwd": [bytes]}` (at most
//! 1 MiB; arguments and folder as raw bytes, so names that are not UTF-8 travel intact).
//! Server to client: frames of `tag (1 byte) || length (u32 LE) || bytes`, tag 1 = stdout,
//! 2 = stderr, 0 = the exit code (one byte) and the end.
//!
//! Who may talk to whom: the client talks only to a socket owned by its own user or by root
//! (another local user could have planted one, to read the commands and feed back output);
//! the server serves only clients whose kernel-reported credentials (`SO_PEERCRED`) are its
//! own user, root, or a member of the admin group it was given.

use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::unistd::{Gid, Uid};
use serde::{Deserialize, Serialize};

/// The socket's name in the data folder.
pub(crate) const SOCKET: &str = "control.sock";
const MAX_REQUEST: u64 = 1024 * 1024;
const MAX_FRAME: usize = 64 * 1024 * 1024;

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Request {
    args: Vec<Vec<u8>>,
    cwd: Vec<u8>,
    /// What the client read from its stdin for the command (a password), if anything.
    #[serde(default)]
    input: Option<String>,
}

impl Request {
    /// The arguments, as the client's command line had them.
    pub(crate) fn args(&self) -> impl Iterator<Item = OsString> + '_ {
        self.args.iter().map(|a| OsString::from_vec(a.clone()))
    }

    /// What the client read from its stdin for the command.
    pub(crate) fn input(&self) -> Option<String> {
        self.input.clone()
    }

    /// The client's current folder.
    pub(crate) fn cwd(&self) -> PathBuf {
        PathBuf::from(OsString::from_vec(self.cwd.clone()))
    }
}

/// Runs the command in the server if one runs for `dir`; `None` when none does (or when this
/// user cannot even look into the data folder: opening the store then says why).
pub(crate) fn forward(
    dir: &Path,
    args: Vec<OsString>,
    input: Option<String>,
) -> Result<Option<u8>> {
    let path = dir.join(SOCKET);
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(e).context(format!("cannot look at {}", path.display())),
    };
    let me = Uid::effective().as_raw();
    if !meta.file_type().is_socket() {
        bail!(
            "{} is not a socket; it is not this program's control socket (remove it)",
            path.display()
        );
    }
    // The owner of a data folder no one else may write to (a packaged server's, run by its
    // own system user) is the only one who could have put a socket in it: root's commands
    // reach that server.
    let placed_by_folder_owner = std::fs::metadata(dir).is_ok_and(|d| {
        use std::os::unix::fs::PermissionsExt;
        d.uid() == meta.uid() && d.permissions().mode() & 0o022 == 0
    });
    if meta.uid() != me && meta.uid() != 0 && !placed_by_folder_owner {
        bail!(
            "refusing to use the control socket {}: it belongs to user id {}, not to this user or root (another user may have planted it; remove it)",
            path.display(),
            meta.uid()
        );
    }
    let mut stream = match UnixStream::connect(&path) {
        Ok(s) => s,
        // A stale socket from a server that died: no server runs.
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => return Ok(None),
        Err(e) => return Err(e).context(format!("cannot reach the server at {}", path.display())),
    };
    let request = Request {
        args: args.into_iter().map(OsString::into_vec).collect(),
        cwd: std::env::current_dir()
            .context("cannot read the current folder")?
            .into_os_string()
            .into_vec(),
        input,
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
            bail!("the server sent an oversized frame");
        }
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body)?;
        match head[0] {
            0 => return Ok(Some(body.first().copied().unwrap_or(1))),
            1 => stdout.write_all(&body)?,
            2 => stderr.write_all(&body)?,
            t => bail!("the server sent an unknown frame {t}"),
        }
    }
}

/// Who may run commands through the server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Admins {
    /// The server's own user.
    pub(crate) owner: u32,
    /// A group whose members may administer it too.
    pub(crate) group: Option<u32>,
}

impl Admins {
    /// The server's user, and the admin group named `group` (which must exist).
    pub(crate) fn new(group: Option<&str>) -> Result<Self> {
        let group = match group {
            None => None,
            Some(name) => Some(
                nix::unistd::Group::from_name(name)
                    .with_context(|| format!("cannot look up group `{name}`"))?
                    .with_context(|| format!("there is no group `{name}`"))?
                    .gid
                    .as_raw(),
            ),
        };
        Ok(Admins {
            owner: Uid::effective().as_raw(),
            group,
        })
    }

    /// Whether a client with these credentials may run commands.
    pub(crate) fn allow(&self, uid: u32, gid: u32) -> bool {
        if uid == self.owner || uid == 0 {
            return true;
        }
        let Some(group) = self.group else {
            return false;
        };
        gid == group || member_of(uid, gid, group)
    }
}

/// True when user `uid` (primary group `gid`) is a member of `group`.
fn member_of(uid: u32, gid: u32, group: u32) -> bool {
    let Ok(Some(user)) = nix::unistd::User::from_uid(Uid::from_raw(uid)) else {
        return false;
    };
    let Ok(name) = std::ffi::CString::new(user.name.as_bytes()) else {
        return false;
    };
    nix::unistd::getgrouplist(&name, Gid::from_raw(gid))
        .is_ok_and(|groups| groups.iter().any(|g| g.as_raw() == group))
}

/// Reads a request from a client and checks who it is. The request is read first even from a
/// client that is refused: closing a socket with unread data resets it, and the client would
/// not see why it was refused.
pub(crate) fn read_request(stream: &UnixStream, admins: &Admins) -> Result<Request> {
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    let mut line = Vec::new();
    BufReader::new(stream.take(MAX_REQUEST)).read_until(b'\n', &mut line)?;
    let creds = nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::PeerCredentials)
        .context("cannot tell who is on the control socket")?;
    if !admins.allow(creds.uid(), creds.gid()) {
        bail!(
            "refused a control connection from user id {} (pid {}): not this server's user, root or its admin group",
            creds.uid(),
            creds.pid()
        );
    }
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

    /// Tells a refused client why, on its stderr, and ends.
    pub(crate) fn refuse(mut self, why: &str) {
        let _ = self.frame(2, format!("archive: error: {why}\n").as_bytes());
        let _ = self.exit(1);
    }
}

impl crate::output::Sink for SocketSink {
    fn write(&mut self, err: bool, bytes: &[u8]) -> io::Result<()> {
        self.frame(if err { 2 } else { 1 }, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn only_the_owner_root_and_the_admin_group_are_served() {
        let admins = Admins {
            owner: 1000,
            group: None,
        };
        assert!(admins.allow(1000, 1000));
        assert!(admins.allow(0, 0));
        assert!(!admins.allow(1001, 1001));
        let with_group = Admins {
            owner: 1000,
            group: Some(4242),
        };
        assert!(with_group.allow(1001, 4242), "primary group");
        assert!(!with_group.allow(1001, 1001));
    }

    #[test]
    fn arguments_that_are_not_utf8_travel_intact() {
        let arg = OsString::from_vec(vec![b'a', 0xff, b'b']);
        let request = Request {
            args: vec![arg.clone().into_vec()],
            cwd: b"/tmp/\xfe".to_vec(),
            input: Some("a password".into()),
        };
        let line = serde_json::to_vec(&request).unwrap();
        let back: Request = serde_json::from_slice(&line).unwrap();
        assert_eq!(back.args().collect::<Vec<_>>(), vec![arg]);
        assert_eq!(back.cwd().as_os_str().as_bytes(), b"/tmp/\xfe");
        assert_eq!(back.input().as_deref(), Some("a password"));
        // A request of an older client has no input.
        let old: Request = serde_json::from_slice(br#"{"args":[],"cwd":[]}"#).unwrap();
        assert_eq!(old.input(), None);
    }
}
