//! Hybrid logical clock for entry times, and the rule for which times a store accepts.
//!
//! A Raspberry Pi has no real-time clock and may boot offline with a wrong date. Entry time is
//! therefore a hybrid logical clock: the high 48 bits are milliseconds since the Unix epoch from
//! the wall clock, the low 16 bits a counter. A new time is never behind anything the store has
//! seen (its own entries and every entry it accepted from elsewhere), so "latest wins" stays
//! meaningful on one server however wrong its wall clock is. Nothing depends on two servers'
//! clocks agreeing: ties and skew only decide which of two concurrent versions a view shows, and
//! both versions are kept.
//!
//! # Which times are accepted ([`TimeRule`])
//!
//! An entry from elsewhere is accepted only if its time is at most
//! `min(MAX_ENTRY_MILLIS, reference + MAX_AHEAD_MILLIS)`, where `reference` is the latest of
//! this server's wall clock, the latest time it has seen, and [`EARLIEST_PLAUSIBLE_MILLIS`]
//! (the date this version was made: no correct clock is earlier, so a Pi that boots in 1970
//! still has a sensible reference).
//! - The *relative* bound (five years) lets a server that was switched off or cut off for
//!   years, with a wrong wall clock, take its peers' entries when it comes back, while a
//!   peer cannot jump its clock to the far future in one step.
//! - The *absolute* ceiling (2^42 ms, May 2109) stops a peer from ratcheting the clock forward
//!   five years at a time: whatever is accepted leaves the 64-bit clock 2^64 - 2^58 ticks of
//!   headroom, so local writes always get a time later than everything seen and
//!   latest-wins keeps working.

use std::time::{SystemTime, UNIX_EPOCH};

/// The latest millisecond an entry may carry: 2^42 ms after the epoch (2109-05-15).
pub const MAX_ENTRY_MILLIS: u64 = 1 << 42;
/// How far ahead of this server's reference time an accepted entry may be: five years.
pub const MAX_AHEAD_MILLIS: u64 = 1826 * 24 * 60 * 60 * 1000;
/// 2026-11-01T00:00:00Z: the date this version was made. A wall clock earlier than this is
/// wrong, so it is never the reference for accepting entries.
pub const EARLIEST_PLAUSIBLE_MILLIS: u64 = 1_793_491_200_000;

/// A hybrid-logical-clock timestamp (see the module docs for the layout).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(u64);

impl Timestamp {
    /// Wraps the raw 64-bit value.
    pub const fn from_raw(raw: u64) -> Self {
        Timestamp(raw)
    }

    /// The raw 64-bit value (what the entry encoding stores).
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// The wall-clock part: milliseconds since the Unix epoch.
    pub const fn unix_millis(self) -> u64 {
        self.0 >> 16
    }

    /// The first timestamp of a wall-clock millisecond (counter 0).
    pub const fn from_unix_millis(ms: u64) -> Self {
        let ms = if ms > (1 << 48) - 1 {
            (1 << 48) - 1
        } else {
            ms
        };
        Timestamp(ms << 16)
    }

    /// The last timestamp of a wall-clock millisecond (counter at its maximum).
    const fn end_of_millis(ms: u64) -> Self {
        Timestamp(Timestamp::from_unix_millis(ms).0 | 0xffff)
    }
}

/// UTC, to the millisecond (`2026-11-30T22:13:40.123Z`); the counter follows after `+` when it
/// is not zero.
impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.unix_millis();
        let when = UNIX_EPOCH + std::time::Duration::from_millis(ms);
        // humantime formats years 0..=9999; later times are shown as milliseconds.
        if ms < 253_402_300_800_000 {
            write!(f, "{}", humantime::format_rfc3339_millis(when))?;
        } else {
            write!(f, "{ms} ms after 1970")?;
        }
        match self.0 & 0xffff {
            0 => Ok(()),
            counter => write!(f, "+{counter}"),
        }
    }
}

/// The rule that decides which entry times a store accepts (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeRule {
    /// The latest time accepted.
    pub(crate) limit: Timestamp,
}

impl TimeRule {
    /// The rule for a store whose wall clock reads `wall_ms` and that has seen `seen`.
    pub(crate) fn new(wall_ms: u64, seen: Timestamp) -> Self {
        let reference = wall_ms
            .max(seen.unix_millis())
            .max(EARLIEST_PLAUSIBLE_MILLIS);
        let limit_ms = reference
            .saturating_add(MAX_AHEAD_MILLIS)
            .min(MAX_ENTRY_MILLIS);
        TimeRule {
            limit: Timestamp::end_of_millis(limit_ms),
        }
    }

    pub(crate) fn accepts(&self, t: Timestamp) -> bool {
        t <= self.limit
    }
}

/// Issues timestamps that never run behind the largest one observed.
#[derive(Debug, Clone)]
pub(crate) struct HybridClock {
    last: Timestamp,
    wall: fn() -> u64,
}

impl HybridClock {
    pub(crate) fn new(last: Timestamp) -> Self {
        HybridClock {
            last,
            wall: wall_clock_millis,
        }
    }

    pub(crate) fn last(&self) -> Timestamp {
        self.last
    }

    /// Replaces the wall clock (milliseconds since the epoch), for simulations and tests.
    /// The wall clock this clock reads, in Unix milliseconds.
    pub(crate) fn wall_millis(&self) -> u64 {
        (self.wall)()
    }

    pub(crate) fn set_wall_clock(&mut self, wall: fn() -> u64) {
        self.wall = wall;
    }

    /// The rule for accepting entries from elsewhere, as of now.
    pub(crate) fn rule(&self) -> TimeRule {
        TimeRule::new((self.wall)(), self.last)
    }

    /// Sets the latest time seen (after a repair removed entries from the far future).
    pub(crate) fn reset(&mut self, last: Timestamp) {
        self.last = last;
    }

    /// A new timestamp strictly greater than everything seen, and at least the wall clock
    /// (which counts only up to [`MAX_ENTRY_MILLIS`]).
    pub(crate) fn tick(&mut self) -> Timestamp {
        self.tick_with_wall_clock((self.wall)())
    }

    pub(crate) fn tick_with_wall_clock(&mut self, wall_ms: u64) -> Timestamp {
        let wall = Timestamp::from_unix_millis(wall_ms.min(MAX_ENTRY_MILLIS));
        let next = if wall > self.last {
            wall
        } else {
            Timestamp(self.last.0.saturating_add(1))
        };
        self.last = next;
        next
    }

    /// Records a timestamp seen on an entry, so later ticks are not behind it.
    pub(crate) fn observe(&mut self, seen: Timestamp) {
        if seen > self.last {
            self.last = seen;
        }
    }
}

pub(crate) fn wall_clock_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const YEAR_MS: u64 = 365 * 24 * 60 * 60 * 1000;
    /// 2026-11-30 and 2023-06-01, as a correct clock would say.
    const NOW_2026: u64 = 1_795_996_800_000;
    const IN_2023: u64 = 1_685_577_600_000;
    const YEAR_3000: u64 = 32_503_680_000_000;

    #[test]
    fn never_runs_behind_what_it_saw_even_with_a_wall_clock_in_1970() {
        let mut clock = HybridClock::new(Timestamp::default());
        let peer_time = Timestamp::from_unix_millis(1_800_000_000_000);
        clock.observe(peer_time);
        let t1 = clock.tick_with_wall_clock(5);
        let t2 = clock.tick_with_wall_clock(5);
        assert!(t1 > peer_time);
        assert!(t2 > t1);
    }

    #[test]
    fn follows_the_wall_clock_when_it_is_ahead() {
        let mut clock = HybridClock::new(Timestamp::from_unix_millis(1000));
        let t = clock.tick_with_wall_clock(2000);
        assert_eq!(t.unix_millis(), 2000);
        let t2 = clock.tick_with_wall_clock(2000);
        assert_eq!(t2.unix_millis(), 2000);
        assert!(t2 > t);
    }

    #[test]
    fn an_empty_server_in_1970_accepts_a_2026_peer() {
        let rule = TimeRule::new(0, Timestamp::default());
        assert!(rule.accepts(Timestamp::from_unix_millis(NOW_2026)));
    }

    #[test]
    fn a_server_offline_for_three_years_with_a_1970_clock_accepts_2026() {
        let rule = TimeRule::new(5, Timestamp::from_unix_millis(IN_2023));
        assert!(rule.accepts(Timestamp::from_unix_millis(NOW_2026)));
        // An older build (no plausibility floor yet at 2026): the relative bound alone still
        // takes three years and a half.
        let reference = IN_2023;
        assert!(reference + 3 * YEAR_MS + 180 * 24 * 3_600_000 <= reference + MAX_AHEAD_MILLIS);
    }

    #[test]
    fn a_server_ahead_of_its_peers_accepts_their_entries() {
        // The reverse: a server whose clock says 2031 takes entries of a peer in 2026.
        let rule = TimeRule::new(NOW_2026 + 5 * YEAR_MS, Timestamp::default());
        assert!(rule.accepts(Timestamp::from_unix_millis(NOW_2026)));
    }

    #[test]
    fn the_far_future_is_refused() {
        let rule = TimeRule::new(NOW_2026, Timestamp::from_unix_millis(NOW_2026));
        assert!(!rule.accepts(Timestamp::from_raw(u64::MAX)));
        assert!(!rule.accepts(Timestamp::from_unix_millis(YEAR_3000)));
        assert!(!rule.accepts(Timestamp::from_unix_millis(NOW_2026 + 6 * YEAR_MS)));
        assert!(rule.accepts(Timestamp::from_unix_millis(NOW_2026 + 4 * YEAR_MS)));
    }

    #[test]
    fn ratcheting_stops_at_the_ceiling() {
        // A peer that pushes entries at the latest accepted time, again and again, drags the
        // clock forward five years a step, but never past 2^42 ms (year 2109).
        let mut clock = HybridClock::new(Timestamp::from_unix_millis(NOW_2026));
        for _ in 0..100 {
            let limit = TimeRule::new(NOW_2026, clock.last()).limit;
            clock.observe(limit);
        }
        let limit = TimeRule::new(NOW_2026, clock.last()).limit;
        assert_eq!(limit.unix_millis(), MAX_ENTRY_MILLIS);
        assert!(
            !TimeRule::new(NOW_2026, clock.last()).accepts(Timestamp::from_unix_millis(YEAR_3000))
        );
    }

    #[test]
    fn ten_thousand_pushes_at_the_largest_accepted_time_leave_headroom() {
        let mut clock = HybridClock::new(Timestamp::from_unix_millis(NOW_2026));
        for _ in 0..10_000 {
            let limit = TimeRule::new(NOW_2026, clock.last()).limit;
            clock.observe(limit);
            // Local writes in between still win over everything seen.
            let own = clock.tick_with_wall_clock(NOW_2026);
            assert!(own > limit);
        }
        let headroom = u64::MAX - clock.last().raw();
        assert!(headroom >= 1 << 40, "headroom {headroom}");
    }

    #[test]
    fn a_wall_clock_past_the_ceiling_does_not_push_local_times_past_it() {
        let mut clock = HybridClock::new(Timestamp::default());
        let t = clock.tick_with_wall_clock(YEAR_3000);
        assert_eq!(t.unix_millis(), MAX_ENTRY_MILLIS);
    }

    #[test]
    fn shown_as_utc() {
        assert_eq!(
            Timestamp::from_unix_millis(NOW_2026).to_string(),
            "2026-11-30T00:00:00.000Z"
        );
        assert_eq!(
            Timestamp::from_raw((NOW_2026 << 16) | 3).to_string(),
            "2026-11-30T00:00:00.000Z+3"
        );
        assert!(Timestamp::from_raw(u64::MAX)
            .to_string()
            .contains("ms after 1970"));
    }
}
