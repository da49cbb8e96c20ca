//! Scheduled syncs: the `[[sync]]` tables of `archive.toml`, run by `archive serve`.
//!
//! [`Plan::next`] decides when a schedule's next sync starts from its record alone (pure, and
//! what `archive status` shows); [`start`] runs one task per schedule that sleeps until then,
//! syncs its collections one after the other, and records each in `syncs.json`. A failure is
//! retried after `retry`, doubled at each failure up to an hour; a paired peer that connects
//! while its schedule is failing is synced at once (it is back). Times of day are local time;
//! records are wall-clock milliseconds, so a clock set wrong (a Pi without a real-time clock,
//! before it reaches a time server) can shift a schedule but not stop it: a last sync dated
//! in the future counts as never.

use std::sync::Arc;
use std::time::Duration;

use archive_net::{Counters, Endpoint, Node, SyncOptions};
use serde::{Deserialize, Serialize};

use crate::config::{Direction, SyncSchedule};
use crate::peers::Peers;
use crate::syncs::{self, SyncRecord};

const MINUTE_MS: u64 = 60_000;
const DAY_MS: u64 = 24 * 60 * MINUTE_MS;
/// The longest wait between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// The first wait after a failure unless the schedule says otherwise.
const DEFAULT_RETRY: Duration = Duration::from_secs(30);
/// A sleeping schedule looks at the clock at least this often (the wall clock can jump).
const RECHECK: Duration = Duration::from_secs(60);

/// A daily window of local time, `"01:00-05:00"`; it may pass midnight (`"22:00-02:00"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    /// Minutes after midnight.
    start: u32,
    end: u32,
}

impl Window {
    fn len_minutes(&self) -> u32 {
        (self.end + 24 * 60 - self.start) % (24 * 60)
    }

    /// Whether `local_ms` (milliseconds since the epoch, local time) is inside.
    fn contains(&self, local_ms: u64) -> bool {
        let minute = ((local_ms % DAY_MS) / MINUTE_MS) as u32;
        (minute + 24 * 60 - self.start) % (24 * 60) < self.len_minutes()
    }

    /// The first moment at or after `local_ms` inside the window.
    fn next_open(&self, local_ms: u64) -> u64 {
        if self.contains(local_ms) {
            return local_ms;
        }
        let day = local_ms - local_ms % DAY_MS;
        let start = day + u64::from(self.start) * MINUTE_MS;
        if start > local_ms {
            start
        } else {
            start + DAY_MS
        }
    }

    /// When the window that contains `local_ms` closes.
    fn close_after(&self, local_ms: u64) -> u64 {
        let into = (((local_ms % DAY_MS) / MINUTE_MS) as u32 + 24 * 60 - self.start) % (24 * 60);
        let left = u64::from(self.len_minutes() - into) * MINUTE_MS;
        local_ms - local_ms % MINUTE_MS + left
    }
}

impl std::str::FromStr for Window {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("window `{s}`: write a daily window as \"01:00-05:00\" (local time)");
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let minutes = |t: &str| -> Result<u32, String> {
            let (h, m) = t.trim().split_once(':').ok_or_else(bad)?;
            let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
            if h > 23 || m > 59 || t.trim().len() != 5 {
                return Err(bad());
            }
            Ok(h * 60 + m)
        };
        let (start, end) = (minutes(a)?, minutes(b)?);
        if start == end {
            return Err(format!("window `{s}` has no time in it"));
        }
        Ok(Window { start, end })
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )
    }
}

impl Serialize for Window {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// When a schedule syncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) every: Option<Duration>,
    pub(crate) window: Option<Window>,
    pub(crate) retry: Duration,
}

/// What the records say of a schedule's syncs (all its collections together).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct History {
    /// When every collection last completed (the oldest of them), Unix ms.
    pub(crate) last_success: Option<u64>,
    /// When the last attempt ended, Unix ms.
    pub(crate) last_attempt: Option<u64>,
    /// Failures since the last success.
    pub(crate) failures: u32,
}

impl History {
    /// From the records of `peer`'s `collections`.
    pub(crate) fn of(records: &[SyncRecord], peer: &str, collections: &[String]) -> History {
        let mut h = History::default();
        let mut all_succeeded = true;
        let mut oldest_success = u64::MAX;
        for c in collections {
            let Some(r) = records
                .iter()
                .find(|r| r.peer == peer && &r.collection == c)
            else {
                all_succeeded = false;
                continue;
            };
            h.last_attempt = Some(h.last_attempt.map_or(r.at, |a| a.max(r.at)));
            h.failures = h.failures.max(r.failures);
            match r.last_success_at {
                Some(ok) => oldest_success = oldest_success.min(ok),
                None => all_succeeded = false,
            }
        }
        if all_succeeded && oldest_success != u64::MAX {
            h.last_success = Some(oldest_success);
        }
        h
    }
}

impl Plan {
    pub(crate) fn of(schedule: &SyncSchedule) -> Plan {
        Plan {
            every: schedule.every,
            window: schedule.window,
            retry: schedule.retry.unwrap_or(DEFAULT_RETRY),
        }
    }

    /// Time between syncs: `every`, or with only a window, a day less the window (so each
    /// window starts one sync, wherever in it the last one ended).
    pub(crate) fn interval(&self) -> Duration {
        match (self.every, self.window) {
            (Some(every), _) => every,
            (None, Some(w)) => {
                Duration::from_secs(u64::from(24 * 60 - w.len_minutes()) * 60).max(MAX_BACKOFF)
            }
            (None, None) => Duration::from_secs(86_400),
        }
    }

    /// The wait after the `failures`th failure in a row.
    pub(crate) fn backoff(&self, failures: u32) -> Duration {
        let cap = MAX_BACKOFF.min(self.interval()).max(self.retry);
        let doubled = self
            .retry
            .saturating_mul(1u32 << failures.saturating_sub(1).min(20));
        doubled.min(cap)
    }

    /// When the next sync starts, Unix ms, at or after `now`; `offset_ms` is local time's
    /// offset from UTC.
    pub(crate) fn next(&self, h: &History, now: u64, offset_ms: i64) -> u64 {
        let ms = |d: Duration| d.as_millis() as u64;
        let due = if h.failures > 0 {
            h.last_attempt
                .filter(|&a| a <= now)
                .map_or(now, |a| a + ms(self.backoff(h.failures)))
        } else {
            match h.last_success {
                Some(ok) if ok <= now => ok.saturating_add(ms(self.interval())),
                _ => now,
            }
        };
        let due = due.max(now);
        match self.window {
            None => due,
            Some(w) => {
                let local = due.saturating_add_signed(offset_ms);
                w.next_open(local).saturating_add_signed(-offset_ms)
            }
        }
    }

    /// When a sync started at `now` must stop (the end of its window), Unix ms.
    pub(crate) fn stop_at(&self, now: u64, offset_ms: i64) -> Option<u64> {
        let w = self.window?;
        let local = now.saturating_add_signed(offset_ms);
        Some(w.close_after(local).saturating_add_signed(-offset_ms))
    }
}

/// Now, Unix ms.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Local time's offset from UTC at `unix_ms`, in ms (the system's time zone).
// libc marks `time_t` deprecated on musl (its width changed in musl 1.2); it is what
// localtime_r takes on every target.
#[allow(deprecated)]
pub(crate) fn local_offset_ms(unix_ms: u64) -> i64 {
    let t = (unix_ms / 1000) as libc::time_t;
    // SAFETY: localtime_r writes only into `tm`, which lives for the call.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if ok {
        tm.tm_gmtoff * 1000
    } else {
        0
    }
}

/// What a schedule's task needs.
#[derive(Clone)]
pub(crate) struct Runner {
    pub(crate) dir: std::path::PathBuf,
    pub(crate) endpoint: Endpoint,
    pub(crate) node: Node,
}

/// Starts one task per schedule on the current runtime.
pub(crate) fn start(runner: &Runner, schedules: &[SyncSchedule]) {
    for s in schedules {
        if Peers::load(&runner.dir)
            .ok()
            .is_some_and(|p| p.find(&s.peer).is_err())
        {
            tracing::warn!(
                "archive.toml schedules a sync with `{}`, which is not paired (see `archive peer ls`)",
                s.peer
            );
        }
        tokio::spawn(run(runner.clone(), s.clone()));
    }
}

async fn run(runner: Runner, schedule: SyncSchedule) {
    let plan = Plan::of(&schedule);
    let mut arrivals = runner.node.arrivals();
    let records = syncs::load(&runner.dir).unwrap_or_default();
    let mut history = History::of(&records, &schedule.peer, &schedule.collections);
    loop {
        let now = now_ms();
        let next = plan.next(&history, now, local_offset_ms(now));
        if next > now {
            let wait = Duration::from_millis(next - now).min(RECHECK);
            tokio::select! {
                _ = tokio::time::sleep(wait) => continue,
                arrived = arrivals.recv() => {
                    // A failing schedule's peer is back: sync now (inside the window).
                    let back = matches!(arrived, Ok(id) if peer_id(&runner, &schedule.peer) == Some(id));
                    let in_window = plan.window.is_none_or(|w| {
                        w.contains(now.saturating_add_signed(local_offset_ms(now)))
                    });
                    if !(back && history.failures > 0 && in_window) {
                        continue;
                    }
                    tracing::info!("peer `{}` is back: syncing now", schedule.peer);
                }
            }
        }
        history = run_once(&runner, &schedule, &plan).await;
    }
}

fn peer_id(runner: &Runner, name: &str) -> Option<archive_net::EndpointId> {
    Peers::load(&runner.dir)
        .ok()?
        .find(name)
        .ok()?
        .endpoint_id()
        .ok()
}

/// Syncs each collection of `schedule` once, records each, and returns the new history.
async fn run_once(runner: &Runner, schedule: &SyncSchedule, plan: &Plan) -> History {
    let started = now_ms();
    let stop_at = plan.stop_at(started, local_offset_ms(started));
    for collection in &schedule.collections {
        let outcome = sync_one(runner, schedule, collection, stop_at).await;
        match &outcome {
            Ok(r) => tracing::info!(
                "scheduled sync of `{collection}` with `{}`: received {} entries, sent {}",
                schedule.peer,
                r.entries_received,
                r.entries_sent
            ),
            Err(e) => tracing::warn!(
                "scheduled sync of `{collection}` with `{}` failed: {e:#}",
                schedule.peer
            ),
        }
        let record = SyncRecord::of(&schedule.peer, collection, &outcome);
        if let Err(e) = syncs::record(&runner.dir, record) {
            tracing::error!("{e:#}");
        }
    }
    let records = syncs::load(&runner.dir).unwrap_or_default();
    History::of(&records, &schedule.peer, &schedule.collections)
}

async fn sync_one(
    runner: &Runner,
    schedule: &SyncSchedule,
    collection: &str,
    stop_at: Option<u64>,
) -> anyhow::Result<archive_net::SyncReport> {
    let peer = Peers::load(&runner.dir)?.find(&schedule.peer)?.clone();
    let options = SyncOptions {
        collection: collection.to_owned(),
        pull: schedule.direction != Direction::Push,
        push: schedule.direction != Direction::Pull,
    };
    let counters = Arc::new(match schedule.max_rate {
        Some(rate) => Counters::paced(rate.0),
        None => Counters::default(),
    });
    let sync = syncs::sync_with(&runner.endpoint, &runner.node, &peer, &options, counters);
    let Some(stop_at) = stop_at else {
        return sync.await;
    };
    let left = Duration::from_millis(stop_at.saturating_sub(now_ms()));
    match tokio::time::timeout(left, sync).await {
        Ok(r) => r,
        Err(_) => anyhow::bail!(
            "stopped at the end of its window {}; it resumes in the next",
            schedule.window.map(|w| w.to_string()).unwrap_or_default()
        ),
    }
}

/// How `archive status` and `peer ls` describe a schedule, and when it runs next.
pub(crate) fn describe(schedule: &SyncSchedule) -> String {
    let mut s = schedule.collections.join(", ");
    if let Some(every) = schedule.every {
        s += &format!(" every {}", humantime::format_duration(every));
    } else {
        s += " once a day";
    }
    if let Some(w) = schedule.window {
        s += &format!(" within {w}");
    }
    if let Some(rate) = schedule.max_rate {
        s += &format!(", at most {rate}/s");
    }
    if schedule.direction != Direction::Both {
        s += &format!(
            ", {} only",
            if schedule.direction == Direction::Pull {
                "pull"
            } else {
                "push"
            }
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const H: u64 = 3_600_000;

    fn w(s: &str) -> Window {
        s.parse().unwrap()
    }

    #[test]
    fn windows_parse_contain_and_close() {
        let night = w("01:00-05:00");
        assert_eq!(night.to_string(), "01:00-05:00");
        assert!(night.contains(H) && night.contains(5 * H - 1) && !night.contains(5 * H));
        assert!(!night.contains(0));
        assert_eq!(night.next_open(6 * H), DAY_MS + H);
        assert_eq!(night.next_open(0), H);
        assert_eq!(night.close_after(2 * H), 5 * H);
        let late = w("22:00-02:00");
        assert!(late.contains(23 * H) && late.contains(DAY_MS + H) && !late.contains(3 * H));
        assert_eq!(late.close_after(23 * H), DAY_MS + 2 * H);
        for bad in [
            "",
            "1-5",
            "01:00",
            "24:00-01:00",
            "01:60-02:00",
            "1:00-5:00",
            "01:00-01:00",
        ] {
            assert!(bad.parse::<Window>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_plan_waits_its_interval_backs_off_and_keeps_to_its_window() {
        let every = Plan {
            every: Some(Duration::from_secs(6 * 3600)),
            window: None,
            retry: Duration::from_secs(30),
        };
        let never = History::default();
        assert_eq!(every.next(&never, 10 * H, 0), 10 * H);
        let ok = History {
            last_success: Some(10 * H),
            last_attempt: Some(10 * H),
            failures: 0,
        };
        assert_eq!(every.next(&ok, 11 * H, 0), 16 * H);
        // Long down: due at once.
        assert_eq!(every.next(&ok, 40 * H, 0), 40 * H);
        // Backoff: 30 s, 60 s, 120 s ... at most an hour.
        let failing = |failures| History {
            failures,
            last_attempt: Some(10 * H),
            ..ok
        };
        assert_eq!(every.next(&failing(1), 10 * H, 0), 10 * H + 30_000);
        assert_eq!(every.next(&failing(3), 10 * H, 0), 10 * H + 120_000);
        assert_eq!(every.next(&failing(30), 10 * H, 0), 11 * H);
        // A record from a clock that was ahead counts as never.
        let future = History {
            last_success: Some(50 * H),
            ..ok
        };
        assert_eq!(every.next(&future, 11 * H, 0), 11 * H);

        // A window only: one sync each night, wherever in it the last one ended.
        let nightly = Plan {
            every: None,
            window: Some(w("01:00-05:00")),
            retry: Duration::from_secs(30),
        };
        assert_eq!(nightly.next(&never, 12 * H, 0), DAY_MS + H);
        for ended in [H, 3 * H, 5 * H - 1] {
            let h = History {
                last_success: Some(ended),
                last_attempt: Some(ended),
                failures: 0,
            };
            assert_eq!(nightly.next(&h, ended, 0), DAY_MS + H, "ended at {ended}");
        }
        // The window is local time: at UTC+2, 01:00 local is 23:00 UTC.
        assert_eq!(nightly.next(&never, 12 * H, 2 * H as i64), 23 * H);
        assert_eq!(nightly.stop_at(2 * H, 0), Some(5 * H));
        assert_eq!(every.stop_at(2 * H, 0), None);
    }

    proptest! {
        /// Whatever the history, the next sync is not before now, is inside the window, and
        /// is no later than a day after the interval and backoff allow.
        #[test]
        fn next_is_never_in_the_past_and_always_in_the_window(
            now in 0u64..100 * DAY_MS,
            every_s in proptest::option::of(1u64..200_000),
            window in proptest::option::of((0u32..1440, 1u32..1440)),
            retry_s in 1u64..4000,
            last in proptest::option::of(0u64..100 * DAY_MS),
            failures in 0u32..40,
            offset_h in -12i64..=14,
        ) {
            let window = window.map(|(start, len)| Window { start, end: (start + len) % 1440 });
            prop_assume!(every_s.is_some() || window.is_some());
            let plan = Plan { every: every_s.map(Duration::from_secs), window, retry: Duration::from_secs(retry_s) };
            let h = History { last_success: last, last_attempt: last, failures };
            let offset = offset_h * H as i64;
            let next = plan.next(&h, now, offset);
            prop_assert!(next >= now);
            if let Some(w) = window {
                prop_assert!(w.contains(next.saturating_add_signed(offset)));
                let stop = plan.stop_at(next, offset).unwrap();
                prop_assert!(stop > next && stop <= next + DAY_MS);
            }
            let wait = if failures > 0 { plan.backoff(failures) } else { plan.interval() };
            prop_assert!(next <= now + wait.as_millis() as u64 + DAY_MS);
        }
    }
}
