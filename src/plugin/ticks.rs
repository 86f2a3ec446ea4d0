//! What a running guest call does on each epoch tick: spend one tick of its deadline,
//! yield to the executor, and note when it has proved slow, so that the rest of it moves
//! off the workers ([`super::offload`]) and the calls queued for its instance find another.
//!
//! A call is slow once it has *run* for [`SLOW_RUN`]: time spent yielded (queued for a
//! worker) does not count, so a fast call that an overloaded machine keeps waiting is not
//! mistaken for a slow one; and it takes two ticks, so a fast call that the operating
//! system preempted once is not either. (Counting wall time, or ticks seen, funnelled
//! merely queued calls off the workers and collapsed the chat scenario, BENCHMARKS.md.)

use super::host::HostState;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::sync::futures::Notified;
use wasmtime::UpdateDeadline;

/// Running time after which a call is slow.
pub const SLOW_RUN: Duration = Duration::from_millis(1);

/// Microseconds since the first call of this process, for [`Turn`]'s clock fields.
fn micros(at: Instant) -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    u64::try_from(at.saturating_duration_since(base).as_micros()).unwrap_or(u64::MAX)
}

/// One instance's running call as the epoch callback sees it: when it last resumed and
/// whether it has proved slow. A `spare` instance keeps its `Turn` across rebuilds, so
/// that callers can watch it.
#[derive(Default, Clone)]
pub struct Turn(Arc<Held>);

#[derive(Default)]
struct Held {
    /// When the call last started or resumed running, µs ([`micros`]).
    resumed: AtomicU64,
    /// The running call has run for [`SLOW_RUN`].
    slow: AtomicBool,
    /// Told when a call turns slow.
    slowed: Notify,
}

impl Turn {
    /// Whether the call running on this instance has proved slow.
    pub fn is_slow(&self) -> bool {
        self.0.slow.load(Ordering::Acquire)
    }

    /// Resolves when a call on this instance turns slow. Enable it (`Notified::enable`)
    /// before checking [`Turn::is_slow`], so that no turn is missed in between.
    pub fn slowed(&self) -> Notified<'_> {
        self.0.slowed.notified()
    }

    /// Marks the running call slow before it has proved so (a channel whose last call was
    /// slow), so that calls queued for its instance find another at once.
    pub fn mark_slow(&self) {
        if !self.0.slow.swap(true, Ordering::AcqRel) {
            self.0.slowed.notify_waiters();
        }
    }

    /// Marks the start of a call at `now`; returns a guard that ends it when dropped
    /// (a call's future may be dropped mid-call when its connection goes away, and a slow
    /// slow mark must never outlive its call).
    pub fn start(&self, now: Instant) -> CallGuard {
        self.0.resumed.store(micros(now), Ordering::Relaxed);
        CallGuard(self.clone())
    }

    /// Yields through tokio's LIFO slot (the task wakes itself and resumes soon), then
    /// notes when it resumed.
    fn quick(&self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let turn = self.clone();
        Box::pin(async move {
            WakeOnce(false).await;
            turn.0.resumed.store(micros(Instant::now()), Ordering::Relaxed);
        })
    }

    /// Yields to the back of the queue (on the slow runtime, slow calls take turns tick
    /// by tick), then notes when it resumed.
    fn next(&self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let turn = self.clone();
        Box::pin(async move {
            tokio::task::yield_now().await;
            turn.0.resumed.store(micros(Instant::now()), Ordering::Relaxed);
        })
    }
}

/// Ends a call on drop: see [`Turn::start`].
pub struct CallGuard(Turn);

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.0.0.slow.store(false, Ordering::Release);
    }
}

/// Pending once, having woken its task: a plain yield.
struct WakeOnce(bool);

impl Future for WakeOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// The epoch callback: interrupts the guest once its deadline's ticks are spent; else
/// adds the time it ran since it last resumed and yields: at once while it has run less
/// than [`SLOW_RUN`] (a call that merely straddles a tick resumes soon and keeps its
/// instance only briefly; a yield to the back of the queue for every call measured worse
/// in the chat scenario), to the back of the queue once it is slow: the yield that
/// [`super::offload`] takes to move it.
pub fn on_tick(state: &mut HostState) -> UpdateDeadline {
    if state.ticks_left <= 1 {
        return UpdateDeadline::Interrupt;
    }
    state.ticks_left -= 1;
    let held = &state.turn.0;
    let ran = micros(Instant::now()).saturating_sub(held.resumed.load(Ordering::Relaxed));
    state.ran = state.ran.saturating_add(Duration::from_micros(ran));
    state.ticks_seen += 1;
    // Two ticks as well: a fast call that the operating system preempted once shows a
    // long run at its one tick, and finishes right after it.
    if !proved_slow(state) {
        return UpdateDeadline::YieldCustom(1, state.turn.quick());
    }
    state.turn.mark_slow();
    UpdateDeadline::YieldCustom(1, state.turn.next())
}

/// Whether the call that last ran in `state` proved slow (whatever [`Turn::mark_slow`]
/// said beforehand).
pub fn proved_slow(state: &HostState) -> bool {
    state.ran >= SLOW_RUN && state.ticks_seen >= 2
}

/// Readies `state` for a call of at most `ticks` starting at `now`; the guard ends it.
pub fn start(state: &mut HostState, ticks: u64, now: Instant) -> CallGuard {
    state.ticks_left = ticks;
    state.ticks_seen = 0;
    state.ran = Duration::ZERO;
    state.turn.start(now)
}
