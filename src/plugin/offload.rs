//! Where a plugin call goes once it has proved slow ([`super::ticks`]): off the gateway's
//! tokio workers, onto a small runtime of its own whose threads the operating system
//! runs only when nothing else wants the CPU (`SCHED_IDLE` on Linux).
//!
//! Why: taking turns kept slow calls from occupying every worker, yet a fast channel's
//! p99 beside a plugin spinning 15 ms per call still rose from 1 to 5 ms — exactly what
//! the same CPU spun by another process at the same priority costs it (BENCHMARKS.md,
//! "Slow plugins take turns"). Inside the gateway no scheduling can beat that; below the
//! workers' priority, the kernel preempts the slow guest whenever a worker (or anything
//! else on the machine) has work. A slow plugin gets the CPU that is left: on a saturated
//! machine none, and its calls then fail at their wall-clock bound by the plugin's
//! `on_error` policy, which is where a slow plugin's cost belongs.
//!
//! A call starts where its caller runs (most calls finish within their first tick, and
//! a hop to another thread would cost them a wake-up each); only the rest of a slow call
//! moves, as one future, and its caller waits for it as a future. The first milliseconds
//! of a slow call still spin at the workers' priority, so an outbound call for a channel
//! whose last call was slow starts over there.

use super::ticks::Turn;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

/// Runs `job` here until the call it drives has proved slow on `turn`, then the rest of
/// it on the slow runtime; with `there`, all of it there (a channel whose last call was
/// slow). Returns whether it ran there. Dropping the returned future drops `job`
/// wherever it runs.
pub async fn offload<T: Send + 'static>(
    turn: &Turn,
    there: bool,
    job: impl Future<Output = T> + Send + 'static,
) -> (T, bool) {
    let mut job = Box::pin(job);
    let slow = runtime();
    if !there || slow.is_none() {
        let here = std::future::poll_fn(|cx| match job.as_mut().poll(cx) {
            Poll::Ready(output) => Poll::Ready(Some(output)),
            Poll::Pending if turn.is_slow() && slow.is_some() => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        })
        .await;
        if let Some(output) = here {
            return (output, false);
        }
    }
    let Some(slow) = slow else { return (job.await, false) };
    match (Aborting(slow.spawn(job))).await {
        Ok(output) => (output, true),
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        // Only a runtime shutting down cancels a task, and this one is never shut down.
        Err(error) => std::panic::panic_any(error.to_string()),
    }
}

/// Aborts the task when the waiting caller goes away (its connection closed).
struct Aborting<T>(JoinHandle<T>);

impl<T> Future for Aborting<T> {
    type Output = Result<T, tokio::task::JoinError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for Aborting<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The slow runtime, built on first use; `None` when its threads cannot be started, and
/// slow calls then stay where they are.
fn runtime() -> Option<&'static Runtime> {
    static SLOW: OnceLock<Option<Runtime>> = OnceLock::new();
    SLOW.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let built = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("sluice-slow-plugin")
            .on_thread_start(lower_priority)
            .enable_time()
            .build();
        built.inspect_err(|e| tracing::warn!(error = %e, "slow plugin calls stay on the workers")).ok()
    })
    .as_ref()
}

/// Moves the calling thread to `SCHED_IDLE`: a thread of any other policy that wakes
/// preempts it at once. (Nice 19 measured no better than the workers' own priority: the
/// kernel lets even a nice-19 thread finish its time slice first.) Elsewhere than Linux
/// the threads keep the workers' priority.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::unix::{
            NormalThreadSchedulePolicy, ThreadSchedulePolicy, set_thread_priority_and_policy,
            thread_native_id,
        };
        let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        let lowered =
            set_thread_priority_and_policy(thread_native_id(), thread_priority::ThreadPriority::Min, idle);
        if let Err(error) = lowered {
            tracing::warn!(?error, "slow plugin calls run at the workers' priority");
        }
    }
}
