//! Per-connection rate limits (`publish_rate`, `subscribe_rate`): a token bucket holding
//! one second's worth, refilled continuously, on tokio's clock (so paused-time tests can
//! drive it).

use tokio::time::Instant;

/// A bucket of `per_second` tokens; 0 means no limit.
#[derive(Debug)]
pub struct Rate {
    per_second: u32,
    tokens: f32,
    at: Instant,
}

impl Rate {
    /// A full bucket.
    pub fn new(per_second: u32) -> Self {
        Self { per_second, tokens: per_second as f32, at: Instant::now() }
    }

    /// Takes one token; `false` when none is left.
    pub fn take(&mut self) -> bool {
        if self.per_second == 0 {
            return true;
        }
        let now = Instant::now();
        let rate = self.per_second as f32;
        self.tokens = (self.tokens + (now - self.at).as_secs_f32() * rate).min(rate);
        self.at = now;
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }

    /// The limit.
    pub fn per_second(&self) -> u32 {
        self.per_second
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_second_s_worth_then_one_per_interval() {
        let mut rate = Rate::new(10);
        assert_eq!((0..20).filter(|_| rate.take()).count(), 10, "a burst of one second's worth");
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(rate.take());
        assert!(!rate.take());
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!((0..20).filter(|_| rate.take()).count(), 10, "refills to one second's worth only");
        let mut unlimited = Rate::new(0);
        assert!((0..10_000).all(|_| unlimited.take()));
    }
}
