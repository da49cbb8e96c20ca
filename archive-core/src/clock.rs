//! Hybrid logical clock for entry times.
//!
//! A Raspberry Pi has no real-time clock and may boot offline with a wrong date. Entry time is
//! therefore a hybrid logical clock: the high 48 bits are milliseconds since the Unix epoch from
//! the wall clock, the low 16 bits a counter. A new time is never behind anything the store has
//! seen (its own entries and every entry it accepted from elsewhere), so "latest wins" stays
//! meaningful on one server however wrong its wall clock is. Nothing depends on two servers'
//! clocks agreeing: ties and skew only decide which of two concurrent versions a view shows, and
//! both versions are kept.

use std::time::{SystemTime, UNIX_EPOCH};

/// A hybrid-logical-clock timestamp (see the module docs for the layout).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
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

    fn from_millis(ms: u64) -> Self {
        Timestamp(ms.min((1 << 48) - 1) << 16)
    }
}

/// Issues timestamps that never run behind the largest one observed.
#[derive(Debug, Clone)]
pub(crate) struct HybridClock {
    last: Timestamp,
}

impl HybridClock {
    pub(crate) fn new(last: Timestamp) -> Self {
        HybridClock { last }
    }

    pub(crate) fn last(&self) -> Timestamp {
        self.last
    }

    /// A new timestamp strictly greater than everything seen, and at least the wall clock.
    pub(crate) fn tick(&mut self) -> Timestamp {
        self.tick_with_wall_clock(wall_clock_millis())
    }

    pub(crate) fn tick_with_wall_clock(&mut self, wall_ms: u64) -> Timestamp {
        let wall = Timestamp::from_millis(wall_ms);
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

fn wall_clock_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_runs_behind_what_it_saw_even_with_a_wall_clock_in_1970() {
        let mut clock = HybridClock::new(Timestamp::default());
        let peer_time = Timestamp::from_millis(1_800_000_000_000);
        clock.observe(peer_time);
        let t1 = clock.tick_with_wall_clock(5);
        let t2 = clock.tick_with_wall_clock(5);
        assert!(t1 > peer_time);
        assert!(t2 > t1);
    }

    #[test]
    fn follows_the_wall_clock_when_it_is_ahead() {
        let mut clock = HybridClock::new(Timestamp::from_millis(1000));
        let t = clock.tick_with_wall_clock(2000);
        assert_eq!(t.unix_millis(), 2000);
        let t2 = clock.tick_with_wall_clock(2000);
        assert_eq!(t2.unix_millis(), 2000);
        assert!(t2 > t);
    }
}
