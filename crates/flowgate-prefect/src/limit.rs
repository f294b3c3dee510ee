//! How many writes a client keeps in flight at once, adapted to the server:
//! additive increase while it answers fast, multiplicative decrease when it
//! says it is busy (503, 429) or a write times out.
//!
//! Prefect's open-source server on SQLite serializes writes on one database
//! lock: measured on 3.9.1, 8 concurrent deployment writes already draw 503s,
//! while 2 to 4 are absorbed and overlap the request round trips. A fixed
//! number would be too many for one server and too few for another (Prefect on
//! PostgreSQL, Prefect Cloud), so the limit starts low, grows by one after a
//! whole window of fast answers, and halves on the first sign of overload.
//! "Fast" is within twice the quickest write seen: a server that queues our
//! writes answers slower before it answers 503. Each busy answer also doubles
//! the window the next increase waits for (each increase halves it again), so
//! against a server that is busy at two writes the limit mostly stays at one
//! instead of probing two after every answer.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

/// Writes in flight when a client starts.
pub const START: usize = 2;
/// Never more than this, however fast the server: beyond it the server's own
/// worker pool queues them and nothing is gained.
pub const MAX: usize = 16;
const MAX_PATIENCE: usize = 16;

/// What happened to one write, as the limit sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The server answered (any status but busy) after this long.
    Answered(Duration),
    /// 503, 429 or a timeout: the server has more than it can take.
    Busy,
}

/// What the limit did over a client's life, for reports and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// The limit now.
    pub limit: usize,
    /// The most writes that were ever in flight at once.
    pub peak_in_flight: usize,
    /// How many times the limit was cut for a busy answer.
    pub backoffs: u64,
    /// How many times it grew.
    pub increases: u64,
}

#[derive(Debug)]
struct State {
    limit: usize,
    in_flight: usize,
    /// Fast answers since the limit last changed.
    fast: usize,
    /// Windows of fast answers an increase waits for: 1, doubled by each busy
    /// answer (up to [`MAX_PATIENCE`]), halved by each increase.
    patience: usize,
    quickest: Option<Duration>,
    stats: WriteStats,
}

/// The adaptive limit; shared by every write of one client.
#[derive(Debug)]
pub struct WriteLimit {
    state: Mutex<State>,
    freed: Notify,
}

impl Default for WriteLimit {
    fn default() -> Self {
        Self::new(START)
    }
}

impl WriteLimit {
    pub fn new(start: usize) -> Self {
        let limit = start.clamp(1, MAX);
        Self {
            state: Mutex::new(State {
                limit,
                in_flight: 0,
                fast: 0,
                patience: 1,
                quickest: None,
                stats: WriteStats { limit, ..WriteStats::default() },
            }),
            freed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state holds counters only; a panic elsewhere cannot leave it inconsistent.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits until a write may start; the permit gives its place back when dropped.
    pub async fn acquire(&self) -> Permit<'_> {
        loop {
            let notified = self.freed.notified();
            {
                let mut state = self.lock();
                if state.in_flight < state.limit {
                    state.in_flight += 1;
                    state.stats.peak_in_flight = state.stats.peak_in_flight.max(state.in_flight);
                    return Permit { limit: self };
                }
            }
            notified.await;
        }
    }

    /// Adapts the limit to one write's outcome.
    pub fn record(&self, outcome: Outcome) {
        let mut state = self.lock();
        match outcome {
            Outcome::Busy => {
                state.limit = (state.limit / 2).max(1);
                state.fast = 0;
                state.patience = (state.patience * 2).min(MAX_PATIENCE);
                state.stats.backoffs += 1;
            }
            Outcome::Answered(took) => {
                let quickest = state.quickest.map_or(took, |q| q.min(took));
                state.quickest = Some(quickest);
                if took > quickest * 2 {
                    return;
                }
                state.fast += 1;
                if state.fast >= state.limit * state.patience && state.limit < MAX {
                    state.limit += 1;
                    state.fast = 0;
                    state.patience = (state.patience / 2).max(1);
                    state.stats.increases += 1;
                }
            }
        }
        state.stats.limit = state.limit;
        drop(state);
        self.freed.notify_waiters();
    }

    pub fn stats(&self) -> WriteStats {
        self.lock().stats
    }
}

/// A place among the writes in flight.
#[derive(Debug)]
pub struct Permit<'a> {
    limit: &'a WriteLimit,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.limit.lock().in_flight -= 1;
        self.limit.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    const FAST: Duration = Duration::from_millis(10);

    #[test]
    fn grows_by_one_per_window_of_fast_answers_and_halves_when_busy() {
        let limit = WriteLimit::new(2);
        limit.record(Outcome::Answered(FAST));
        assert_eq!(limit.stats().limit, 2, "one fast answer is not yet a window of 2");
        limit.record(Outcome::Answered(FAST));
        assert_eq!(limit.stats().limit, 3);
        for _ in 0..3 {
            limit.record(Outcome::Answered(FAST));
        }
        assert_eq!(limit.stats().limit, 4);
        limit.record(Outcome::Busy);
        assert_eq!(limit.stats().limit, 2);
        limit.record(Outcome::Busy);
        limit.record(Outcome::Busy);
        assert_eq!(limit.stats().limit, 1, "never below one write");
        let stats = limit.stats();
        assert_eq!((stats.increases, stats.backoffs), (2, 3));
    }

    #[test]
    fn each_busy_answer_makes_the_next_increase_wait_longer() {
        let limit = WriteLimit::new(2);
        limit.record(Outcome::Busy);
        limit.record(Outcome::Busy);
        assert_eq!(limit.stats().limit, 1);
        // Patience 4: four windows of one answer before the limit is 2 again.
        for _ in 0..3 {
            limit.record(Outcome::Answered(FAST));
        }
        assert_eq!(limit.stats().limit, 1);
        limit.record(Outcome::Answered(FAST));
        assert_eq!(limit.stats().limit, 2);
        // Patience 2 now: two windows of two answers.
        for _ in 0..3 {
            limit.record(Outcome::Answered(FAST));
        }
        assert_eq!(limit.stats().limit, 2);
        limit.record(Outcome::Answered(FAST));
        assert_eq!(limit.stats().limit, 3);
    }

    #[test]
    fn slow_answers_do_not_grow_it_and_it_stops_at_the_maximum() {
        let limit = WriteLimit::new(2);
        limit.record(Outcome::Answered(FAST));
        for _ in 0..10 {
            limit.record(Outcome::Answered(FAST * 3));
        }
        assert_eq!(limit.stats().limit, 2, "answers three times slower than the quickest are queueing");
        for _ in 0..1_000 {
            limit.record(Outcome::Answered(FAST));
        }
        assert_eq!(limit.stats().limit, MAX);
    }

    #[tokio::test]
    async fn never_more_writes_in_flight_than_the_limit() {
        let limit = Arc::new(WriteLimit::new(3));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let limit = Arc::clone(&limit);
            tasks.push(tokio::spawn(async move {
                let _permit = limit.acquire().await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(limit.stats().peak_in_flight, 3);
        assert_eq!(limit.lock().in_flight, 0);
    }
}
