//! What to do about an error, in this command's words: the libraries say what went wrong; the
//! advice that names a command, a flag or a shell step is added here, from the typed error.

use archive_core::{AddError, EntryError, OpenError, TransferError};
use archive_net::{NetError, TicketError};

/// A line of advice for `err`, if one of its causes is an error we know what to do about.
pub(crate) fn hint(err: &anyhow::Error) -> Option<String> {
    err.chain().find_map(|cause| {
        if let Some(e) = cause.downcast_ref::<OpenError>() {
            return open(e);
        }
        if let Some(e) = cause.downcast_ref::<EntryError>() {
            return entry(e);
        }
        if let Some(TransferError::Entry(e)) = cause.downcast_ref::<TransferError>() {
            return entry(e);
        }
        if let Some(AddError::NeedsKey { .. }) = cause.downcast_ref::<AddError>() {
            return Some("give the key with --as KEY".into());
        }
        if let Some(e) = cause.downcast_ref::<NetError>() {
            return net(e);
        }
        if cause.downcast_ref::<TicketError>().is_some() {
            return Some(
                "copy the whole ticket that `archive id` prints on the other server".into(),
            );
        }
        None
    })
}

fn open(e: &OpenError) -> Option<String> {
    match e {
        OpenError::NotInitialized { .. } => {
            Some("create a store with `archive init`, or name another with --data-dir".into())
        }
        OpenError::NewerFormat { .. } => Some("this store needs a newer version of archive".into()),
        OpenError::NotOwner { .. } => Some("run archive as the user who owns the folder".into()),
        OpenError::Exposed { dir, .. } => {
            Some(format!("make it private: chmod 700 {}", dir.display()))
        }
        _ => None,
    }
}

fn entry(e: &EntryError) -> Option<String> {
    match e {
        EntryError::TooFarAhead { .. } => Some(
            "if this server's clock is far behind, set it; the entry is taken at a later sync"
                .into(),
        ),
        _ => None,
    }
}

fn net(e: &NetError) -> Option<String> {
    match e {
        NetError::NotPaired(_) => Some(
            "the other server does not know this one: pair it there with \
             `archive peer add <this server's id>` (see `archive id`)"
                .into(),
        ),
        NetError::NotAllowed(_) => Some(
            "what a peer may read and write is set with `archive peer add NAME --read ... --write ...`"
                .into(),
        ),
        NetError::TooManyEntries { .. } => Some(
            "remove what it brought with `archive peer purge NAME`, or raise `peer_entries` under [quotas] in archive.toml"
                .into(),
        ),
        NetError::Connect { .. } => Some(
            "check that the other server runs `archive serve` and that its address is right (`archive peer ls`)"
                .into(),
        ),
        NetError::Entry(e) => entry(e),
        NetError::Transfer(TransferError::Entry(e)) => entry(e),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_name_the_step_for_typed_causes_only() {
        let dir = std::path::PathBuf::from("/srv/archive");
        let exposed = anyhow::Error::new(OpenError::Exposed {
            dir: dir.clone(),
            mode: 0o755,
        })
        .context("opening the store");
        assert_eq!(
            hint(&exposed).as_deref(),
            Some("make it private: chmod 700 /srv/archive")
        );
        let missing = anyhow::Error::new(OpenError::NotInitialized { dir });
        assert!(hint(&missing).unwrap().contains("archive init"));
        let refused = anyhow::Error::new(NetError::NotPaired("endpoint x is not paired".into()));
        assert!(hint(&refused).unwrap().contains("archive peer add"));
        assert_eq!(hint(&anyhow::anyhow!("something else")), None);
    }
}
