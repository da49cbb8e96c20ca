//! Where the store lives when no `--data-dir` is given.

use std::path::PathBuf;

use anyhow::{bail, Result};

/// `--data-dir` / `ARCHIVE_DIR` if set, else `$XDG_DATA_HOME/archive`, else
/// `~/.local/share/archive`.
pub(crate) fn data_dir(flag: Option<PathBuf>) -> Result<PathBuf> {
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
