//! How fast this server's people may write: a per-person rate limit, and slow mode for new
//! accounts. Sans-IO: the caller says what time it is.
//!
//! Only this server's own people are paced here (it signs for them; another server's people
//! are that server's to pace, and a flood from a peer meets the archive's per-peer quotas).
//! Admins and moderators are not paced. The counts live in memory: a restart forgets them,
//! which costs at most one more minute's worth of writes.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::format::ServerRole;

/// The pace this server's people keep (set by the embedding program with
/// [`crate::Chat::set_pace`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacePolicy {
    /// Most writes (messages, edits, reactions) one person makes in any minute.
    pub per_minute: u32,
    /// An account younger than this is new...
    pub new_account_for: Duration,
    /// ...and writes at most once in this long (slow mode).
    pub new_account_every: Duration,
}

impl Default for PacePolicy {
    fn default() -> Self {
        PacePolicy {
            // A fast typist in a lively room; a script is stopped within a minute.
            per_minute: 30,
            new_account_for: Duration::from_secs(24 * 3600),
            new_account_every: Duration::from_secs(10),
        }
    }
}

const MINUTE: Duration = Duration::from_secs(60);

/// Each person's recent writes, judged against the policy.
#[derive(Debug, Default)]
pub(crate) struct Pacer {
    policy: PacePolicy,
    recent: HashMap<String, VecDeque<Instant>>,
}

impl Pacer {
    pub(crate) fn set_policy(&mut self, policy: PacePolicy) {
        self.policy = policy;
    }

    /// Whether `account` (of `role`, whose account is `age` old) may make `n` writes at
    /// `now`; if so they are counted. If not, how long until it may.
    pub(crate) fn admit(
        &mut self,
        account: &str,
        role: ServerRole,
        age: Duration,
        n: u32,
        now: Instant,
    ) -> Result<(), Duration> {
        if role >= ServerRole::Moderator {
            return Ok(());
        }
        let times = self.recent.entry(account.to_owned()).or_default();
        while times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= MINUTE)
        {
            times.pop_front();
        }
        if age < self.policy.new_account_for {
            if let Some(last) = times.back() {
                let since = now.saturating_duration_since(*last);
                if since < self.policy.new_account_every {
                    return Err(self.policy.new_account_every - since);
                }
            }
            if n > 1 {
                return Err(self.policy.new_account_every);
            }
        }
        let allowed = self.policy.per_minute as usize;
        if times.len() + n as usize > allowed {
            // Wait until enough of the minute's writes have aged out.
            let must_go = times.len() + n as usize - allowed;
            let wait = match times.get(must_go.saturating_sub(1)) {
                Some(t) => MINUTE.saturating_sub(now.saturating_duration_since(*t)),
                None => MINUTE,
            };
            return Err(wait);
        }
        times.extend(std::iter::repeat_n(now, n as usize));
        // Forget people who wrote nothing for a minute (the map stays small).
        if self.recent.len() > 4096 {
            self.recent.retain(|_, t| {
                t.back()
                    .is_some_and(|t| now.saturating_duration_since(*t) < MINUTE)
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: Duration = Duration::from_secs(30 * 24 * 3600);

    fn pacer(per_minute: u32) -> Pacer {
        let mut p = Pacer::default();
        p.set_policy(PacePolicy {
            per_minute,
            new_account_for: Duration::from_secs(3600),
            new_account_every: Duration::from_secs(10),
        });
        p
    }

    #[test]
    fn a_person_writes_at_most_the_limit_in_any_minute() {
        let mut p = pacer(3);
        let t0 = Instant::now();
        let s = Duration::from_secs;
        for i in 0..3 {
            p.admit("bo", ServerRole::Member, OLD, 1, t0 + s(i))
                .unwrap();
        }
        // The fourth waits until the first is a minute old.
        assert_eq!(
            p.admit("bo", ServerRole::Member, OLD, 1, t0 + s(5)),
            Err(s(55))
        );
        // Someone else is not held up; admins and moderators are not paced.
        p.admit("cy", ServerRole::Member, OLD, 1, t0 + s(5))
            .unwrap();
        for _ in 0..10 {
            p.admit("ana", ServerRole::Admin, OLD, 1, t0 + s(5))
                .unwrap();
            p.admit("mo", ServerRole::Moderator, OLD, 1, t0 + s(5))
                .unwrap();
        }
        p.admit("bo", ServerRole::Member, OLD, 1, t0 + s(60))
            .unwrap();
        assert!(p
            .admit("bo", ServerRole::Member, OLD, 1, t0 + s(60))
            .is_err());
        // A batch larger than what is left waits for enough room.
        assert_eq!(
            p.admit("cy", ServerRole::Member, OLD, 3, t0 + s(6)),
            Err(s(59))
        );
    }

    #[test]
    fn a_new_account_writes_once_per_interval() {
        let mut p = pacer(30);
        let t0 = Instant::now();
        let new = Duration::from_secs(60);
        p.admit("newbie", ServerRole::Member, new, 1, t0).unwrap();
        let err = p.admit(
            "newbie",
            ServerRole::Member,
            new,
            1,
            t0 + Duration::from_secs(4),
        );
        assert_eq!(err, Err(Duration::from_secs(6)));
        p.admit(
            "newbie",
            ServerRole::Member,
            new,
            1,
            t0 + Duration::from_secs(10),
        )
        .unwrap();
        // No batches for a new account.
        assert!(p
            .admit(
                "newbie",
                ServerRole::Member,
                new,
                2,
                t0 + Duration::from_secs(30)
            )
            .is_err());
        // Once old enough, only the per-minute limit holds.
        p.admit(
            "newbie",
            ServerRole::Member,
            OLD,
            1,
            t0 + Duration::from_secs(11),
        )
        .unwrap();
    }
}
