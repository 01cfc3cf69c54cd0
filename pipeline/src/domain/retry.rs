//! How failures are retried: which ones a retry can help (the class), and how long a record
//! that failed transiently waits before its next delivery (the backoff).

use std::time::Duration;

/// Whether trying again can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// May pass if tried again later: throttling, a timeout, a connection error, a 5xx, an
    /// unprocessed item, a panic, anything unknown.
    Transient,
    /// The backend refused the call itself, whatever it carried: a missing table or queue,
    /// access denied, an unknown credential. No retry helps until someone fixes the
    /// deployment, and then every retry does; so the consumer rides it out as an outage,
    /// while the HTTP API answers 500 (the operator's problem, not the client's).
    Deployment,
    /// This record or request can never pass: not an envelope of ours, content the domain
    /// refuses, a job already stored with other content, the store's validation refusal.
    Permanent,
}

impl FailureClass {
    /// Whether the consumer retries a record that failed so.
    pub fn is_retried(self) -> bool {
        self != Self::Permanent
    }
}

impl std::str::FromStr for FailureClass {
    type Err = anyhow::Error;

    /// The class by the name [`Display`](std::fmt::Display) gives it.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        [Self::Transient, Self::Deployment, Self::Permanent]
            .into_iter()
            .find(|class| class.to_string() == name)
            .ok_or_else(|| anyhow::anyhow!("`{name}` is no failure class"))
    }
}

impl std::fmt::Display for FailureClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Transient => "transient",
            Self::Deployment => "deployment",
            Self::Permanent => "permanent",
        })
    }
}

/// SQS's longest visibility timeout, and so the longest backoff.
pub const MAX_BACKOFF: Duration = Duration::from_secs(12 * 3600);

/// Exponential backoff with jitter on its upper half: before its `n`-th delivery fails (`n`
/// from 1), a record is hidden for `min(base × 2^(n−1), cap)` seconds, of which a random
/// part of the upper half is dropped, so the wait is at least half of that. Half-jitter keeps
/// the guarantee an outage needs (a lower bound on the total wait) while spreading a batch's
/// retries so that they do not come back as one burst when the store recovers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub base: Duration,
    pub cap: Duration,
}

impl RetryPolicy {
    /// As in template.yaml: with `MaxReceiveCount` 9, a store outage of an hour dead-letters
    /// nothing ([`RetryPolicy::outage_ridden_out`] is 61 min 45 s), and a record that always
    /// fails transiently reaches the dead-letter queue within about two hours.
    pub const DEFAULT: Self = Self {
        base: Duration::from_secs(30),
        cap: Duration::from_secs(3600),
    };

    /// A policy, or why not: whole seconds, base at least 1 s, cap from base to 12 h.
    pub fn new(base_secs: u64, cap_secs: u64) -> Result<Self, String> {
        if base_secs == 0 {
            return Err("the retry base must be at least 1 second".into());
        }
        if cap_secs < base_secs || cap_secs > MAX_BACKOFF.as_secs() {
            return Err(format!(
                "the retry cap must be from the base ({base_secs} s) to 43200 s (SQS's longest visibility timeout), not {cap_secs}"
            ));
        }
        Ok(Self {
            base: Duration::from_secs(base_secs),
            cap: Duration::from_secs(cap_secs),
        })
    }

    /// The full wait after the `receive_count`-th delivery failed, before jitter.
    pub fn ceiling(&self, receive_count: u32) -> Duration {
        let doublings = receive_count.saturating_sub(1).min(32);
        self.base
            .saturating_mul(1u32 << doublings.min(31))
            .min(self.cap)
            .min(MAX_BACKOFF)
    }

    /// The wait after the `receive_count`-th delivery failed, `unit` (from 0 to 1) choosing
    /// where in the upper half it falls; whole seconds, as SQS takes them.
    pub fn backoff(&self, receive_count: u32, unit: f64) -> Duration {
        let ceiling = self.ceiling(receive_count).as_secs();
        let floor = ceiling.div_ceil(2);
        let jitter = ((ceiling - floor) as f64 * unit.clamp(0.0, 1.0)).round() as u64;
        Duration::from_secs(floor + jitter)
    }

    /// The shortest time from a record's first delivery to its last one (the
    /// `max_receive_count`-th) when every delivery fails: an outage of the store shorter than
    /// this, from whenever it starts, leaves the last delivery to a healthy store, so it
    /// dead-letters nothing. A record that fails its last delivery is doomed (SQS moves it at
    /// its next receive, which the consumer makes at once), so no wait after it counts.
    pub fn outage_ridden_out(&self, max_receive_count: u32) -> Duration {
        (1..max_receive_count).map(|n| self.backoff(n, 0.0)).sum()
    }

    /// The longest time a record that always fails transiently takes to reach the dead-letter
    /// queue (plus the time its deliveries themselves take).
    pub fn slowest_dead_letter(&self, max_receive_count: u32) -> Duration {
        (1..max_receive_count).map(|n| self.backoff(n, 1.0)).sum()
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn the_wait_doubles_from_the_base_up_to_the_cap() {
        let policy = RetryPolicy::new(30, 3600).unwrap();
        let ceilings: Vec<u64> = (1..=9).map(|n| policy.ceiling(n).as_secs()).collect();
        assert_eq!(ceilings, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
        // A receive count far past any queue's limit neither overflows nor passes the cap.
        assert_eq!(policy.ceiling(u32::MAX), secs(3600));
        assert_eq!(policy.ceiling(0), secs(30));
    }

    #[test]
    fn jitter_stays_in_the_upper_half() {
        let policy = RetryPolicy::new(30, 3600).unwrap();
        for n in 1..=10 {
            let ceiling = policy.ceiling(n);
            let low = policy.backoff(n, 0.0);
            let high = policy.backoff(n, 1.0);
            assert_eq!(high, ceiling, "receive {n}");
            assert!(low * 2 >= ceiling && low <= ceiling, "receive {n}: {low:?}");
            for unit in [0.1, 0.5, 0.9, -3.0, 7.0] {
                let wait = policy.backoff(n, unit);
                assert!(
                    (low..=high).contains(&wait),
                    "receive {n}, {unit}: {wait:?}"
                );
            }
        }
        // An odd ceiling rounds its floor up: the wait is never under half.
        let odd = RetryPolicy::new(1, 1).unwrap();
        assert_eq!(odd.backoff(1, 0.0), secs(1));
    }

    #[test]
    fn the_defaults_ride_out_an_hour_with_nine_receives() {
        let policy = RetryPolicy::DEFAULT;
        // The waits after the first 8 deliveries: 15 + 30 + 60 + 120 + 240 + 480 + 960 + 1800 s.
        assert_eq!(policy.outage_ridden_out(9), secs(3705));
        assert!(policy.outage_ridden_out(8) < secs(3600), "9 is the fewest");
        assert_eq!(policy.slowest_dead_letter(9), secs(7410));
        // One receive: no retry at all.
        assert_eq!(policy.outage_ridden_out(1), secs(0));
    }

    #[test]
    fn a_policy_refuses_a_zero_base_and_a_cap_outside_base_to_twelve_hours() {
        assert!(RetryPolicy::new(0, 10).is_err());
        assert!(RetryPolicy::new(10, 5).is_err());
        assert!(RetryPolicy::new(10, 43_201).is_err());
        assert!(RetryPolicy::new(10, 43_200).is_ok());
        assert!(RetryPolicy::new(1, 1).is_ok());
    }
}
