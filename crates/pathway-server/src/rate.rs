//! Requests per second per department: a token bucket per department,
//! holding at most one second's worth of requests (the burst). Time is
//! passed in, so the arithmetic is testable without sleeping.

use std::{collections::BTreeMap, sync::Mutex, time::Instant};

/// Departments tracked at most; a department beyond it is refused rather
/// than growing the table (there are ten departments).
pub const DEPARTMENTS_TRACKED_MAX: usize = 64;

#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    buckets: Mutex<BTreeMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    pub fn new(per_second: u32) -> Self {
        assert!(per_second > 0, "a rate of 0 would refuse everything");
        RateLimiter {
            per_second: f64::from(per_second),
            buckets: Mutex::new(BTreeMap::new()),
        }
    }

    /// Takes one request for `department` at `now`; on refusal, the whole
    /// seconds after which a request will be admitted again (at least 1).
    pub fn admit(&self, department: &str, now: Instant) -> Result<(), u64> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if !buckets.contains_key(department) && buckets.len() >= DEPARTMENTS_TRACKED_MAX {
            return Err(1);
        }
        let bucket = buckets.entry(department.to_owned()).or_insert(Bucket {
            tokens: self.per_second,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.per_second);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / self.per_second;
            Err((wait.ceil() as u64).max(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn burst_then_refill_per_department() {
        let r = RateLimiter::new(2);
        let t = Instant::now();
        assert_eq!(r.admit("dpf", t), Ok(()));
        assert_eq!(r.admit("dpf", t), Ok(()));
        assert_eq!(r.admit("dpf", t), Err(1));
        assert_eq!(r.admit("hrss", t), Ok(()), "departments are apart");
        assert_eq!(r.admit("dpf", t + Duration::from_millis(500)), Ok(()));
        assert_eq!(r.admit("dpf", t + Duration::from_millis(500)), Err(1));
    }
}
