//! `archive key export | import`: a server's identity carried to a new disk
//! ([`crate::key_file`] is the sealed file's format).

use std::io::{BufRead, IsTerminal, Read, Write};

use anyhow::{bail, Context, Result};
use archive_core::{SecretKey, Store};
use serde_json::json;

use crate::cli::KeyCommand;
use crate::context::Ctx;
use crate::key_file;
use crate::output::{outln, print_json};

/// The passphrase from stdin: one line, or on a terminal asked without echo (twice for an
/// export).
pub(crate) fn passphrase_input(command: &KeyCommand) -> Result<Option<String>> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin
            .lock()
            .take(1026)
            .read_line(&mut line)
            .context("cannot read the passphrase from stdin")?;
        return Ok(Some(line.trim_end_matches(['\n', '\r']).to_owned()));
    }
    let first = crate::user_commands::ask_hidden("passphrase: ")?;
    if matches!(command, KeyCommand::Export { .. }) {
        if first.len() < key_file::MIN_PASSPHRASE_LEN {
            bail!(key_file::KeyFileError::ShortPassphrase);
        }
        let again = crate::user_commands::ask_hidden("the same passphrase again: ")?;
        if first != again {
            bail!("the two passphrases differ; nothing was written");
        }
    }
    Ok(Some(first))
}

pub(crate) fn key(ctx: &Ctx, command: KeyCommand, json: bool) -> Result<u8> {
    let passphrase = ctx.input.clone().unwrap_or_default();
    match command {
        KeyCommand::Export { file } => {
            let store = ctx.store()?;
            let sealed = key_file::seal(&store.secret_key().to_bytes(), &passphrase)?;
            write_new_private(&file, &sealed)?;
            if json {
                print_json(&json!({"file": file, "id": store.author().to_string()}))?;
            } else {
                outln!(
                    "wrote this server's key ({}) to {}, sealed with the passphrase; keep it off this server",
                    store.author(),
                    file.display()
                );
            }
        }
        KeyCommand::Import { file } => {
            let mut bytes = Vec::new();
            std::fs::File::open(&file)
                .and_then(|f| {
                    f.take(key_file::KEY_FILE_LEN as u64 + 1)
                        .read_to_end(&mut bytes)
                })
                .with_context(|| format!("cannot read {}", file.display()))?;
            let seed = key_file::open(&bytes, &passphrase)
                .with_context(|| format!("{}", file.display()))?;
            let key = SecretKey::from_bytes(seed);
            let store = Store::init_with_key(&ctx.dir, &key).map_err(|e| match e {
                archive_core::OpenError::AlreadyInitialized { dir } => anyhow::anyhow!(
                    "{} holds a store already; import a key only into a new, empty data folder (--data-dir)",
                    dir.display()
                ),
                other => other.into(),
            })?;
            if json {
                print_json(&json!({"dir": ctx.dir, "id": store.author().to_string()}))?;
            } else {
                outln!(
                    "created a store in {} with the key of {}; start it (archive serve) and sync from its peers",
                    ctx.dir.display(),
                    store.author()
                );
            }
        }
    }
    Ok(0)
}

/// Writes `bytes` to a new file (never over an existing one) readable by its owner only,
/// durably.
fn write_new_private(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}
