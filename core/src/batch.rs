//! Wake-ups between a host thread and the engine's threads, sent once per
//! batch of work instead of once per item.
//!
//! Engine and host threads often share a busy core. A wake-up makes the
//! woken thread runnable, and the kernel tends to switch to it at once: a
//! host loop answering 64 requests would hand the core to the engine after
//! each answer, and the engine back after each request it queued. Holding
//! the wake-ups until a batch ends lets each side work through everything
//! that is ready, then hand over once (measured on one shared core: a
//! tenth of the context switches of waking per item).
//!
//! Two halves, one per direction:
//! - A host thread brackets a batch with [`hold_wakes`] and
//!   [`release_wakes`]; what it gives the engine meanwhile (an application's
//!   answers) is handed to an engine thread in one go when it releases, and
//!   delivered from there.
//! - An engine thread passes a wake-up of the host to [`after_ready_tasks`],
//!   which runs it once the tasks that are ready now (other connections
//!   queuing their requests) have run.

use std::cell::RefCell;

use tokio::runtime::Handle;

/// A wake-up held for the end of a batch.
type Wake = Box<dyn FnOnce() + Send>;

/// What a thread holds.
#[derive(Default)]
struct Held {
    wakes: Vec<Wake>,
    /// Where the wake-ups go: the runtime of the first one that named its own.
    runtime: Option<Handle>,
}

thread_local! {
    /// `Some` while this thread holds its wake-ups.
    static HELD: RefCell<Option<Held>> = const { RefCell::new(None) };
}

/// Starts holding, on the calling thread, the wake-ups of engine tasks that
/// the exchanges answered from it would cause; true if this call started
/// it, false if this thread held them already. Whoever starts a hold must
/// call [`release_wakes`] when the batch ends: until then, what the thread
/// answered waits.
pub fn hold_wakes() -> bool {
    HELD.with(|held| {
        let mut held = held.borrow_mut();
        let started = held.is_none();
        held.get_or_insert_with(Held::default);
        started
    })
}

/// Hands the wake-ups held since [`hold_wakes`] to an engine thread, which
/// delivers them in order, and stops holding. Does nothing if this thread
/// holds none.
pub fn release_wakes() {
    let Some(held) = HELD.with(|held| held.borrow_mut().take()) else {
        return;
    };
    let deliver = move || held.wakes.into_iter().for_each(|wake| wake());
    match held.runtime {
        // One wake-up of the engine for the batch; the rest are local to it.
        Some(runtime) => {
            let deliver = RunOnDrop(Some(deliver));
            runtime.spawn(async move { drop(deliver) });
        }
        None => deliver(),
    }
}

/// Runs `wake` now, or hands it over at [`release_wakes`] if this thread
/// holds its wake-ups (to an engine thread of `runtime`, if no earlier one
/// named a runtime).
pub(crate) fn wake_now_or_held(runtime: Option<&Handle>, wake: impl FnOnce() + Send + 'static) {
    let wake = HELD.with(|held| match held.borrow_mut().as_mut() {
        Some(held) => {
            held.wakes.push(Box::new(wake));
            if held.runtime.is_none() {
                held.runtime = runtime.cloned();
            }
            None
        }
        None => Some(wake),
    });
    if let Some(wake) = wake {
        wake();
    }
}

/// Runs `wake` on this engine thread once the tasks ready now have run (at
/// the latest at the scheduler's next look at its sockets); off a tokio
/// runtime, runs it at once. If the runtime is shutting down and drops the
/// task unrun, `wake` runs then.
pub fn after_ready_tasks(wake: impl FnOnce() + Send + 'static) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        wake();
        return;
    };
    let wake = RunOnDrop(Some(wake));
    runtime.spawn(async move {
        // Tokio runs a yielded task after the work that is ready now.
        tokio::task::yield_now().await;
        drop(wake);
    });
}

/// Runs its closure when dropped.
struct RunOnDrop<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> Drop for RunOnDrop<F> {
    fn drop(&mut self) {
        if let Some(run) = self.0.take() {
            run();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    #[test]
    fn held_wakes_run_in_order_at_release_and_none_are_held_after() {
        let order = Arc::new(Mutex::new(Vec::new()));
        let push = |n: u32| {
            let order = Arc::clone(&order);
            move || order.lock().unwrap().push(n)
        };
        wake_now_or_held(None, push(0));
        assert!(hold_wakes());
        assert!(!hold_wakes()); // holding twice is holding
        wake_now_or_held(None, push(1));
        wake_now_or_held(None, push(2));
        assert_eq!(*order.lock().unwrap(), [0]);
        release_wakes();
        assert_eq!(*order.lock().unwrap(), [0, 1, 2]);
        wake_now_or_held(None, push(3));
        assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3]);
        release_wakes(); // nothing held: nothing happens
    }

    #[test]
    fn a_hold_is_the_holding_threads_own() {
        let ran = Arc::new(AtomicUsize::new(0));
        assert!(hold_wakes());
        let other = Arc::clone(&ran);
        std::thread::spawn(move || {
            wake_now_or_held(None, move || {
                other.fetch_add(1, Ordering::SeqCst);
            })
        })
        .join()
        .unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 1);
        release_wakes();
    }

    #[test]
    fn a_released_batch_is_delivered_in_order_on_an_engine_thread() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("engine")
            .build()
            .unwrap();
        let (sent, delivered) = std::sync::mpsc::channel();
        assert!(hold_wakes());
        for n in 0..3 {
            let sent = sent.clone();
            wake_now_or_held(Some(runtime.handle()), move || {
                let thread = std::thread::current().name().map(str::to_owned);
                sent.send((n, thread)).unwrap();
            });
        }
        let timeout = std::time::Duration::from_secs(5);
        assert!(delivered.recv_timeout(Duration::from_millis(50)).is_err());
        release_wakes();
        for n in 0..3 {
            let got = delivered.recv_timeout(timeout).unwrap();
            assert_eq!(got, (n, Some("engine".to_owned())));
        }
    }

    #[test]
    fn after_ready_tasks_runs_after_the_tasks_ready_now() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        runtime.block_on(async {
            let early = Arc::clone(&order);
            after_ready_tasks(move || early.lock().unwrap().push("wake"));
            let ready = Arc::clone(&order);
            tokio::spawn(async move { ready.lock().unwrap().push("ready task") })
                .await
                .unwrap();
            tokio::task::yield_now().await;
            tokio::task::yield_now().await;
        });
        assert_eq!(*order.lock().unwrap(), ["ready task", "wake"]);
        // Off a runtime: at once.
        let now = Arc::clone(&order);
        after_ready_tasks(move || now.lock().unwrap().push("now"));
        assert_eq!(order.lock().unwrap().last(), Some(&"now"));
    }

    #[test]
    fn a_wake_dropped_unrun_by_a_stopping_runtime_runs_then() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&ran);
        runtime.block_on(async {
            after_ready_tasks(move || {
                counted.fetch_add(1, Ordering::SeqCst);
            });
        });
        drop(runtime);
        assert_eq!(ran.load(Ordering::SeqCst), 1);
    }
}
