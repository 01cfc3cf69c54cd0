//! The pipeline's flow, minute by minute: how many messages were enqueued, stored, failed
//! (by class) and dead-lettered, how deep the queue was, and how long messages took from
//! their 202 to stored (p50, p99). The runner keeps it in SQLite; on AWS it is CloudWatch's,
//! from the functions' EMF metrics and SQS's own.

/// How many minutes of history a caller asks for: 1 to a day (what the runner keeps).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryWindow(u32);

impl HistoryWindow {
    pub const MAX_MINUTES: u32 = 24 * 60;
    pub const DEFAULT: Self = Self(60);

    pub fn minutes(minutes: &str) -> Result<Self, String> {
        match minutes.parse::<u32>() {
            Ok(n) if (1..=Self::MAX_MINUTES).contains(&n) => Ok(Self(n)),
            _ => Err(format!(
                "minutes must be a whole number from 1 to {} (a day), not {minutes:?}",
                Self::MAX_MINUTES
            )),
        }
    }

    /// The window's minutes, oldest first, each as the unix milliseconds it starts at; the
    /// last is the minute `now_ms` falls in.
    pub fn minute_starts(self, now_ms: u64) -> impl Iterator<Item = u64> {
        let current = minute_of(now_ms);
        (0..u64::from(self.0))
            .rev()
            .map(move |back| current.saturating_sub(back * MINUTE_MS))
    }
}

pub const MINUTE_MS: u64 = 60_000;

/// The start of the minute `ms` falls in.
pub fn minute_of(ms: u64) -> u64 {
    ms - ms % MINUTE_MS
}

/// One minute of flow. Counts are what happened in the minute; `backlog` the most messages
/// seen waiting in it (`None`: not sampled); latencies `None` when nothing was stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowMinute {
    /// Unix milliseconds at the minute's start.
    pub start_ms: u64,
    pub enqueued: u64,
    pub stored: u64,
    /// Failed and retried: a cause that passes (throttling, timeouts) ...
    pub failed_transient: u64,
    /// ... or a deployment that is not right yet (a missing table, access denied).
    pub failed_deployment: u64,
    /// Failed for good (poison): dead-lettered at once.
    pub failed_permanent: u64,
    /// Moved to the dead-letter queue, at once or after their last receive.
    pub dead_lettered: u64,
    pub backlog: Option<u64>,
    pub latency_p50_ms: Option<u64>,
    pub latency_p99_ms: Option<u64>,
}

/// What one consumer invocation adds to the minute it ran in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchFlow {
    pub at_ms: u64,
    pub stored: u64,
    pub failed_transient: u64,
    pub failed_deployment: u64,
    pub failed_permanent: u64,
    pub dead_lettered: u64,
    /// Each stored message's time from its 202 to stored.
    pub latencies_ms: Vec<u64>,
}

/// End-to-end latencies as a histogram: buckets growing by 5 %, so a percentile read from it
/// is within 2.5 % of the exact one, whatever the range (a millisecond to days), in a few
/// hundred counters a minute however many messages there were.
pub mod latency {
    const GROWTH: f64 = 1.05;

    /// The bucket `ms` falls in.
    pub fn bucket(ms: u64) -> u32 {
        ((ms as f64 + 1.0).ln() / GROWTH.ln()).floor() as u32
    }

    /// The value a bucket stands for: the middle of its range.
    pub fn value(bucket: u32) -> u64 {
        let low = GROWTH.powi(bucket as i32) - 1.0;
        let high = GROWTH.powi(bucket as i32 + 1) - 1.0;
        ((low + high) / 2.0).round() as u64
    }

    /// The `quantile` (0 to 1) of `(bucket, count)` pairs, in any order: the value of the
    /// bucket that holds the sample of that rank. `None` when there is no sample.
    pub fn percentile(buckets: &[(u32, u64)], quantile: f64) -> Option<u64> {
        let total: u64 = buckets.iter().map(|(_, count)| count).sum();
        if total == 0 {
            return None;
        }
        let mut sorted = buckets.to_vec();
        sorted.sort_unstable();
        // The nearest-rank definition: the smallest value with at least that share below it.
        let rank = ((quantile * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        sorted.into_iter().find_map(|(bucket, count)| {
            seen += count;
            (seen >= rank).then(|| value(bucket))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_is_1_to_1440_minutes_and_says_what_to_fix() {
        assert_eq!(HistoryWindow::minutes("60"), Ok(HistoryWindow(60)));
        assert_eq!(HistoryWindow::minutes("1440"), Ok(HistoryWindow(1440)));
        for bad in ["0", "1441", "-1", "1.5", "", "sixty"] {
            let error = HistoryWindow::minutes(bad).unwrap_err();
            assert!(error.contains("from 1 to 1440"), "{bad}: {error}");
        }
    }

    #[test]
    fn a_window_ends_at_the_current_minute() {
        let now = 1_800_000_123_456;
        let starts: Vec<u64> = HistoryWindow::minutes("3")
            .unwrap()
            .minute_starts(now)
            .collect();
        assert_eq!(
            starts,
            [1_800_000_000_000, 1_800_000_060_000, 1_800_000_120_000]
        );
        assert!(starts[2] <= now && now < starts[2] + MINUTE_MS);
    }

    #[test]
    fn percentiles_from_buckets_are_within_two_and_a_half_percent() {
        for ms in [0, 1, 7, 99, 1_000, 12_345, 3_600_000, 86_400_000] {
            let estimate = latency::value(latency::bucket(ms)) as f64;
            let error = (estimate - ms as f64).abs();
            assert!(
                error <= 0.025 * ms as f64 + 1.0,
                "{ms} ms read as {estimate}"
            );
        }
        // 1..=1000 ms, one sample each: p50 near 500, p99 near 990.
        let mut buckets = std::collections::HashMap::new();
        for ms in 1..=1000 {
            *buckets.entry(latency::bucket(ms)).or_insert(0) += 1;
        }
        let buckets: Vec<(u32, u64)> = buckets.into_iter().collect();
        let p50 = latency::percentile(&buckets, 0.5).unwrap();
        let p99 = latency::percentile(&buckets, 0.99).unwrap();
        assert!((488..=513).contains(&p50), "p50 {p50}");
        assert!((965..=1015).contains(&p99), "p99 {p99}");
        assert_eq!(latency::percentile(&[], 0.5), None);
    }
}
