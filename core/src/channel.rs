//! Broadcast channels: a ring of encoded events that is also the history, and
//! subscribers that are cursors into it.
//!
//! Publishing encodes once, pushes one entry and wakes the subscribers that
//! are waiting; each subscriber's connection then copies out references to
//! every entry between its cursor and the head and writes them together. A
//! subscriber whose cursor falls off the ring's tail is too slow: it is
//! disconnected (its client reconnects and resumes from history), so no
//! subscriber ever holds the publisher back or grows memory.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use slab::Slab;

use crate::error::{Error, Result};
use crate::event::Event;
use crate::frame::EventBuf;
use crate::request::Request;
use crate::stats::Counters;

/// Options of a broadcast channel.
#[derive(Clone, Debug)]
pub struct ChannelOptions {
    /// How many recent events are kept for clients that resume with
    /// `Last-Event-ID`. 0 keeps none (no replay). Default 1000.
    pub history: usize,
    /// Give events published without an id an increasing id, so that resume
    /// works out of the box. Default on.
    pub auto_id: bool,
    /// How many events a subscriber may fall behind before it is disconnected
    /// as too slow (it then reconnects and resumes). Default 1024.
    pub max_lag: usize,
    /// Keep-alive period for this channel, overriding the server's.
    pub keepalive: Option<Duration>,
    /// Most subscribers at once; beyond it new ones get 503. Default none.
    pub max_subscribers: Option<usize>,
}

impl Default for ChannelOptions {
    fn default() -> Self {
        ChannelOptions {
            history: 1000,
            auto_id: true,
            max_lag: 1024,
            keepalive: None,
            max_subscribers: None,
        }
    }
}

/// An event id as it was sent, returned by [`Channel::publish`].
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EventId(Bytes);

impl EventId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        // The bytes are a slice of an id that was a `str` when encoded.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A hook run with the request of a subscriber that joined or left.
pub type PresenceHook = Arc<dyn Fn(&Request) + Send + Sync>;

/// A broadcast channel: every published event reaches every current
/// subscriber. Cheap to clone; publish from any thread.
#[derive(Clone)]
pub struct Channel {
    inner: Arc<ChannelInner>,
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("path", &self.inner.path)
            .field("subscribers", &self.subscribers())
            .finish()
    }
}

pub(crate) struct ChannelInner {
    path: String,
    options: ChannelOptions,
    capacity: usize,
    state: Mutex<RingState>,
    subscribers: AtomicUsize,
    published: AtomicU64,
    on_subscribe: RwLock<Option<PresenceHook>>,
    on_unsubscribe: RwLock<Option<PresenceHook>>,
    counters: Arc<Counters>,
}

struct Entry {
    id: Option<Bytes>,
    bytes: Bytes,
}

struct RingState {
    ring: VecDeque<Entry>,
    /// Sequence number the next published event gets; the ring holds
    /// `next_seq - ring.len() .. next_seq`.
    next_seq: u64,
    /// One slot per subscriber: where its waker sits in `waiting`, if it does.
    slots: Slab<Option<usize>>,
    /// Subscribers parked until the next publish, as (slot key, waker).
    waiting: Vec<(usize, Waker)>,
    closed: bool,
}

impl RingState {
    fn first_seq(&self) -> u64 {
        self.next_seq - self.ring.len() as u64
    }

    fn entry(&self, seq: u64) -> Option<&Entry> {
        let index = seq.checked_sub(self.first_seq())?;
        self.ring.get(usize::try_from(index).ok()?)
    }

    fn take_waiting(&mut self) -> Vec<(usize, Waker)> {
        let waiting = std::mem::take(&mut self.waiting);
        for (key, _) in &waiting {
            if let Some(slot) = self.slots.get_mut(*key) {
                *slot = None;
            }
        }
        waiting
    }

    fn park(&mut self, key: usize, waker: &Waker) {
        match self.slots.get(key).copied().flatten() {
            Some(at) => {
                if !self.waiting[at].1.will_wake(waker) {
                    self.waiting[at].1 = waker.clone();
                }
            }
            None => {
                self.slots[key] = Some(self.waiting.len());
                self.waiting.push((key, waker.clone()));
            }
        }
    }

    fn unpark(&mut self, key: usize) {
        if let Some(Some(at)) = self.slots.get(key).copied() {
            self.waiting.swap_remove(at);
            if let Some(&(moved, _)) = self.waiting.get(at) {
                self.slots[moved] = Some(at);
            }
        }
    }
}

/// Why a subscription could not be made.
pub(crate) enum SubscribeError {
    Stopped,
    Full,
}

impl Channel {
    pub(crate) fn new(path: String, options: ChannelOptions, counters: Arc<Counters>) -> Self {
        let capacity = options.history.max(options.max_lag).max(1);
        Channel {
            inner: Arc::new(ChannelInner {
                path,
                capacity,
                state: Mutex::new(RingState {
                    ring: VecDeque::with_capacity(capacity.min(1024)),
                    next_seq: 1,
                    slots: Slab::new(),
                    waiting: Vec::new(),
                    closed: false,
                }),
                options,
                subscribers: AtomicUsize::new(0),
                published: AtomicU64::new(0),
                on_subscribe: RwLock::new(None),
                on_unsubscribe: RwLock::new(None),
                counters,
            }),
        }
    }

    /// The channel's route path.
    pub fn path(&self) -> &str {
        &self.inner.path
    }

    /// The channel's options.
    pub fn options(&self) -> &ChannelOptions {
        &self.inner.options
    }

    /// Publishes `event` to every current subscriber and into the history.
    ///
    /// Never waits for the network: it encodes once, appends to the ring and
    /// wakes the waiting subscribers. Safe from any thread. Returns the id the
    /// event was sent with (its own, or the channel's automatic id), or `None`
    /// if it has none. Fails with [`Error::Stopped`] once the server stopped.
    pub fn publish(&self, event: Event) -> Result<Option<EventId>> {
        let inner = &*self.inner;
        // Events that bring their own id are encoded outside the lock; an
        // automatic id depends on the sequence number, so it is encoded under it.
        let ready = (event.id_str().is_some() || !inner.options.auto_id)
            .then(|| event.encode_with_id(event.id_str()));
        let (id, waiting) = {
            let mut state = lock(&inner.state);
            if state.closed {
                return Err(Error::Stopped);
            }
            let (bytes, id_range) = match ready {
                Some(encoded) => encoded,
                None => event.encode_with_id(Some(&auto_id(state.next_seq))),
            };
            let id = id_range.map(|range| bytes.slice(range));
            if state.ring.len() == inner.capacity {
                state.ring.pop_front();
            }
            state.ring.push_back(Entry {
                id: id.clone(),
                bytes,
            });
            state.next_seq += 1;
            (id, state.take_waiting())
        };
        for (_, waker) in waiting {
            waker.wake();
        }
        inner.published.fetch_add(1, Ordering::Relaxed);
        inner
            .counters
            .events_published
            .fetch_add(1, Ordering::Relaxed);
        Ok(id.map(EventId))
    }

    /// Current number of subscribers.
    pub fn subscribers(&self) -> usize {
        self.inner.subscribers.load(Ordering::Relaxed)
    }

    /// Events published on this channel so far.
    pub fn events_published(&self) -> u64 {
        self.inner.published.load(Ordering::Relaxed)
    }

    /// Number of events currently offered for replay.
    pub fn history_len(&self) -> usize {
        lock(&self.inner.state)
            .ring
            .len()
            .min(self.inner.options.history)
    }

    /// Runs `hook` with the request of every new subscriber, once per
    /// connection, on an engine thread. Replaces any earlier hook.
    pub fn on_subscribe(&self, hook: impl Fn(&Request) + Send + Sync + 'static) {
        *write(&self.inner.on_subscribe) = Some(Arc::new(hook));
    }

    /// Runs `hook` with the request of every subscriber that leaves, once per
    /// connection, also when the connection is lost abruptly. Replaces any
    /// earlier hook. Register it before clients connect: a subscriber keeps
    /// its request (headers and all) only while the channel has this hook,
    /// so one that joined before it is not reported.
    pub fn on_unsubscribe(&self, hook: impl Fn(&Request) + Send + Sync + 'static) {
        *write(&self.inner.on_unsubscribe) = Some(Arc::new(hook));
    }

    /// Closes the channel: no more publishing, subscribers end their streams.
    pub(crate) fn close(&self) {
        let waiting = {
            let mut state = lock(&self.inner.state);
            state.closed = true;
            state.take_waiting()
        };
        for (_, waker) in waiting {
            waker.wake();
        }
    }

    /// Registers a subscriber for `request`. Registration happens before the
    /// response head is sent, so nothing published after the client sees the
    /// head can be missed.
    pub(crate) fn subscribe(&self, request: Request) -> Result<Subscription, SubscribeError> {
        let inner = &self.inner;
        let (key, cursor, reset) = {
            let mut state = lock(&inner.state);
            if state.closed {
                return Err(SubscribeError::Stopped);
            }
            if inner
                .options
                .max_subscribers
                .is_some_and(|max| state.slots.len() >= max)
            {
                return Err(SubscribeError::Full);
            }
            let (cursor, reset) =
                resume_point(&state, inner.options.history, request.last_event_id());
            (state.slots.insert(None), cursor, reset)
        };
        inner.subscribers.fetch_add(1, Ordering::Relaxed);
        if let Some(hook) = read(&inner.on_subscribe).clone() {
            hook(&request);
        }
        Ok(Subscription {
            channel: Arc::clone(inner),
            key,
            cursor,
            reset,
            request: read(&inner.on_unsubscribe).is_some().then_some(request),
        })
    }
}

/// Where a subscriber starts, and whether it must be told that history was
/// lost (`event: reset`).
fn resume_point(state: &RingState, history: usize, last_event_id: Option<&str>) -> (u64, bool) {
    let Some(last) = last_event_id.filter(|id| !id.is_empty()) else {
        return (state.next_seq, false);
    };
    let offered_from = state.next_seq - state.ring.len().min(history) as u64;
    match find_seq(state, last) {
        Some(seq) if seq + 1 >= offered_from => (seq + 1, false),
        _ => (offered_from, true),
    }
}

/// The sequence number of the retained event with id `id`: our own automatic
/// ids are looked up directly, anything else by a scan from the newest.
fn find_seq(state: &RingState, id: &str) -> Option<u64> {
    let matches = |seq: u64| {
        state
            .entry(seq)
            .is_some_and(|entry| entry.id.as_deref() == Some(id.as_bytes()))
    };
    if let Some(seq) = parse_auto_id(id).filter(|&seq| matches(seq)) {
        return Some(seq);
    }
    let first = state.first_seq();
    (first..state.next_seq).rev().find(|&seq| matches(seq))
}

/// This process's epoch: automatic ids from an earlier run of the server
/// carry another one and so read as unknown rather than as a wrong position.
fn epoch() -> &'static str {
    static EPOCH: OnceLock<String> = OnceLock::new();
    EPOCH.get_or_init(|| {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as u64);
        to_base36(millis)
    })
}

fn auto_id(seq: u64) -> String {
    format!("{}-{seq}", epoch())
}

fn parse_auto_id(id: &str) -> Option<u64> {
    let (head, seq) = id.rsplit_once('-')?;
    (head == epoch()).then(|| seq.parse().ok()).flatten()
}

fn to_base36(mut value: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(value % 36) as usize]);
        value /= 36;
        if value == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// The `event: reset` message: the client's last id is no longer (or never
/// was) in history, so what follows is the whole history, not a continuation.
pub(crate) const RESET_EVENT: &[u8] = b"event: reset\ndata: reset\n\n";

/// Most events handed to a connection per wake-up; bounds the time the ring
/// lock is held and the size of one write.
const MAX_BATCH: usize = 64;

/// A subscriber: a cursor into its channel's ring.
pub(crate) struct Subscription {
    channel: Arc<ChannelInner>,
    key: usize,
    cursor: u64,
    reset: bool,
    /// Kept only for the `on_unsubscribe` hook: most of an idle subscriber's
    /// memory otherwise (a browser sends ~1 KiB of headers).
    request: Option<Request>,
}

/// The subscriber fell off the ring's tail.
pub(crate) struct Lagged;

impl Subscription {
    /// Whether the client must first be sent `event: reset`.
    pub(crate) fn needs_reset(&self) -> bool {
        self.reset
    }

    pub(crate) fn keepalive(&self) -> Option<Duration> {
        self.channel.options.keepalive
    }

    /// Takes the events between the cursor and the head, or parks until the
    /// next publish. `None` once the channel is closed and drained.
    pub(crate) fn poll_batch(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<EventBuf, Lagged>>> {
        let mut state = lock(&self.channel.state);
        if self.cursor < state.first_seq() {
            return Poll::Ready(Some(Err(Lagged)));
        }
        let pending = (state.next_seq - self.cursor) as usize;
        if pending == 0 {
            if state.closed {
                return Poll::Ready(None);
            }
            state.park(self.key, cx.waker());
            return Poll::Pending;
        }
        let start = (self.cursor - state.first_seq()) as usize;
        let count = pending.min(MAX_BATCH);
        self.cursor += count as u64;
        if count == 1 {
            return Poll::Ready(Some(Ok(EventBuf::one(state.ring[start].bytes.clone()))));
        }
        let parts: Vec<Bytes> = state
            .ring
            .range(start..start + count)
            .map(|e| e.bytes.clone())
            .collect();
        // Clones are cheap; joining them (in `gather`) waits until the
        // publisher may take the lock again.
        drop(state);
        Poll::Ready(Some(Ok(EventBuf::gather(parts))))
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        {
            let mut state = lock(&self.channel.state);
            state.unpark(self.key);
            state.slots.remove(self.key);
        }
        self.channel.subscribers.fetch_sub(1, Ordering::Relaxed);
        let hook = read(&self.channel.on_unsubscribe).clone();
        if let (Some(hook), Some(request)) = (hook, &self.request) {
            hook(request);
        }
    }
}

// A panic in a host hook must not wedge the channel for everyone, so poisoned
// locks are recovered: the guarded data is always left consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(history: usize, max_lag: usize) -> Channel {
        let options = ChannelOptions {
            history,
            max_lag,
            ..ChannelOptions::default()
        };
        Channel::new("/c".into(), options, Arc::default())
    }

    fn publish_n(channel: &Channel, n: usize) -> Vec<String> {
        (0..n)
            .map(|i| {
                channel
                    .publish(Event::data(i.to_string()))
                    .unwrap()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }

    fn state(channel: &Channel) -> MutexGuard<'_, RingState> {
        lock(&channel.inner.state)
    }

    #[test]
    fn auto_ids_increase_and_carry_the_epoch() {
        let channel = channel(10, 10);
        let ids = publish_n(&channel, 3);
        assert_eq!(ids[0], format!("{}-1", epoch()));
        assert_eq!(ids[2], format!("{}-3", epoch()));
        assert_eq!(parse_auto_id(&ids[1]), Some(2));
        assert_eq!(parse_auto_id("zzz-2"), None);
    }

    #[test]
    fn resume_starts_after_the_given_id() {
        let channel = channel(10, 10);
        let ids = publish_n(&channel, 5);
        let state = state(&channel);
        assert_eq!(resume_point(&state, 10, Some(&ids[1])), (3, false));
        assert_eq!(resume_point(&state, 10, Some(&ids[4])), (6, false));
        assert_eq!(resume_point(&state, 10, None), (6, false));
    }

    #[test]
    fn unknown_or_expired_ids_reset_to_the_offered_history() {
        let channel = channel(3, 10);
        let ids = publish_n(&channel, 8);
        let state = state(&channel);
        // Retained (lag window) but older than the 3 offered: reset.
        assert_eq!(resume_point(&state, 3, Some(&ids[2])), (6, true));
        assert_eq!(
            resume_point(&state, 3, Some("from-another-run-4")),
            (6, true)
        );
        assert_eq!(resume_point(&state, 3, Some(&ids[4])), (6, false));
    }

    #[test]
    fn user_ids_are_found_by_scanning() {
        let channel = channel(10, 10);
        for id in ["a", "b", "c"] {
            channel.publish(Event::data("x").id(id).unwrap()).unwrap();
        }
        assert_eq!(resume_point(&state(&channel), 10, Some("b")), (3, false));
    }

    #[test]
    fn ring_is_bounded_by_the_larger_of_history_and_lag() {
        let channel = channel(2, 5);
        publish_n(&channel, 50);
        assert_eq!(state(&channel).ring.len(), 5);
        assert_eq!(channel.history_len(), 2);
    }

    #[test]
    fn publish_after_close_fails() {
        let channel = channel(2, 2);
        channel.close();
        assert!(matches!(
            channel.publish(Event::data("x")),
            Err(Error::Stopped)
        ));
    }

    #[test]
    fn base36_round_numbers() {
        assert_eq!(to_base36(0), "0");
        assert_eq!(to_base36(35), "z");
        assert_eq!(to_base36(36), "10");
    }
}
