//! The CPU time of a call ([`Cost::cpu_us`](reyna_types::Cost::cpu_us)):
//! the polling thread's CPU clock (`CLOCK_THREAD_CPUTIME_ID`) read around
//! every poll of the call's future. Time the call spends waiting (for an
//! HTTP response, a blob read) costs nothing; a call polled on several
//! threads is measured on each. A metered call polled inside another on the
//! same thread (an effect a processor calls, which the host runs inline) is
//! taken out of the outer call's figure: each call has its own cost.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

thread_local! {
    /// CPU time (ns) of the metered polls nested in the one running on this
    /// thread, which that one leaves out of its own figure.
    static NESTED_NS: Cell<u64> = const { Cell::new(0) };
}

/// A future whose polls add the CPU time they took to `used_ns`.
pub(crate) struct Metered<'a, F> {
    inner: F,
    used_ns: &'a mut u64,
}

/// Meters `inner`: every poll adds the CPU time it took on its thread, less
/// what nested metered calls took, to `used_ns`.
pub(crate) fn metered<F: Future + Unpin>(inner: F, used_ns: &mut u64) -> Metered<'_, F> {
    Metered { inner, used_ns }
}

impl<F: Future + Unpin> Future for Metered<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let enclosing = NESTED_NS.replace(0);
        let start = thread_cpu_ns();
        let poll = Pin::new(&mut this.inner).poll(cx);
        let spent = match (start, thread_cpu_ns()) {
            (Some(start), Some(end)) => end.saturating_sub(start),
            _ => 0,
        };
        // What the enclosing call leaves out: this poll, nested ones included.
        let nested = NESTED_NS.replace(enclosing.saturating_add(spent));
        *this.used_ns = this.used_ns.saturating_add(spent.saturating_sub(nested));
        poll
    }
}

/// The calling thread's CPU time (ns), or `None` if the clock is unavailable.
#[cfg(unix)]
#[allow(unsafe_code)]
fn thread_cpu_ns() -> Option<u64> {
    let mut now = std::mem::MaybeUninit::<libc::timespec>::uninit();
    // SAFETY: `now` is valid for writes of one `timespec`; the call only
    // writes it, and it is read only when the call reports success.
    let now = unsafe {
        if libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, now.as_mut_ptr()) != 0 {
            return None;
        }
        now.assume_init()
    };
    let secs = u64::try_from(now.tv_sec).ok()?;
    let nanos = u64::try_from(now.tv_nsec).ok()?;
    Some(secs.saturating_mul(1_000_000_000).saturating_add(nanos))
}

/// No per-thread CPU clock here: calls report 0.
#[cfg(not(unix))]
fn thread_cpu_ns() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Burns CPU on this thread until its clock advanced by `ns`.
    fn spin(ns: u64) {
        let start = thread_cpu_ns().unwrap();
        while thread_cpu_ns().unwrap() - start < ns {
            std::hint::black_box(0u64);
        }
    }

    /// A future that burns `ns` of CPU on each of its first `polls` polls.
    struct Busy {
        ns: u64,
        polls: u32,
    }

    impl Future for Busy {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.polls == 0 {
                return Poll::Ready(());
            }
            spin(self.ns);
            self.polls -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    #[tokio::test]
    async fn every_poll_is_counted_and_idle_polls_cost_little() {
        let mut used = 0;
        metered(
            Busy {
                ns: 2_000_000,
                polls: 3,
            },
            &mut used,
        )
        .await;
        assert!(used >= 6_000_000, "{used} ns");
        // A thousand polls that do nothing cost next to nothing.
        let mut idle = 0;
        metered(Busy { ns: 0, polls: 1000 }, &mut idle).await;
        assert!(idle < 6_000_000, "idle polls cost {idle} ns");
    }

    #[tokio::test]
    async fn a_nested_call_is_left_out_of_the_enclosing_one() {
        let mut inner_ns = 0;
        let mut outer_ns = 0;
        let outer = std::pin::pin!(async {
            spin(1_000_000);
            metered(
                Busy {
                    ns: 20_000_000,
                    polls: 1,
                },
                &mut inner_ns,
            )
            .await;
        });
        metered(outer, &mut outer_ns).await;
        assert!(inner_ns >= 20_000_000, "{inner_ns} ns");
        assert!(outer_ns >= 1_000_000, "{outer_ns} ns");
        assert!(
            outer_ns < 20_000_000,
            "the nested call counted twice: {outer_ns} ns"
        );
    }
}
