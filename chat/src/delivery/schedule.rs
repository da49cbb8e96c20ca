//! When to sync which room with which peer: the sans-IO half of live delivery.
//!
//! A job is one room synced with one peer (its authority, then its messages). A room's job
//! with a peer becomes *due* when the room changes here, when the peer's periodic round comes
//! (every `interval`, so whatever a burst or a dropped connection missed is caught up), and
//! when the peer is reachable again after a failure. A change while the job runs marks it due
//! again, so the change made during a sync is never lost and a burst of changes costs one
//! more sync, not one per change. A peer that failed waits (doubling from one second, at most
//! `interval`) before its due jobs run again.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// The state of one (peer, room) job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Job {
    Due,
    Running,
    /// Running, and a change came in since it started.
    RunningDue,
}

#[derive(Debug)]
struct Peer {
    /// When the next periodic round marks all its rooms due.
    next_round: Instant,
    /// Consecutive failed jobs.
    failures: u32,
    /// No job starts before this (after a failure).
    retry_at: Option<Instant>,
    running: usize,
}

/// How one job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Both collections synced.
    Synced,
    /// The peer could not be reached or the sync failed.
    Failed,
}

/// Which jobs are due, running and waiting, for peers of type `P` and rooms of type `R`.
#[derive(Debug)]
pub(crate) struct Schedule<P, R> {
    interval: Duration,
    /// Jobs that may run at once with one peer.
    per_peer: usize,
    peers: BTreeMap<P, Peer>,
    jobs: BTreeMap<(P, R), Job>,
}

/// The first wait after a failure; it doubles up to the round interval.
const FIRST_RETRY: Duration = Duration::from_secs(1);

impl<P: Ord + Clone, R: Ord + Clone> Schedule<P, R> {
    pub(crate) fn new(interval: Duration, per_peer: usize) -> Self {
        Schedule {
            interval,
            per_peer: per_peer.max(1),
            peers: BTreeMap::new(),
            jobs: BTreeMap::new(),
        }
    }

    /// A peer to deliver to; its first round is due at once.
    pub(crate) fn add_peer(&mut self, peer: P, now: Instant) {
        self.peers.entry(peer).or_insert(Peer {
            next_round: now,
            failures: 0,
            retry_at: None,
            running: 0,
        });
    }

    /// Forgets a peer and its jobs (a running job's end is then ignored).
    pub(crate) fn remove_peer(&mut self, peer: &P) {
        self.peers.remove(peer);
        self.jobs.retain(|(p, _), _| p != peer);
    }

    /// The peers known.
    pub(crate) fn peers(&self) -> impl Iterator<Item = &P> {
        self.peers.keys()
    }

    /// `room` changed here: its job with `peer` is due (again, if it is running).
    pub(crate) fn mark(&mut self, peer: &P, room: &R) {
        if !self.peers.contains_key(peer) {
            return;
        }
        let job = self
            .jobs
            .entry((peer.clone(), room.clone()))
            .or_insert(Job::Due);
        if *job == Job::Running {
            *job = Job::RunningDue;
        }
    }

    /// Peers whose periodic round has come: the caller marks every room shared with each.
    /// Their next round is one interval from `now`.
    pub(crate) fn rounds_due(&mut self, now: Instant) -> Vec<P> {
        let mut due = Vec::new();
        for (id, peer) in &mut self.peers {
            if peer.next_round <= now {
                peer.next_round = now + self.interval;
                due.push(id.clone());
            }
        }
        due
    }

    /// Jobs to start now (they are marked running), at most `per_peer` per peer at once,
    /// none for a peer waiting after a failure.
    pub(crate) fn start(&mut self, now: Instant) -> Vec<(P, R)> {
        let mut started = Vec::new();
        for ((peer_id, room), job) in &mut self.jobs {
            if *job != Job::Due {
                continue;
            }
            let Some(peer) = self.peers.get_mut(peer_id) else {
                continue;
            };
            if peer.retry_at.is_some_and(|at| at > now) || peer.running >= self.per_peer {
                continue;
            }
            peer.running += 1;
            *job = Job::Running;
            started.push((peer_id.clone(), room.clone()));
        }
        started
    }

    /// A job ended. After a failure the job stays due and the peer waits; the first success
    /// after failures is a reconnection, so the peer's round (every shared room) is due.
    pub(crate) fn finished(&mut self, peer_id: &P, room: &R, outcome: Outcome, now: Instant) {
        let key = (peer_id.clone(), room.clone());
        let Some(peer) = self.peers.get_mut(peer_id) else {
            return;
        };
        peer.running = peer.running.saturating_sub(1);
        let Some(job) = self.jobs.get(&key).copied() else {
            return;
        };
        match outcome {
            Outcome::Synced => {
                if peer.failures > 0 {
                    peer.failures = 0;
                    peer.retry_at = None;
                    peer.next_round = now;
                }
                if job == Job::RunningDue {
                    self.jobs.insert(key, Job::Due);
                } else {
                    self.jobs.remove(&key);
                }
            }
            Outcome::Failed => {
                let wait = FIRST_RETRY
                    .saturating_mul(1 << peer.failures.min(16))
                    .min(self.interval.max(FIRST_RETRY));
                peer.failures = peer.failures.saturating_add(1);
                peer.retry_at = Some(now + wait);
                self.jobs.insert(key, Job::Due);
            }
        }
    }

    /// When something next becomes startable without news: a round, or a retry of a peer
    /// with due jobs.
    pub(crate) fn next_wake(&self) -> Option<Instant> {
        let rounds = self.peers.values().map(|p| p.next_round);
        let waiting: BTreeSet<&P> = self
            .jobs
            .iter()
            .filter(|(_, job)| **job == Job::Due)
            .map(|((p, _), _)| p)
            .collect();
        let retries = waiting
            .into_iter()
            .filter_map(|p| self.peers.get(p).and_then(|p| p.retry_at));
        rounds.chain(retries).min()
    }

    /// Jobs due or running.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.jobs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule() -> (Schedule<u8, u8>, Instant) {
        let now = Instant::now();
        let mut s = Schedule::new(Duration::from_secs(10), 1);
        s.add_peer(1, now);
        s.add_peer(2, now);
        (s, now)
    }

    #[test]
    fn a_change_during_a_sync_runs_it_again_once() {
        let (mut s, now) = schedule();
        s.mark(&1, &7);
        assert_eq!(s.start(now), vec![(1, 7)]);
        for _ in 0..1000 {
            s.mark(&1, &7);
        }
        assert_eq!(s.start(now), vec![], "one job per peer at a time");
        s.finished(&1, &7, Outcome::Synced, now);
        assert_eq!(s.start(now), vec![(1, 7)]);
        s.finished(&1, &7, Outcome::Synced, now);
        assert_eq!(s.start(now), vec![]);
        assert_eq!(s.pending(), 0);
    }

    #[test]
    fn peers_run_side_by_side_and_unknown_peers_are_ignored() {
        let (mut s, now) = schedule();
        s.mark(&1, &7);
        s.mark(&2, &7);
        s.mark(&3, &7);
        s.mark(&1, &8);
        assert_eq!(s.start(now), vec![(1, 7), (2, 7)]);
        s.finished(&1, &7, Outcome::Synced, now);
        assert_eq!(s.start(now), vec![(1, 8)]);
    }

    #[test]
    fn a_failed_peer_waits_longer_each_time_then_catches_up() {
        let (mut s, now) = schedule();
        assert_eq!(s.rounds_due(now), vec![1, 2]);
        assert_eq!(s.rounds_due(now), Vec::<u8>::new());
        s.mark(&1, &7);
        s.start(now);
        s.finished(&1, &7, Outcome::Failed, now);
        assert_eq!(s.start(now), vec![], "waits after a failure");
        assert_eq!(s.next_wake(), Some(now + Duration::from_secs(1)));
        let later = now + Duration::from_secs(1);
        assert_eq!(s.start(later), vec![(1, 7)]);
        s.finished(&1, &7, Outcome::Failed, later);
        assert_eq!(s.next_wake(), Some(later + Duration::from_secs(2)));
        let back = later + Duration::from_secs(2);
        assert_eq!(s.start(back), vec![(1, 7)]);
        s.finished(&1, &7, Outcome::Synced, back);
        // Back after failures: the whole round is due at once.
        assert_eq!(s.rounds_due(back), vec![1]);
    }

    #[test]
    fn waits_never_exceed_the_interval_and_rounds_repeat() {
        let (mut s, now) = schedule();
        s.rounds_due(now);
        let mut t = now;
        for _ in 0..40 {
            s.mark(&1, &7);
            let started = s.start(t);
            if started.is_empty() {
                t = s.next_wake().unwrap();
                continue;
            }
            s.finished(&1, &7, Outcome::Failed, t);
            assert!(s.next_wake().unwrap() <= t + Duration::from_secs(10));
        }
        assert_eq!(s.rounds_due(now + Duration::from_secs(10)), vec![1, 2]);
    }

    #[test]
    fn a_removed_peer_is_forgotten() {
        let (mut s, now) = schedule();
        s.mark(&1, &7);
        s.start(now);
        s.remove_peer(&1);
        s.finished(&1, &7, Outcome::Synced, now);
        s.mark(&1, &7);
        assert_eq!(s.start(now), vec![]);
        assert_eq!(s.peers().copied().collect::<Vec<_>>(), vec![2]);
    }
}
