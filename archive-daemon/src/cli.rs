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
    /// Show what changed between snapshots, or between a folder and the archive
    Diff {
        /// Older snapshot
        #[arg(required_unless_present = "dir", conflicts_with = "dir")]
        from: Option<String>,
        /// Newer snapshot [default: the current view]
        to: Option<String>,
        /// Compare this folder with the archive (what `archive add` would change)
        #[arg(long, value_name = "PATH")]
        dir: Option<PathBuf>,
        /// With --dir: the key prefix the folder was added under
        #[arg(long = "as", value_name = "PREFIX", requires = "dir")]
        as_key: Option<String>,
        #[command(flatten)]
        collection: CollectionArg,
    },
    /// Re-hash everything; exit 0 only if all is intact
    Verify,
    /// Remove content that no view or snapshot needs
    Gc,
    /// Show totals for the store
    Stats,
    /// List collections
    Collections,
}
