//! Command-line flags as parsed by clap: the raw layer. `main.rs` turns them into calls.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// A community archive: content-addressed, deduplicated, verified storage.
#[derive(Debug, Parser)]
#[command(name = "archive", version, about, long_about = None)]
pub(crate) struct Cli {
    /// Data folder of the store [default: $XDG_DATA_HOME/archive or ~/.local/share/archive]
    #[arg(long, global = true, env = "ARCHIVE_DIR", value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,

    /// Settings file [default: /etc/archive/archive.toml when it exists and no data folder
    /// is named, else archive.toml in the data folder]
    #[arg(long, global = true, env = "ARCHIVE_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,

    /// Print machine-readable JSON instead of text (listings and summaries)
    #[arg(long, global = true)]
    pub(crate) json: bool,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Args)]
pub(crate) struct CollectionArg {
    /// Collection to use
    #[arg(long, short = 'c', value_name = "C", default_value = archive_core::DEFAULT_COLLECTION)]
    pub(crate) collection: String,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create a new store (and its signing key) in the data folder
    Init,
    /// Add files and folders (recursively); symlinks and special files are skipped
    Add {
        /// Files or folders to add
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        collection: CollectionArg,
        /// Key for a single file, or key prefix for a single folder ("" puts its contents at the root)
        #[arg(long = "as", value_name = "PREFIX")]
        as_key: Option<String>,
    },
    /// List files (at or under PREFIX)
    Ls {
        /// Only keys at or under this path
        #[arg(default_value = "")]
        prefix: String,
        #[command(flatten)]
        collection: CollectionArg,
        /// List a snapshot instead of the current view
        #[arg(long, value_name = "S")]
        snapshot: Option<String>,
    },
    /// Every version of a key this store has (files and removals), oldest first; an old
    /// version's content is `archive get --hash HASH`
    History {
        /// Key of the file
        key: String,
        #[command(flatten)]
        collection: CollectionArg,
    },
    /// Write a file's content to stdout or a file
    Get {
        /// Key of the file
        #[arg(required_unless_present = "hash", conflicts_with = "hash")]
        key: Option<String>,
        /// Get by BLAKE3 hash (as `b3sum` prints it) instead of by key
        #[arg(long, value_name = "HASH")]
        hash: Option<String>,
        /// Write to FILE instead of stdout
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
        #[command(flatten)]
        collection: CollectionArg,
        /// Read the key from a snapshot
        #[arg(long, value_name = "S", conflicts_with = "hash")]
        snapshot: Option<String>,
    },
    /// Write every file of a collection (or snapshot) under DEST
    Export {
        /// Destination folder (created if missing)
        dest: PathBuf,
        #[command(flatten)]
        collection: CollectionArg,
        /// Export a snapshot instead of the current view
        #[arg(long, value_name = "S")]
        snapshot: Option<String>,
        /// Overwrite files in DEST whose content differs
        #[arg(long)]
        force: bool,
    },
    /// Remove keys (writes tombstones; content stays until no snapshot needs it and gc runs)
    Rm {
        /// Keys to remove
        #[arg(required = true, value_name = "KEY")]
        keys: Vec<String>,
        #[command(flatten)]
        collection: CollectionArg,
        /// Remove every key under each KEY taken as a folder
        #[arg(short, long)]
        recursive: bool,
    },
    /// Name the current state of a collection
    Snapshot {
        /// Snapshot name
        name: String,
        #[command(flatten)]
        collection: CollectionArg,
    },
    /// List snapshots
    Snapshots,
    /// Show what changed between snapshots, between a folder and the archive, or between this
    /// server and a peer (--peer: reconciliation only, nothing is transferred)
    Diff {
        /// Older snapshot
        #[arg(required_unless_present_any = ["dir", "peer"], conflicts_with_all = ["dir", "peer"])]
        from: Option<String>,
        /// Newer snapshot [default: the current view]
        to: Option<String>,
        /// Compare this folder with the archive (what `archive add` would change)
        #[arg(long, value_name = "PATH")]
        dir: Option<PathBuf>,
        /// With --dir: the key prefix the folder was added under
        #[arg(long = "as", value_name = "PREFIX", requires = "dir")]
        as_key: Option<String>,
        /// Compare with this paired peer: what each side has that the other lacks
        #[arg(long, value_name = "NAME", conflicts_with = "dir")]
        peer: Option<String>,
        #[command(flatten)]
        collection: CollectionArg,
    },
    /// Check the database file and re-hash everything; exit 0 only if all is intact
    Verify,
    /// Repair what can be repaired (needs the server stopped): check the database file,
    /// remove entries dated past the year 2109 that a peer pushed before times had a limit,
    /// and set the clock back so new writes win again
    Doctor,
    /// Remove content that no view or snapshot needs
    Gc,
    /// Show totals for the store
    Stats,
    /// List collections
    Collections,
    /// Print this server's endpoint id and a ticket other servers pair with
    Id,
    /// Whether the server runs, its disk, and each peer's last sync of each collection (when,
    /// how much, or why it failed)
    Status,
    /// Print the settings in effect, as archive.toml says them, and which file they come from
    Config,
    /// Move this server's identity to a new disk: its secret key sealed with a passphrase
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Pair with other servers, list and remove them
    Peer {
        #[command(subcommand)]
        command: PeerCommand,
    },
    /// Run the community server in the foreground: the web UI (chat) for people on the local
    /// network, paired peers, and the other commands on this data folder through a local
    /// control socket, and the scheduled syncs of archive.toml. Creates the store on first start.
    Serve {
        /// Listen address for peers [default: 0.0.0.0:7740, or `network.bind` in archive.toml]
        #[arg(long, value_name = "IP:PORT")]
        bind: Option<std::net::SocketAddr>,
        /// Address of the web UI [default: 0.0.0.0:8080, or `web.http` in archive.toml]
        #[arg(long, value_name = "IP:PORT")]
        http: Option<std::net::SocketAddr>,
        /// Neither announce this server nor look for others on the local network (mDNS),
        /// whatever archive.toml says
        #[arg(long)]
        no_mdns: bool,
        /// Members of this group may also run commands through the server's control socket
        /// (besides its own user and root)
        #[arg(long, value_name = "GROUP")]
        admin_group: Option<String>,
    },
    /// The people who sign in to the web UI: add, list, set a password, remove
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Sync a collection with a paired peer: both ways unless --pull or --push
    Sync {
        /// The peer's name (see `archive peer ls`)
        peer: String,
        #[command(flatten)]
        collection: CollectionArg,
        /// Only fetch what the peer has and this server lacks
        #[arg(long, conflicts_with = "push")]
        pull: bool,
        /// Only give the peer what it lacks
        #[arg(long)]
        push: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Add a person; the password is read from stdin (one line). The server's first person
    /// is its admin; everyone else usually joins with an invite from the admin page
    Add {
        /// The account name (letters, digits, `-`, `_`, `.`): how they sign in, for good
        name: String,
        /// Make them an admin of this server
        #[arg(long)]
        admin: bool,
        /// The name others see [default: NAME]
        #[arg(long, value_name = "TEXT")]
        display_name: Option<String>,
    },
    /// List the people of this server
    Ls,
    /// Set a person's password (read from stdin); their sessions end
    Passwd {
        /// The account name
        name: String,
    },
    /// Remove a person: they can no longer sign in (what they wrote stays)
    Rm {
        /// The account name
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeyCommand {
    /// Write this server's secret key, sealed with a passphrase (read from stdin), to FILE
    /// (a new file, readable by you only). Keep it off the server: with it and the passphrase,
    /// anyone can act as this server.
    Export {
        /// The file to write
        file: PathBuf,
    },
    /// Create the store in an empty data folder with the key in FILE (passphrase from stdin):
    /// the new disk is the same server to its peers. Then sync from them, or restore a backup
    Import {
        /// A file `archive key export` wrote
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum PeerCommand {
    /// Pair with a server: by ticket (from its `archive id`), or by endpoint id and address
    Add {
        /// A ticket, or an endpoint id (then give --addr, or rely on mDNS on the local network)
        target: String,
        /// The peer's address (repeatable); with an endpoint id
        #[arg(long, value_name = "IP:PORT")]
        addr: Vec<std::net::SocketAddr>,
        /// A name to refer to it by [default: peer-<first 8 characters of its id>]
        #[arg(long)]
        name: Option<String>,
        /// Collections it may read (comma-separated) [default: all]
        #[arg(long, value_delimiter = ',', value_name = "C,...")]
        read: Option<Vec<String>>,
        /// Collections whose entries we accept from it, whether it pushes them or we pull
        /// them (comma-separated; "" for none: a read-only peer) [default: all]
        #[arg(long, value_delimiter = ',', value_name = "C,...")]
        write: Option<Vec<String>>,
    },
    /// List paired peers
    Ls,
    /// Unpair a peer
    Rm {
        /// Its name
        name: String,
    },
    /// Remove every entry a peer brought (from views, history and sync state) and refuse them
    /// from now on; run `archive gc` afterwards to free their content
    Purge {
        /// Its name
        name: String,
    },
}

impl Command {
    /// Makes relative paths absolute against `cwd` (for commands run by a server on behalf
    /// of a client in another folder).
    pub(crate) fn resolve_paths(&mut self, cwd: &std::path::Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = cwd.join(&*p);
            }
        };
        match self {
            Command::Add { paths, .. } => paths.iter_mut().for_each(fix),
            Command::Get {
                output: Some(p), ..
            }
            | Command::Diff { dir: Some(p), .. } => fix(p),
            Command::Export { dest, .. } => fix(dest),
            Command::Key {
                command: KeyCommand::Export { file } | KeyCommand::Import { file },
            } => fix(file),
            _ => {}
        }
    }
}
