//! The report queue: a person reports a message to their server's moderators, who see the
//! open reports and resolve them. Reports are the server's own business: kept in
//! `local/chat/reports`, which no peer reads (`archive_net::LOCAL_PREFIX`).

use archive_core::ViewPoint;

use crate::engine::Chat;
use crate::error::ChatError;
use crate::format::{Report, Resolution, ServerRole};
use crate::names::{MessageId, RoomId};

/// Where reports are kept.
pub const REPORTS_COLLECTION: &str = "local/chat/reports";

/// A report in the queue, with its key (what [`Chat::resolve_report`] takes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedReport {
    /// Its key in the queue: when it was made, and by whom.
    pub key: String,
    /// The reporter's account.
    pub by: String,
    /// The report.
    pub report: Report,
}

impl Chat {
    /// Reports `message` of `room` to this server's moderators (paced like a message).
    pub fn report(
        &self,
        account: &str,
        room: &RoomId,
        message: &MessageId,
        reason: &str,
    ) -> Result<String, ChatError> {
        let report = Report {
            room: *room,
            message: message.clone(),
            reason: reason.to_owned(),
            resolved: None,
        };
        report.check().map_err(|e| ChatError::Invalid(e.0))?;
        if self.message(room, message)?.is_none() {
            return Err(ChatError::NoSuchMessage(message.message_key()));
        }
        self.paced(account, 1)?;
        let key = format!("r/{:016x}/{account}", self.store().next_time().raw());
        self.store()
            .collection(REPORTS_COLLECTION)?
            .add_bytes(&key, &report.encode())?;
        Ok(key)
    }

    /// The reports in the queue, oldest first (only the open ones unless `resolved`), for a
    /// moderator or admin of this server.
    pub fn reports(&self, by: &str, resolved: bool) -> Result<Vec<QueuedReport>, ChatError> {
        self.moderator(by)?;
        let queue = self.store().collection(REPORTS_COLLECTION)?;
        let mut out = Vec::new();
        for item in queue.list(ViewPoint::Current, "r")? {
            let item = item?;
            let mut bytes = Vec::new();
            self.store().blobs().write_to(&item.file, &mut bytes)?;
            let Ok(report) = Report::decode(&bytes) else {
                continue;
            };
            if report.resolved.is_some() && !resolved {
                continue;
            }
            let by = item.key.rsplit('/').next().unwrap_or_default().to_owned();
            out.push(QueuedReport {
                key: item.key,
                by,
                report,
            });
        }
        Ok(out)
    }

    /// Closes the report at `key` with what the moderator `by` did about it.
    pub fn resolve_report(&self, by: &str, key: &str, note: &str) -> Result<(), ChatError> {
        self.moderator(by)?;
        let queue = self.store().collection(REPORTS_COLLECTION)?;
        let item = queue
            .get(key)?
            .ok_or_else(|| ChatError::Invalid(format!("no report {key}")))?;
        let mut bytes = Vec::new();
        self.store().blobs().write_to(&item.file, &mut bytes)?;
        let mut report = Report::decode(&bytes).map_err(|e| ChatError::Invalid(e.0))?;
        report.resolved = Some(Resolution {
            by: by.to_owned(),
            note: note.to_owned(),
        });
        report.check().map_err(|e| ChatError::Invalid(e.0))?;
        queue.add_bytes(key, &report.encode())?;
        Ok(())
    }

    /// `by` must be a moderator or admin of this server.
    pub(crate) fn moderator(&self, by: &str) -> Result<(), ChatError> {
        if self.existing(by)?.profile.role < ServerRole::Moderator {
            return Err(ChatError::NotAllowed(format!(
                "{by} is not a moderator of this server"
            )));
        }
        Ok(())
    }
}
