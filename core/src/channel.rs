//! Broadcast channels: a ring of encoded events that is also the history, and
//! subscribers that are cursors into it.
//!
//! Publishing encodes once, pushes one entry and wakes the subscribers that
//! are waiting; each subscriber's connection then copies out references to
//! every entry between its cursor and the head and writes them together. A
//! subscriber whose cursor falls off the ring's tail is too slow: it is
//! disconnected (its client reconnects and resumes from history), so no
//! subscriber ever holds the publisher back or grows memory.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use slab::Slab;

use crate::broker::{Broker, StreamPos};
use crate::config::check_duration;
use crate::error::{Error, Result};
use crate::event::{Event, EventId};
use crate::frame::EventBuf;
use crate::request::{Request, ResumeFrom};
use crate::stats::{Counters, Stamp};
use crate::topic::{TopicFilter, Topics};
use crate::verdict::{AuthorizeHook, Verdict};

/// Options of a broadcast channel.
#[derive(Clone, Debug)]
pub struct ChannelOptions {
    /// How many recent events are kept for clients that resume with
    /// `Last-Event-ID`. 0 keeps none (no replay). Default 1000.
    pub history: usize,
    /// Give events published without an id an increasing id, so that resume
    /// works out of the box. Default on.
    pub auto_id: bool,
    /// How many events a subscriber may fall behind, counted from where it
    /// started (live, or resumed anywhere in the history), before it is
    /// disconnected as too slow (it then reconnects and resumes). The ring
    /// holds `history + max_lag` events. Default 1024.
    pub max_lag: usize,
    /// Keep-alive period for this channel, overriding the server's.
    pub keepalive: Option<Duration>,
    /// Most subscribers at once; beyond it new ones get 503. Default none.
    pub max_subscribers: Option<usize>,
    /// Whether subscribing at the channel's path takes a token that grants
    /// it ([`Config::jwt`](crate::Config::jwt)): without one, 401; with one
    /// that does not name the channel, 403. An application that hands a
    /// connection over to the channel has decided for itself. Default
    /// false.
    pub private: bool,
}

impl ChannelOptions {
    pub(crate) fn validate(&self) -> Result<()> {
        if let Some(keepalive) = self.keepalive {
            check_duration("keepalive", keepalive)?;
        }
        Ok(())
    }
}

impl Default for ChannelOptions {
    fn default() -> Self {
        ChannelOptions {
            history: 1000,
            auto_id: true,
            max_lag: 1024,
            keepalive: None,
            max_subscribers: None,
            private: false,
        }
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
    /// `history + max_lag`: wherever a subscriber starts in the offered
    /// history, it may fall `max_lag` behind from there.
    capacity: usize,
    /// `<epoch>-`, the prefix of this channel instance's automatic ids.
    auto_id_prefix: String,
    state: Mutex<RingState>,
    subscribers: AtomicUsize,
    published: AtomicU64,
    on_subscribe: RwLock<Option<PresenceHook>>,
    on_unsubscribe: RwLock<Option<PresenceHook>>,
    authorize: RwLock<Option<AuthorizeHook>>,
    counters: Arc<Counters>,
    /// Where publishes go when servers share channels: the event comes back
    /// into the ring from the broker, in the order every server sees.
    broker: Option<Arc<dyn Broker>>,
    /// The Mercure hub's ring, which gets a copy of every event the host
    /// publishes here, under the channel's topic.
    mirror: Option<Mirror>,
}

/// Where a channel's events are copied for the hub's subscribers.
struct Mirror {
    hub: Channel,
    topics: Arc<Topics>,
}

impl Mirror {
    /// Copies `event`, published with `id`, into the hub's ring. The host's
    /// publish succeeded whatever happens here, so a failure is only logged.
    fn publish(&self, event: Event, id: Option<&EventId>) {
        let event = match id {
            Some(id) if event.id_str().is_none() => event.with_checked_id(id.as_str()),
            _ => event,
        };
        if let Err(err) = self
            .hub
            .publish_tagged(event, Some(Arc::clone(&self.topics)))
        {
            tracing::debug!(%err, topic = ?self.topics.names(), "the hub did not take a channel's event");
        }
    }
}

struct Entry {
    id: Option<Bytes>,
    /// Whether `id` was given by the host (and so is in the index).
    host_id: bool,
    bytes: Bytes,
    /// The event's place in the broker's order ([`StreamPos::START`] for
    /// every event of a channel without a broker).
    position: StreamPos,
    /// When it joined the ring, for the delivery latency histogram (0
    /// when latency is not measured).
    joined: Stamp,
    /// The topics of a hub update (`None` on other channels, and for a
    /// reset every hub subscriber gets).
    topics: Option<Arc<Topics>>,
}

struct RingState {
    ring: VecDeque<Entry>,
    /// Sequence number the next published event gets; the ring holds
    /// `next_seq - ring.len() .. next_seq`.
    next_seq: u64,
    /// Host-given ids of the retained events, each to its newest sequence
    /// number, so that resuming by one costs a lookup, not a scan under the
    /// lock that publishers wait on. Automatic ids carry their sequence.
    host_ids: HashMap<Bytes, u64>,
    /// One slot per subscriber.
    slots: Slab<Slot>,
    /// How many slots have a filter: none on a host's channel, whose
    /// publishes then wake every waiting subscriber without looking.
    filtered: usize,
    /// Subscribers parked until the next publish, as (slot key, waker).
    waiting: Vec<(usize, Waker)>,
    closed: bool,
}

/// What the ring knows of one subscriber.
struct Slot {
    /// Where its waker sits in `waiting`, if it does.
    waiting: Option<usize>,
    /// A hub subscriber's filter and parking; boxed, so that a channel's
    /// subscribers (most of a server) pay one word for it.
    hub: Option<Box<HubSlot>>,
}

/// What the ring knows of a hub subscriber besides where it waits.
struct HubSlot {
    /// An entry it does not admit leaves it parked, so that an update
    /// wakes only the subscribers it is for.
    filter: Arc<TopicFilter>,
    /// `next_seq` when it last parked. It does not admit any entry from
    /// there to `woken_at` (or to the head while it waits), so it skips
    /// them without looking, and never counts as lagging for entries it
    /// would not have sent.
    parked_at: u64,
    /// The entry that woke it, if one did since it parked.
    woken_at: Option<u64>,
}

impl RingState {
    fn first_seq(&self) -> u64 {
        self.next_seq - self.ring.len() as u64
    }

    fn entry(&self, seq: u64) -> Option<&Entry> {
        let index = seq.checked_sub(self.first_seq())?;
        self.ring.get(usize::try_from(index).ok()?)
    }

    /// Appends an event, dropping the oldest once the ring is full; only
    /// host-given ids touch the index (automatic ones cost no hashing).
    fn push(&mut self, entry: Entry, capacity: usize) {
        if self.ring.len() == capacity {
            if let Some(oldest) = self.ring.pop_front() {
                let oldest_seq = self.next_seq - capacity as u64;
                if let (Some(id), true) = (oldest.id, oldest.host_id) {
                    if self.host_ids.get(&id) == Some(&oldest_seq) {
                        self.host_ids.remove(&id);
                    }
                }
            }
        }
        if let (Some(id), true) = (&entry.id, entry.host_id) {
            self.host_ids.insert(id.clone(), self.next_seq);
        }
        self.ring.push_back(entry);
        self.next_seq += 1;
    }

    /// Takes every waiting subscriber, to wake for the entry `woken_at`
    /// (the head, when no entry woke them).
    fn take_waiting(&mut self, woken_at: u64) -> Vec<(usize, Waker)> {
        let waiting = std::mem::take(&mut self.waiting);
        for (key, _) in &waiting {
            if let Some(slot) = self.slots.get_mut(*key) {
                slot.waiting = None;
                if let Some(hub) = &mut slot.hub {
                    hub.woken_at = Some(woken_at);
                }
            }
        }
        waiting
    }

    /// Takes the waiting subscribers the entry just pushed (with `topics`)
    /// is for: every one, unless some have a filter that does not admit it.
    /// Costs a filter check per waiting hub subscriber, under the lock,
    /// instead of a wake-up and a poll each.
    fn take_waiting_for(&mut self, topics: Option<&Topics>) -> Vec<(usize, Waker)> {
        let pushed = self.next_seq - 1;
        if self.filtered == 0 || topics.is_none() {
            return self.take_waiting(pushed);
        }
        // Most waiting hub subscribers are usually not the update's: only
        // the few taken out are moved (by swap_remove), the rest untouched.
        let mut woken = Vec::new();
        let mut at = 0;
        while let Some(&(key, _)) = self.waiting.get(at) {
            let admitted = self.slots.get(key).is_none_or(|slot| {
                slot.hub
                    .as_ref()
                    .is_none_or(|hub| hub.filter.admits(topics))
            });
            if !admitted {
                at += 1;
                continue;
            }
            let (key, waker) = self.waiting.swap_remove(at);
            if let Some(&(moved, _)) = self.waiting.get(at) {
                self.slots[moved].waiting = Some(at);
            }
            if let Some(slot) = self.slots.get_mut(key) {
                slot.waiting = None;
                if let Some(hub) = &mut slot.hub {
                    hub.woken_at = Some(pushed);
                }
            }
            woken.push((key, waker));
        }
        woken
    }

    fn park(&mut self, key: usize, waker: &Waker) {
        let head = self.next_seq;
        let Some(slot) = self.slots.get_mut(key) else {
            return;
        };
        match slot.waiting {
            Some(at) => {
                if !self.waiting[at].1.will_wake(waker) {
                    self.waiting[at].1 = waker.clone();
                }
            }
            None => {
                slot.waiting = Some(self.waiting.len());
                if let Some(hub) = &mut slot.hub {
                    hub.parked_at = head;
                    hub.woken_at = None;
                }
                self.waiting.push((key, waker.clone()));
            }
        }
    }

    fn unpark(&mut self, key: usize) {
        let Some(at) = self.slots.get(key).and_then(|slot| slot.waiting) else {
            return;
        };
        self.waiting.swap_remove(at);
        if let Some(&(moved, _)) = self.waiting.get(at) {
            self.slots[moved].waiting = Some(at);
        }
    }

    /// Moves a filtered subscriber's `cursor` past the entries it is known
    /// not to admit: those pushed while it was parked, which did not wake it.
    fn skip_unadmitted(&mut self, key: usize, cursor: &mut u64) {
        let head = self.next_seq;
        let Some(slot) = self.slots.get_mut(key) else {
            return;
        };
        let (waiting, Some(hub)) = (slot.waiting, &mut slot.hub) else {
            return;
        };
        let until = match waiting {
            Some(_) => head,
            None => match hub.woken_at.take() {
                Some(woken_at) => woken_at,
                None => return,
            },
        };
        if (hub.parked_at..until).contains(cursor) {
            *cursor = until;
        }
    }
}

/// Where a new subscriber starts.
struct StartPoint {
    cursor: u64,
    /// Whether the client must first be sent `event: reset`.
    reset: bool,
    /// The client resumed from a broker position this server has not read
    /// yet (another server delivered it first): entries up to it are
    /// skipped as they arrive.
    skip_through: Option<StreamPos>,
}

/// Why a subscription could not be made.
#[derive(Debug)]
pub(crate) enum SubscribeError {
    Stopped,
    Full,
}

impl Channel {
    pub(crate) fn new(
        path: String,
        options: ChannelOptions,
        counters: Arc<Counters>,
        broker: Option<Arc<dyn Broker>>,
    ) -> Self {
        let capacity = options.history.saturating_add(options.max_lag).max(1);
        Channel {
            inner: Arc::new(ChannelInner {
                path,
                capacity,
                auto_id_prefix: format!("{}-", to_base36(instance_epoch())),
                state: Mutex::new(RingState {
                    ring: VecDeque::with_capacity(capacity.min(1024)),
                    next_seq: 1,
                    host_ids: HashMap::new(),
                    slots: Slab::new(),
                    filtered: 0,
                    waiting: Vec::new(),
                    closed: false,
                }),
                options,
                subscribers: AtomicUsize::new(0),
                published: AtomicU64::new(0),
                on_subscribe: RwLock::new(None),
                on_unsubscribe: RwLock::new(None),
                authorize: RwLock::new(None),
                counters,
                broker,
                mirror: None,
            }),
        }
    }

    /// Copies every event the host publishes here into `hub`'s ring as an
    /// update of `topic` (private if the channel is). Only before the
    /// channel is shared.
    pub(crate) fn mirrored_into(mut self, hub: Channel, topic: String) -> Self {
        let topics = Arc::new(Topics::new(vec![topic], self.inner.options.private));
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.mirror = Some(Mirror { hub, topics }),
            None => tracing::error!(path = %self.inner.path, "a shared channel cannot be mirrored"),
        }
        self
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
    ///
    /// With a broker ([`Config::broker`](crate::Config::broker)) the event is
    /// queued for it instead, and reaches subscribers (here and on every
    /// other server) when the broker hands it back, in the broker's order.
    /// The automatic id is then the broker's, not known yet: `publish`
    /// returns only an id the event brings, and
    /// [`publish_confirmed`](Self::publish_confirmed) tells the broker's.
    /// Fails with [`Error::BrokerUnavailable`] when the queue is full.
    pub fn publish(&self, event: Event) -> Result<Option<EventId>> {
        let Some(mirror) = &self.inner.mirror else {
            return self.publish_tagged(event, None);
        };
        let copy = event.clone();
        let id = self.publish_tagged(event, None)?;
        mirror.publish(copy, id.as_ref());
        Ok(id)
    }

    /// Publishes `event` here only (never into the hub's mirror), as an
    /// update of `topics` when this is the hub's ring.
    pub(crate) fn publish_tagged(
        &self,
        event: Event,
        topics: Option<Arc<Topics>>,
    ) -> Result<Option<EventId>> {
        let inner = &*self.inner;
        if let Some(broker) = &inner.broker {
            let id = event.id_str().map(EventId::from_text);
            self.hand_to_broker(broker.as_ref(), event, topics, None)?;
            return Ok(id);
        }
        // Events that bring their own id are encoded outside the lock; an
        // automatic id depends on the sequence number, so it is encoded under it.
        let ready = (event.id_str().is_some() || !inner.options.auto_id)
            .then(|| event.encode_with_id(event.id_str()));
        let joined = inner.counters.stamp();
        let (id, waiting) = {
            let mut state = lock(&inner.state);
            if state.closed {
                return Err(Error::Stopped);
            }
            let (bytes, id_range, automatic) = match ready {
                Some((bytes, id_range)) => (bytes, id_range, false),
                None => {
                    let id = inner.auto_id(state.next_seq);
                    let (bytes, id_range) = event.encode_with_id(Some(&id));
                    (bytes, id_range, true)
                }
            };
            let id = id_range.map(|range| bytes.slice(range));
            let entry = Entry {
                id: id.clone(),
                host_id: !automatic,
                bytes,
                position: StreamPos::START,
                joined,
                topics: topics.clone(),
            };
            state.push(entry, inner.capacity);
            (id, state.take_waiting_for(topics.as_deref()))
        };
        inner.appended(waiting);
        Ok(id.map(EventId))
    }

    /// Publishes like [`publish`](Self::publish), and resolves (`.await`, or
    /// [`Published::wait`] from a plain thread) once the event is stored:
    /// at once without a broker; with one, once the broker stored it and
    /// this server read it back into its history. Its output is the id the
    /// event is sent with, as `publish` returns it, but with the broker's
    /// automatic id filled in.
    pub fn publish_confirmed(&self, event: Event) -> Published {
        let inner = &*self.inner;
        if inner.broker.is_none() {
            return Published(Confirmation::Ready(Some(self.publish(event))));
        }
        let copy = inner.mirror.as_ref().map(|_| event.clone());
        let published = self.publish_confirmed_tagged(event, None);
        if let (Some(mirror), Some(copy)) = (&inner.mirror, copy) {
            // The broker's id is not known yet: the hub's ring gives its own.
            if !matches!(published.0, Confirmation::Ready(Some(Err(_)))) {
                mirror.publish(copy, None);
            }
        }
        published
    }

    /// [`publish_confirmed`](Self::publish_confirmed) here only, as an
    /// update of `topics` when this is the hub's ring.
    pub(crate) fn publish_confirmed_tagged(
        &self,
        event: Event,
        topics: Option<Arc<Topics>>,
    ) -> Published {
        let inner = &*self.inner;
        let Some(broker) = &inner.broker else {
            return Published(Confirmation::Ready(Some(
                self.publish_tagged(event, topics),
            )));
        };
        let own_id = event.id_str().map(EventId::from_text);
        let (receipt, answer) = tokio::sync::oneshot::channel();
        if let Err(err) = self.hand_to_broker(broker.as_ref(), event, topics, Some(receipt)) {
            return Published(Confirmation::Ready(Some(Err(err))));
        }
        Published(Confirmation::Waiting {
            answer,
            own_id,
            auto_id: inner.options.auto_id,
        })
    }

    fn hand_to_broker(
        &self,
        broker: &dyn Broker,
        event: Event,
        topics: Option<Arc<Topics>>,
        receipt: Option<crate::broker::Receipt>,
    ) -> Result<()> {
        if lock(&self.inner.state).closed {
            return Err(Error::Stopped);
        }
        // Redis keeps as many entries as the ring holds: a reader that falls
        // behind during a burst still finds every entry it has not read.
        let options = &self.inner.options;
        let retain = options.history.saturating_add(options.max_lag);
        broker.publish(&self.inner.path, retain, event, topics, receipt)
    }

    /// Appends an event the broker delivered at `position`: it gets the
    /// broker's entry id unless it brings its own (or the channel has no
    /// automatic ids).
    pub(crate) fn append_from_broker(
        &self,
        event: &Event,
        topics: Option<Arc<Topics>>,
        position: StreamPos,
    ) {
        let inner = &*self.inner;
        let automatic =
            (event.id_str().is_none() && inner.options.auto_id).then(|| position.to_string());
        let (bytes, id_range) = event.encode_with_id(event.id_str().or(automatic.as_deref()));
        let entry = Entry {
            id: id_range.map(|range| bytes.slice(range)),
            host_id: event.id_str().is_some(),
            bytes,
            position,
            joined: inner.counters.stamp(),
            topics,
        };
        self.append(entry);
    }

    /// Tells every subscriber that entries after `after` were lost (the
    /// broker trimmed or forgot them before this server read them): they
    /// are sent `event: reset` where the gap is.
    pub(crate) fn append_gap(&self, after: StreamPos) {
        self.append(Entry {
            id: None,
            host_id: false,
            bytes: Bytes::from_static(RESET_EVENT),
            position: after.gap_after(),
            joined: 0,
            topics: None,
        });
    }

    fn append(&self, entry: Entry) {
        let inner = &*self.inner;
        let waiting = {
            let mut state = lock(&inner.state);
            if state.closed {
                return;
            }
            let topics = entry.topics.clone();
            state.push(entry, inner.capacity);
            state.take_waiting_for(topics.as_deref())
        };
        inner.appended(waiting);
    }

    /// A handle that does not keep the channel alive.
    pub(crate) fn downgrade(&self) -> Weak<ChannelInner> {
        Arc::downgrade(&self.inner)
    }

    /// The channel behind a handle from [`downgrade`](Self::downgrade), if
    /// it still exists.
    pub(crate) fn upgrade(weak: &Weak<ChannelInner>) -> Option<Channel> {
        weak.upgrade().map(|inner| Channel { inner })
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

    /// Asks `hook` about every client that subscribes at the channel's path
    /// (after its token, for a private channel): it answers the [`Verdict`]
    /// with `allow` or `deny(status, message)`, at once or later, from any
    /// thread, within the server's `head_timeout` (else the client gets
    /// `503`). Connections handed over by an application are not asked.
    /// Replaces any earlier hook.
    pub fn authorize(&self, hook: impl Fn(Request, Verdict) + Send + Sync + 'static) {
        *write(&self.inner.authorize) = Some(Arc::new(hook));
    }

    /// The hook of [`authorize`](Self::authorize), if any.
    pub(crate) fn authorizer(&self) -> Option<AuthorizeHook> {
        read(&self.inner.authorize).clone()
    }

    /// Closes the channel: no more publishing, subscribers end their streams.
    pub(crate) fn close(&self) {
        let waiting = {
            let mut state = lock(&self.inner.state);
            state.closed = true;
            let head = state.next_seq;
            state.take_waiting(head)
        };
        for (_, waker) in waiting {
            waker.wake();
        }
    }

    /// Registers a subscriber for `request`. Registration happens before the
    /// response head is sent, so nothing published after the client sees the
    /// head can be missed.
    pub(crate) fn subscribe(&self, request: Request) -> Result<Subscription, SubscribeError> {
        self.subscribe_with(request, None, None)
            .map(|(subscription, _)| subscription)
    }

    /// Registers a hub subscriber that receives the updates `filter`
    /// admits, starting where `from` says (`None`: the request's
    /// `Last-Event-ID`). Also gives, when the subscriber resumed, the id of
    /// the newest update before its start that it may see (`None` if there
    /// is none within [`MAX_PRECEDING_SCAN`] entries).
    pub(crate) fn subscribe_to_topics(
        &self,
        request: Request,
        from: Option<ResumeFrom<'static>>,
        filter: Arc<TopicFilter>,
    ) -> Result<(Subscription, Option<Bytes>), SubscribeError> {
        self.subscribe_with(request, from, Some(filter))
    }

    fn subscribe_with(
        &self,
        request: Request,
        from: Option<ResumeFrom<'static>>,
        filter: Option<Arc<TopicFilter>>,
    ) -> Result<(Subscription, Option<Bytes>), SubscribeError> {
        let inner = &self.inner;
        let (key, start, preceding) = {
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
            let from = from.unwrap_or_else(|| request.resume_from());
            let start = inner.resume_point(&state, from);
            let preceding = match (&filter, from) {
                (
                    Some(filter),
                    ResumeFrom::After(_) | ResumeFrom::Unknown | ResumeFrom::Earliest,
                ) => preceding_id(&state, start.cursor, filter),
                _ => None,
            };
            if filter.is_some() {
                state.filtered += 1;
            }
            let slot = Slot {
                waiting: None,
                hub: filter.clone().map(|filter| {
                    Box::new(HubSlot {
                        filter,
                        parked_at: 0,
                        woken_at: None,
                    })
                }),
            };
            (state.slots.insert(slot), start, preceding)
        };
        inner.subscribers.fetch_add(1, Ordering::Relaxed);
        // Made before the hook runs, so that whatever the hook does (panic
        // included) the slot and the count are given back on drop.
        let hook = read(&inner.on_subscribe).clone();
        let subscription = Subscription {
            channel: Arc::clone(inner),
            key,
            cursor: start.cursor,
            reset: start.reset,
            skip_through: start.skip_through,
            request: read(&inner.on_unsubscribe)
                .is_some()
                .then(|| request.clone()),
            filter,
        };
        if let Some(hook) = hook {
            run_hook("on_subscribe", &inner.path, &hook, &request);
        }
        Ok((subscription, preceding))
    }
}

impl ChannelInner {
    /// After an event joined the ring (outside its lock): wakes the
    /// subscribers that waited for it and counts it.
    fn appended(&self, waiting: Vec<(usize, Waker)>) {
        for (_, waker) in waiting {
            waker.wake();
        }
        self.published.fetch_add(1, Ordering::Relaxed);
        self.counters
            .events_published
            .fetch_add(1, Ordering::Relaxed);
    }

    fn auto_id(&self, seq: u64) -> String {
        format!("{}{seq}", self.auto_id_prefix)
    }

    /// The sequence number in one of this instance's automatic ids.
    fn parse_auto_id(&self, id: &str) -> Option<u64> {
        id.strip_prefix(self.auto_id_prefix.as_str())?.parse().ok()
    }

    /// Where a subscriber starts, and whether it must be told that history
    /// was lost (`event: reset`).
    fn resume_point(&self, state: &RingState, from: ResumeFrom<'_>) -> StartPoint {
        let offered = state.ring.len().min(self.options.history);
        let offered_from = state.next_seq - offered as u64;
        let at = |cursor, reset| StartPoint {
            cursor,
            reset,
            skip_through: None,
        };
        let last = match from {
            ResumeFrom::Start => return at(state.next_seq, false),
            ResumeFrom::Earliest => return at(offered_from, false),
            ResumeFrom::Unknown => return at(offered_from, true),
            ResumeFrom::After(last) => last,
        };
        if let Some(seq) = self.find_seq(state, last) {
            if seq + 1 >= offered_from {
                return at(seq + 1, false);
            }
            return at(offered_from, true);
        }
        let position = StreamPos::parse(last).filter(|_| self.broker.is_some());
        let Some(position) = position else {
            return at(offered_from, true);
        };
        // A broker id names a place in the order every server shares, so it
        // resumes here even if this server never sent that very event.
        let after = state
            .ring
            .partition_point(|entry| entry.position <= position);
        let offered_index = state.ring.len() - offered;
        if after < offered_index.max(1) {
            // Older than everything kept (or the history is empty): what
            // came between may be lost.
            return at(offered_from, true);
        }
        StartPoint {
            cursor: state.first_seq() + after as u64,
            reset: false,
            skip_through: (after == state.ring.len()).then_some(position),
        }
    }

    /// The sequence number of the retained event with id `id`.
    fn find_seq(&self, state: &RingState, id: &str) -> Option<u64> {
        let retained = |seq: u64| {
            state
                .entry(seq)
                .is_some_and(|entry| entry.id.as_deref() == Some(id.as_bytes()))
        };
        self.parse_auto_id(id)
            .filter(|&seq| retained(seq))
            .or_else(|| state.host_ids.get(id.as_bytes()).copied())
    }
}

/// How far back [`Channel::subscribe_to_topics`] looks for the update
/// before a resumed subscriber's start.
pub(crate) const MAX_PRECEDING_SCAN: usize = 1000;

/// The id of the newest entry before `cursor` that `filter` admits, within
/// [`MAX_PRECEDING_SCAN`] entries.
fn preceding_id(state: &RingState, cursor: u64, filter: &TopicFilter) -> Option<Bytes> {
    let end = usize::try_from(cursor.checked_sub(state.first_seq())?).ok()?;
    state
        .ring
        .range(..end.min(state.ring.len()))
        .rev()
        .take(MAX_PRECEDING_SCAN)
        .find(|entry| entry.topics.is_some() && filter.admits(entry.topics.as_deref()))
        .and_then(|entry| entry.id.clone())
}

/// A value no other channel instance, process or host will have: automatic
/// ids carry it, so an id from an earlier run, another server in this
/// process or another replica reads as unknown (a reset), never as a wrong
/// position in this channel's sequence.
fn instance_epoch() -> u64 {
    getrandom::u64().unwrap_or_else(|_| {
        // No OS randomness: std's per-process random hash keys still differ
        // between processes, and every `RandomState` in one process differs.
        RandomState::new().hash_one(std::time::SystemTime::now())
    })
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
    skip_through: Option<StreamPos>,
    /// Kept only for the `on_unsubscribe` hook: most of an idle subscriber's
    /// memory otherwise (a browser sends ~1 KiB of headers).
    request: Option<Request>,
    /// A hub subscriber's topics: entries it does not admit are skipped.
    filter: Option<Arc<TopicFilter>>,
}

/// The subscriber fell off the ring's tail.
pub(crate) struct Lagged;

impl Subscription {
    /// Ready once the subscriber has fallen off the ring's tail; otherwise
    /// parks until the next publish. Polled while a write is pending, so a
    /// client that stopped reading is found by its lag, not only by the
    /// write timeout.
    pub(crate) fn poll_lagged(&mut self, cx: &mut Context<'_>) -> Poll<Lagged> {
        let mut state = lock(&self.channel.state);
        if self.filter.is_some() {
            state.skip_unadmitted(self.key, &mut self.cursor);
        }
        if self.cursor < state.first_seq() {
            return Poll::Ready(Lagged);
        }
        state.park(self.key, cx.waker());
        Poll::Pending
    }

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
        if self.filter.is_some() {
            state.skip_unadmitted(self.key, &mut self.cursor);
        }
        if self.cursor < state.first_seq() {
            return Poll::Ready(Some(Err(Lagged)));
        }
        if let Some(through) = self.skip_through {
            self.skip_through = skip_entries_through(&state, &mut self.cursor, through);
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
        if let Some(filter) = &self.filter {
            let counters = &self.channel.counters;
            return poll_filtered(state, &mut self.cursor, self.key, filter, counters, cx);
        }
        let count = pending.min(MAX_BATCH);
        self.cursor += count as u64;
        let oldest_joined = state.ring[start].joined;
        let batch = if count == 1 {
            let one = state.ring[start].bytes.clone();
            drop(state);
            EventBuf::one(one)
        } else {
            let parts: Vec<Bytes> = state
                .ring
                .range(start..start + count)
                .map(|e| e.bytes.clone())
                .collect();
            // Clones are cheap; joining them (in `gather`) waits until the
            // publisher may take the lock again.
            drop(state);
            EventBuf::gather(parts)
        };
        if let Some(latency) = &self.channel.counters.latency {
            latency.observe(oldest_joined);
        }
        Poll::Ready(Some(Ok(batch)))
    }
}

/// [`Subscription::poll_batch`] for a hub subscriber (its `key` and
/// `cursor`): the entries between the cursor and the head that its filter
/// admits. Looks at no more than [`MAX_FILTER_SCAN`] entries per call, so
/// that a subscriber of a quiet topic on a busy hub never holds the lock
/// long.
fn poll_filtered(
    mut state: MutexGuard<'_, RingState>,
    cursor: &mut u64,
    key: usize,
    filter: &TopicFilter,
    counters: &Counters,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<EventBuf, Lagged>>> {
    let start = (*cursor - state.first_seq()) as usize;
    let pending = state.ring.len() - start;
    let mut parts = Vec::new();
    let mut oldest_joined = None;
    let mut scanned = 0;
    for entry in state
        .ring
        .range(start..start + pending.min(MAX_FILTER_SCAN))
    {
        scanned += 1;
        if filter.admits(entry.topics.as_deref()) {
            oldest_joined.get_or_insert(entry.joined);
            parts.push(entry.bytes.clone());
            if parts.len() == MAX_BATCH {
                break;
            }
        }
    }
    *cursor += scanned as u64;
    if parts.is_empty() {
        if scanned < pending {
            // More to look at: yield, and come back at once.
            drop(state);
            cx.waker().wake_by_ref();
        } else if state.closed {
            return Poll::Ready(None);
        } else {
            state.park(key, cx.waker());
        }
        return Poll::Pending;
    }
    drop(state);
    if let (Some(latency), Some(joined)) = (&counters.latency, oldest_joined) {
        latency.observe(joined);
    }
    let batch = match parts.len() {
        1 => EventBuf::one(parts.swap_remove(0)),
        _ => EventBuf::gather(parts),
    };
    Poll::Ready(Some(Ok(batch)))
}

/// Most entries a hub subscriber's filter looks at per wake-up.
const MAX_FILTER_SCAN: usize = 1024;

/// Moves `cursor` past entries at or before `through`, which the client
/// already has from another server; what is left to skip once the ring's
/// head is reached (`None` when an entry past `through` was found).
fn skip_entries_through(
    state: &RingState,
    cursor: &mut u64,
    through: StreamPos,
) -> Option<StreamPos> {
    while let Some(entry) = state.entry(*cursor) {
        if entry.position > through {
            return None;
        }
        *cursor += 1;
    }
    Some(through)
}

/// The answer to [`Channel::publish_confirmed`]: a future of the event's id,
/// which a plain thread can also [`wait`](Published::wait) for.
#[must_use = "a confirmation does nothing unless awaited or waited for"]
pub struct Published(Confirmation);

enum Confirmation {
    /// `None` once taken.
    Ready(Option<Result<Option<EventId>>>),
    Waiting {
        answer: tokio::sync::oneshot::Receiver<Result<EventId>>,
        /// The id the event brought, which it is sent with.
        own_id: Option<EventId>,
        /// Whether an event without an id is sent with the broker's.
        auto_id: bool,
    },
}

impl fmt::Debug for Published {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Published").finish_non_exhaustive()
    }
}

impl Confirmation {
    /// The id the event is sent with, from the broker's answer.
    fn finish(
        answer: Result<Result<EventId>, tokio::sync::oneshot::error::RecvError>,
        own_id: Option<EventId>,
        auto_id: bool,
    ) -> Result<Option<EventId>> {
        // The broker drops the receipt unanswered only when the server
        // stops before the event was stored.
        let broker_id = answer.map_err(|_| Error::Stopped)??;
        Ok(own_id.or(auto_id.then_some(broker_id)))
    }
}

impl Published {
    /// Blocks until the event is stored, for threads outside an async
    /// runtime (where it fails with [`Error::BlockingInAsync`]); with a
    /// `timeout`, fails with [`Error::TimedOut`] after it (the event stays
    /// queued and may still be delivered).
    pub fn wait(mut self, timeout: Option<Duration>) -> Result<Option<EventId>> {
        if let Confirmation::Ready(ready) = &mut self.0 {
            return ready.take().unwrap_or(Err(Error::Stopped));
        }
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::BlockingInAsync);
        }
        let deadline = timeout.map(|timeout| std::time::Instant::now() + timeout);
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        loop {
            if let Poll::Ready(answer) = Pin::new(&mut self).poll(&mut cx) {
                return answer;
            }
            match deadline {
                None => std::thread::park(),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        return Err(Error::TimedOut);
                    }
                    std::thread::park_timeout(left);
                }
            }
        }
    }
}

/// Wakes a thread parked in [`Published::wait`].
struct Unpark(std::thread::Thread);

impl std::task::Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

impl Future for Published {
    type Output = Result<Option<EventId>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let confirmation = &mut self.0;
        match confirmation {
            Confirmation::Ready(ready) => Poll::Ready(ready.take().unwrap_or(Err(Error::Stopped))),
            Confirmation::Waiting {
                answer,
                own_id,
                auto_id,
            } => {
                let answer = std::task::ready!(Pin::new(answer).poll(cx));
                Poll::Ready(Confirmation::finish(answer, own_id.take(), *auto_id))
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        {
            let mut state = lock(&self.channel.state);
            state.unpark(self.key);
            let slot = state.slots.remove(self.key);
            if slot.hub.is_some() {
                state.filtered -= 1;
            }
        }
        self.channel.subscribers.fetch_sub(1, Ordering::Relaxed);
        let hook = read(&self.channel.on_unsubscribe).clone();
        if let (Some(hook), Some(request)) = (hook, &self.request) {
            run_hook("on_unsubscribe", &self.channel.path, &hook, request);
        }
    }
}

/// Runs a presence hook; a panic in it is the host's bug, logged, and costs
/// nothing else (a panic while a subscription is dropped would otherwise
/// abort the process if it happened during unwinding).
fn run_hook(name: &str, path: &str, hook: &PresenceHook, request: &Request) {
    if std::panic::catch_unwind(AssertUnwindSafe(|| hook(request))).is_err() {
        tracing::error!(%path, hook = name, "presence hook panicked");
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
        Channel::new("/c".into(), options, Arc::default(), None)
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

    fn resume(channel: &Channel, from: ResumeFrom<'_>) -> (u64, bool) {
        let state = lock(&channel.inner.state);
        let start = channel.inner.resume_point(&state, from);
        (start.cursor, start.reset)
    }

    #[test]
    fn auto_ids_increase_and_carry_the_instance_epoch() {
        let channel = channel(10, 10);
        let ids = publish_n(&channel, 3);
        let prefix = &channel.inner.auto_id_prefix;
        assert_eq!(ids[0], format!("{prefix}1"));
        assert_eq!(ids[2], format!("{prefix}3"));
        assert_eq!(channel.inner.parse_auto_id(&ids[1]), Some(2));
        assert_eq!(channel.inner.parse_auto_id("zzz-2"), None);
        let other = self::channel(10, 10);
        assert_ne!(other.inner.auto_id_prefix, *prefix);
    }

    #[test]
    fn resume_starts_after_the_given_id() {
        let channel = channel(10, 10);
        let ids = publish_n(&channel, 5);
        assert_eq!(resume(&channel, ResumeFrom::After(&ids[1])), (3, false));
        assert_eq!(resume(&channel, ResumeFrom::After(&ids[4])), (6, false));
        assert_eq!(resume(&channel, ResumeFrom::Start), (6, false));
    }

    #[test]
    fn unknown_or_expired_ids_reset_to_the_offered_history() {
        let channel = channel(3, 10);
        let ids = publish_n(&channel, 8);
        // Retained (lag window) but older than the 3 offered: reset.
        assert_eq!(resume(&channel, ResumeFrom::After(&ids[2])), (6, true));
        let foreign = ResumeFrom::After("from-another-run-4");
        assert_eq!(resume(&channel, foreign), (6, true));
        assert_eq!(resume(&channel, ResumeFrom::Unknown), (6, true));
        assert_eq!(resume(&channel, ResumeFrom::After(&ids[4])), (6, false));
    }

    #[test]
    fn host_ids_resume_after_their_newest_retained_occurrence() {
        let channel = channel(10, 0);
        for id in ["a", "b", "a", "c"] {
            channel.publish(Event::data("x").id(id).unwrap()).unwrap();
        }
        assert_eq!(resume(&channel, ResumeFrom::After("b")), (3, false));
        assert_eq!(resume(&channel, ResumeFrom::After("a")), (4, false));
    }

    #[test]
    fn the_host_id_index_forgets_what_leaves_the_ring() {
        let channel = channel(2, 1);
        for n in 0..100 {
            let id = format!("id{}", n % 7);
            channel.publish(Event::data("x").id(id).unwrap()).unwrap();
        }
        let state = lock(&channel.inner.state);
        assert_eq!(state.ring.len(), 3);
        let mut indexed: Vec<u64> = state.host_ids.values().copied().collect();
        indexed.sort_unstable();
        assert_eq!(indexed, [98, 99, 100]);
        drop(state);
        // Evicted ids read as unknown (reset), not as a stale position.
        assert_eq!(resume(&channel, ResumeFrom::After("id5")), (99, true));
    }

    #[test]
    fn the_ring_holds_history_plus_max_lag() {
        let channel = channel(2, 5);
        publish_n(&channel, 50);
        assert_eq!(lock(&channel.inner.state).ring.len(), 7);
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

    /// Counts its wake-ups.
    struct Count(AtomicUsize);

    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn update(topic: &str) -> Option<Arc<Topics>> {
        Some(Arc::new(Topics::new(vec![topic.to_owned()], false)))
    }

    fn any_request() -> Request {
        let ends = crate::request::Endpoints {
            peer: "127.0.0.1:1".parse().unwrap(),
            local: "127.0.0.1:2".parse().unwrap(),
            tls: false,
        };
        let uri: http::Uri = "/hub".parse().unwrap();
        Request::new(
            http::Method::GET,
            &uri,
            http::Version::HTTP_11,
            Default::default(),
            ends,
        )
    }

    #[test]
    fn a_hub_subscriber_sleeps_through_updates_it_does_not_admit_and_never_lags_for_them() {
        // The ring holds 4 entries: 10 updates for others would put a
        // subscriber that had to look at each of them off its tail.
        let hub = channel(0, 4);
        let selector = Arc::new(crate::topic::Selector::parse("/mine").unwrap());
        let filter = Arc::new(TopicFilter {
            wanted: vec![selector],
            granted: Vec::new(),
        });
        let (mut quiet, _) = hub
            .subscribe_to_topics(any_request(), None, filter)
            .unwrap();
        let mut plain = hub.subscribe(any_request()).unwrap();
        let (quiet_wakes, plain_wakes) = (
            Arc::new(Count(AtomicUsize::new(0))),
            Arc::new(Count(AtomicUsize::new(0))),
        );
        let quiet_waker = Waker::from(Arc::clone(&quiet_wakes));
        let plain_waker = Waker::from(Arc::clone(&plain_wakes));
        let mut quiet_cx = Context::from_waker(&quiet_waker);
        let mut plain_cx = Context::from_waker(&plain_waker);
        for round in 1..=2 {
            assert!(quiet.poll_batch(&mut quiet_cx).is_pending());
            assert!(plain.poll_batch(&mut plain_cx).is_pending());
            for _ in 0..10 {
                hub.publish_tagged(Event::data("other"), update("/other"))
                    .unwrap();
            }
            assert_eq!(
                quiet_wakes.0.load(Ordering::SeqCst),
                round - 1,
                "not woken for others' updates"
            );
            assert!(
                quiet.poll_lagged(&mut quiet_cx).is_pending(),
                "no lag for updates it would not send"
            );
            hub.publish_tagged(Event::data("mine"), update("/mine"))
                .unwrap();
            assert_eq!(quiet_wakes.0.load(Ordering::SeqCst), round);
            let Poll::Ready(Some(Ok(batch))) = quiet.poll_batch(&mut quiet_cx) else {
                panic!("round {round}: the update it admits");
            };
            assert_eq!(batch.events(), 1);
            // A channel's own subscriber is woken by the first publish and,
            // not reading meanwhile, fell off the small ring.
            assert!(plain_wakes.0.load(Ordering::SeqCst) >= round);
            assert!(matches!(
                plain.poll_batch(&mut plain_cx),
                Poll::Ready(Some(Err(Lagged)))
            ));
            plain = hub.subscribe(any_request()).unwrap();
        }
        // A reset (no topics) reaches it.
        assert!(quiet.poll_batch(&mut quiet_cx).is_pending());
        hub.append_gap(StreamPos::START);
        let Poll::Ready(Some(Ok(batch))) = quiet.poll_batch(&mut quiet_cx) else {
            panic!("the reset");
        };
        assert_eq!(batch.events(), 1);
    }

    #[test]
    fn base36_round_numbers() {
        assert_eq!(to_base36(0), "0");
        assert_eq!(to_base36(35), "z");
        assert_eq!(to_base36(36), "10");
    }
}
