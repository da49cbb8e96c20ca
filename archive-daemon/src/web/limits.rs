//! Rate limits: token buckets per client address (every request; sign-in attempts) and per
//! account (sign-in attempts), so one phone or one script cannot crowd out the others.
//!
//! IPv6 clients are counted per /64 (one device can take any address of its network), IPv4
//! per address. The tables are bounded: when one is full, buckets that have refilled are
//! dropped; if none has, the newcomer is refused until one does.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Most buckets one table keeps.
const MAX_BUCKETS: usize = 50_000;

/// A bucket of `burst` tokens refilled at `per_second`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rate {
    pub(crate) burst: f64,
    pub(crate) per_second: f64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets by key.
#[derive(Debug)]
pub(crate) struct Buckets<K> {
    rate: Rate,
    table: Mutex<HashMap<K, Bucket>>,
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    pub(crate) fn new(rate: Rate) -> Self {
        Buckets {
            rate,
            table: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `key`: false when its bucket is empty (refuse the request).
    pub(crate) fn take(&self, key: &K, now: Instant) -> bool {
        let mut table = self
            .table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !table.contains_key(key) && table.len() >= MAX_BUCKETS {
            let rate = self.rate;
            table.retain(|_, b| refill(rate, *b, now).tokens < rate.burst);
            if table.len() >= MAX_BUCKETS {
                return false;
            }
        }
        let bucket = table.entry(key.clone()).or_insert(Bucket {
            tokens: self.rate.burst,
            at: now,
        });
        *bucket = refill(self.rate, *bucket, now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    /// Gives back a token taken for `key` (an attempt that turned out well does not count).
    pub(crate) fn refund(&self, key: &K) {
        let mut table = self
            .table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(b) = table.get_mut(key) {
            b.tokens = (b.tokens + 1.0).min(self.rate.burst);
        }
    }
}

fn refill(rate: Rate, b: Bucket, now: Instant) -> Bucket {
    let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
    Bucket {
        tokens: (b.tokens + elapsed * rate.per_second).min(rate.burst),
        at: now,
    }
}

/// Who a request counts against: an IPv4 address, or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ClientKey(u128);

impl ClientKey {
    pub(crate) fn of(ip: IpAddr) -> ClientKey {
        match ip {
            IpAddr::V4(v4) => ClientKey(u32::from(v4) as u128),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey(u32::from(v4) as u128),
                None => ClientKey(u128::from(v6) & !((1u128 << 64) - 1) | (1 << 32)),
            },
        }
    }
}

/// The server's limits.
#[derive(Debug)]
pub(crate) struct Limits {
    /// Every request of an address: a page and its script is 2-3 requests; a person reading
    /// and writing makes a few a second at most.
    pub(crate) requests: Buckets<ClientKey>,
    /// Failed sign-in and join attempts of an address (a token is taken for every attempt,
    /// so a burst of parallel ones is bounded too, and given back when it succeeds).
    pub(crate) sign_ins: Buckets<ClientKey>,
    /// Failed sign-in attempts at one account, from anywhere (taken and given back alike).
    pub(crate) account_sign_ins: Buckets<String>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            requests: Buckets::new(Rate {
                burst: 120.0,
                per_second: 20.0,
            }),
            sign_ins: Buckets::new(Rate {
                burst: 10.0,
                per_second: 10.0 / 60.0,
            }),
            account_sign_ins: Buckets::new(Rate {
                burst: 5.0,
                per_second: 5.0 / 60.0,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_bucket_empties_and_refills() {
        let b = Buckets::new(Rate {
            burst: 3.0,
            per_second: 1.0,
        });
        let t0 = Instant::now();
        let k = "x".to_owned();
        assert!((0..3).all(|_| b.take(&k, t0)));
        assert!(!b.take(&k, t0), "the fourth at once is refused");
        assert!(
            b.take(&"y".to_owned(), t0),
            "another key has its own bucket"
        );
        assert!(!b.take(&k, t0 + Duration::from_millis(500)));
        assert!(b.take(&k, t0 + Duration::from_millis(1600)));
        b.refund(&k);
        assert!(b.take(&k, t0 + Duration::from_millis(1600)), "given back");
        assert!(!b.take(&k, t0 + Duration::from_millis(1600)));
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ClientKey::of(a), ClientKey::of(b));
        assert_ne!(ClientKey::of(a), ClientKey::of(c));
        let v4: IpAddr = "192.168.4.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.168.4.7".parse().unwrap();
        assert_eq!(ClientKey::of(v4), ClientKey::of(mapped));
        assert_ne!(
            ClientKey::of(v4),
            ClientKey::of("192.168.4.8".parse().unwrap())
        );
    }
}
