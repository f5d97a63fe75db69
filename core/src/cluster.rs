//! A Redis broker, so that servers sharing one Redis act as one: a publish
//! on any server reaches the subscribers of every server, in one order, and
//! a client resumes on any server from an id another one sent.
//!
//! Each channel is a Redis stream, `tidings:<path>`. A server has two
//! connections to Redis, whatever its number of channels and subscribers:
//!
//! - **the sender** takes publishes from a bounded queue, in their order,
//!   and sends them as pipelined `XADD`s. Each entry carries this server's
//!   id and a sequence number, so that a batch sent again after a lost
//!   connection (some of it may have been stored) is recognised downstream,
//!   and the sequence number of this server's previous entry in the same
//!   stream, so that a reader knows when entries it had not read were
//!   trimmed.
//! - **the reader** tails every channel's stream with one blocking `XREAD`
//!   and appends what it reads to the channel's ring, which serves the
//!   server's subscribers as without a broker: fan-out stays local and
//!   encode-once. An event published here reaches subscribers here the same
//!   way, so that every server delivers the same sequence.
//!
//! The entry id is the event's SSE id (unless the event brings its own), so
//! `Last-Event-ID` names a place in the order every server shares. A lost
//! connection is retried with backoff and jitter, the reader resumes from
//! the last entry it read, and if Redis lost entries it had not read yet
//! (trimmed past it, or restarted without its data) the channel's
//! subscribers are sent `event: reset` at the gap.
//!
//! Presence across servers: every [`PRESENCE_PERIOD`] each server writes its
//! channels' subscriber counts to a hash of its own that expires, marks
//! itself alive in `tidings:nodes` (a sorted set by Redis's clock), and sums
//! the counts of the servers alive: `ChannelStats::cluster_subscribers`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisError, RedisResult, Value};
use tokio::sync::{mpsc, Notify};

use crate::broker::{Broker, Receipt, StreamPos};
use crate::channel::{Channel, ChannelInner};
use crate::error::{Error, Result};
use crate::event::{Event, EventId};
use crate::stats::BrokerStats;
use crate::topic::Topics;

/// Most publishes sent in one pipeline.
const MAX_SEND_BATCH: usize = 512;
/// Most entries one `XREAD` returns per stream.
const MAX_READ_BATCH: usize = 1024;
/// How long one `XREAD` blocks waiting for entries.
const READ_BLOCK: Duration = Duration::from_secs(5);
/// A reply later than this means the connection is dead (e.g. Redis is
/// partitioned away without a reset): it is dropped and made again.
const SEND_REPLY_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// After this long without a publish, the sender checks its connection.
const IDLE_PING: Duration = Duration::from_secs(2);
/// How often a server tells Redis its subscriber counts and reads the others'.
const PRESENCE_PERIOD: Duration = Duration::from_secs(2);
/// A server silent this long counts as gone: its counts expire with it.
const PRESENCE_TTL: Duration = Duration::from_secs(6);
/// The sorted set of servers by their last report (Redis time, ms).
const NODES_KEY: &str = "tidings:nodes";
/// The fewest entries a stream keeps, whatever the channel's history: the
/// other servers must have time to read an entry before it is trimmed.
const MIN_RETAINED: usize = 1000;

/// The Redis broker of one server.
pub(crate) struct RedisBroker {
    shared: Arc<Shared>,
}

struct Shared {
    client: redis::Client,
    /// The URL without its password, for errors, logs and stats.
    shown_url: String,
    /// This server's id in the entries it sends: random per server instance.
    node: String,
    queue: Mutex<Option<mpsc::Sender<Outgoing>>>,
    /// Taken by the sender task when the server starts.
    queue_receiver: Mutex<Option<mpsc::Receiver<Outgoing>>>,
    queue_capacity: usize,
    /// Publishes taken from the queue and not yet stored.
    in_flight: AtomicUsize,
    /// Receipts of sent publishes, by sequence number, answered when the
    /// reader reads the entry back: a confirmed event is in this server's
    /// history too.
    confirmations: Mutex<HashMap<u64, Receipt>>,
    channels: Mutex<Vec<Registered>>,
    channels_changed: Notify,
    /// Woken when the sender has sent everything and ended.
    sender_done: Notify,
    sender_finished: AtomicBool,
    health: Mutex<Health>,
    sent: AtomicU64,
    refused: AtomicU64,
    received: AtomicU64,
    gaps: AtomicU64,
    /// Subscribers per channel path on every server alive, as last summed.
    cluster_counts: Mutex<HashMap<String, usize>>,
}

struct Registered {
    key: String,
    channel: Weak<ChannelInner>,
    /// How many entries the stream keeps, and the reader backfills.
    history: usize,
}

#[derive(Default)]
struct Health {
    sender: Link,
    reader: Link,
    faults: u64,
    reconnects: u64,
    last_error: Option<String>,
}

/// The state of one of the two connections that count for `connected`.
#[derive(Default)]
struct Link {
    up: bool,
    /// Its last connection ended in a fault (or could not be made), so the
    /// next one made is a reconnect.
    faulted: bool,
}

impl Health {
    fn link(&mut self, role: Role) -> Option<&mut Link> {
        match role {
            Role::Sender => Some(&mut self.sender),
            Role::Reader => Some(&mut self.reader),
            Role::Presence => None,
        }
    }
}

/// A publish waiting in the queue.
struct Outgoing {
    key: String,
    retain: usize,
    event: Event,
    /// A hub update's topics.
    topics: Option<Arc<Topics>>,
    receipt: Option<Receipt>,
    /// The sequence number of this server's previous entry in the same
    /// stream (0: none), set when the sender takes it.
    previous: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Sender,
    Reader,
    /// Presence reports: their faults are the other two's too, so they are
    /// counted there, not twice.
    Presence,
}

impl RedisBroker {
    /// A broker for `url` (`redis://` or `rediss://`, with an optional
    /// password and database; `ca`: the authorities a `rediss://` server's
    /// certificate must chain to, else the system's); nothing connects
    /// until [`start`](Self::start).
    pub(crate) fn new(url: &str, ca: Option<&Path>, queue_capacity: usize) -> Result<Self> {
        let invalid = |err: &dyn std::fmt::Display| {
            Error::InvalidConfig(format!("broker {:?}: {err}", without_password(url)))
        };
        let client = if url.starts_with("rediss://") {
            use_ring_unless_chosen();
            let root_cert = ca.map(read_authorities).transpose()?;
            let certificates = redis::TlsCertificates {
                client_tls: None,
                root_cert,
            };
            redis::Client::build_with_tls(url, certificates).map_err(|err| invalid(&err))?
        } else {
            redis::Client::open(url).map_err(|err| invalid(&err))?
        };
        let (sender, receiver) = mpsc::channel(queue_capacity);
        let node = format!(
            "{:016x}",
            getrandom::u64().unwrap_or_else(|_| fallback_random())
        );
        Ok(RedisBroker {
            shared: Arc::new(Shared {
                client,
                shown_url: without_password(url),
                node,
                queue: Mutex::new(Some(sender)),
                queue_receiver: Mutex::new(Some(receiver)),
                queue_capacity,
                in_flight: AtomicUsize::new(0),
                confirmations: Mutex::new(HashMap::new()),
                channels: Mutex::new(Vec::new()),
                channels_changed: Notify::new(),
                sender_done: Notify::new(),
                sender_finished: AtomicBool::new(false),
                health: Mutex::new(Health::default()),
                sent: AtomicU64::new(0),
                refused: AtomicU64::new(0),
                received: AtomicU64::new(0),
                gaps: AtomicU64::new(0),
                cluster_counts: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Has the reader tail `channel`'s stream.
    pub(crate) fn register(&self, channel: &Channel) {
        let options = channel.options();
        lock(&self.shared.channels).push(Registered {
            key: stream_key(channel.path()),
            channel: channel.downgrade(),
            history: options.history,
        });
        self.shared.channels_changed.notify_one();
    }

    /// Starts the sender and the reader on the engine's runtime.
    pub(crate) fn start(&self, runtime: &tokio::runtime::Handle) {
        if let Some(queue) = lock(&self.shared.queue_receiver).take() {
            runtime.spawn(run_sender(Arc::clone(&self.shared), queue));
            runtime.spawn(run_reader(Arc::clone(&self.shared)));
            runtime.spawn(run_presence(Arc::clone(&self.shared)));
        }
    }

    /// Subscribers of the channel at `path` on every server sharing the
    /// broker, as last counted (`None` until the first count).
    pub(crate) fn cluster_subscribers(&self, path: &str) -> Option<usize> {
        lock(&self.shared.cluster_counts).get(path).copied()
    }

    /// Takes no more publishes and resolves once the sender has sent every
    /// queued one (however long Redis takes to come back: bound it).
    pub(crate) async fn flush(&self) {
        lock(&self.shared.queue).take();
        loop {
            let done = self.shared.sender_done.notified();
            if self.shared.sender_finished.load(Ordering::Acquire) {
                break;
            }
            done.await;
        }
        // Leaving: the others stop counting this server's subscribers now,
        // not when its report expires.
        let shared = &self.shared;
        let leave = async {
            let mut connection = shared.connect(Role::Presence).await?;
            redis::pipe()
                .cmd("DEL")
                .arg(presence_key(&shared.node))
                .ignore()
                .cmd("ZREM")
                .arg(NODES_KEY)
                .arg(&shared.node)
                .ignore()
                .query_async::<()>(&mut connection)
                .await
        };
        if let Err(error) = leave.await {
            tracing::debug!(broker = %shared.shown_url, %error, "could not withdraw this server's presence");
        }
    }

    /// Drops the publishes of a server stopped before it started: their
    /// confirmations learn that it stopped.
    pub(crate) fn discard_unsent(&self) {
        lock(&self.shared.queue).take();
        lock(&self.shared.queue_receiver).take();
    }

    /// A snapshot of the broker's state.
    pub(crate) fn stats(&self) -> BrokerStats {
        let shared = &*self.shared;
        let health = lock(&shared.health);
        BrokerStats {
            url: shared.shown_url.clone(),
            connected: health.sender.up && health.reader.up,
            faults: health.faults,
            reconnects: health.reconnects,
            queued: shared.queued(),
            sent: shared.sent.load(Ordering::Relaxed),
            refused: shared.refused.load(Ordering::Relaxed),
            received: shared.received.load(Ordering::Relaxed),
            gaps: shared.gaps.load(Ordering::Relaxed),
            last_error: health.last_error.clone(),
        }
    }
}

impl Broker for RedisBroker {
    fn publish(
        &self,
        channel: &str,
        retain: usize,
        event: Event,
        topics: Option<Arc<Topics>>,
        receipt: Option<Receipt>,
    ) -> Result<()> {
        let shared = &*self.shared;
        let queue = lock(&shared.queue);
        let Some(queue) = queue.as_ref() else {
            return Err(Error::Stopped);
        };
        let outgoing = Outgoing {
            key: stream_key(channel),
            retain,
            event,
            topics,
            receipt,
            previous: 0,
        };
        queue.try_send(outgoing).map_err(|err| match err {
            mpsc::error::TrySendError::Full(_) => {
                shared.refused.fetch_add(1, Ordering::Relaxed);
                Error::BrokerUnavailable {
                    broker: shared.shown_url.clone(),
                    queued: shared.queue_capacity + shared.in_flight.load(Ordering::Relaxed),
                }
            }
            mpsc::error::TrySendError::Closed(_) => Error::Stopped,
        })
    }
}

impl Shared {
    /// Publishes not stored yet. Takes the queue's lock: not for callers
    /// that hold it.
    fn queued(&self) -> usize {
        let waiting = lock(&self.queue)
            .as_ref()
            .map_or(0, |queue| self.queue_capacity - queue.capacity());
        waiting + self.in_flight.load(Ordering::Relaxed)
    }

    async fn connect(&self, role: Role) -> RedisResult<MultiplexedConnection> {
        let reply_timeout = match role {
            Role::Sender | Role::Presence => SEND_REPLY_TIMEOUT,
            // A blocked read answers within its block time.
            Role::Reader => READ_BLOCK + SEND_REPLY_TIMEOUT,
        };
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(reply_timeout));
        let connection = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let was_faulted = {
            let mut health = lock(&self.health);
            let Some(link) = health.link(role) else {
                return Ok(connection);
            };
            link.up = true;
            let was_faulted = std::mem::replace(&mut link.faulted, false);
            if was_faulted {
                health.reconnects += 1;
            }
            was_faulted
        };
        // Logged with no lock held: a host's log handler may wait for its
        // own lock (Python's GIL) held by a thread reading the stats.
        if was_faulted {
            tracing::info!(broker = %self.shown_url, ?role, "reconnected to the broker");
        }
        Ok(connection)
    }

    /// The connection in `slot`, made first if there is none; `None` (the
    /// fault recorded) if it cannot be made.
    async fn connection<'c>(
        &self,
        role: Role,
        slot: &'c mut Option<MultiplexedConnection>,
    ) -> Option<&'c mut MultiplexedConnection> {
        if slot.is_none() {
            match self.connect(role).await {
                Ok(made) => *slot = Some(made),
                Err(error) => self.fault(role, &error),
            }
        }
        slot.as_mut()
    }

    fn fault(&self, role: Role, error: &RedisError) {
        let first = {
            let mut health = lock(&self.health);
            let Some(link) = health.link(role) else {
                return;
            };
            link.up = false;
            // Logged once per outage; the retries are counted, at debug.
            let first = !std::mem::replace(&mut link.faulted, true);
            health.faults += 1;
            health.last_error = Some(error.to_string());
            first
        };
        if first {
            tracing::warn!(broker = %self.shown_url, ?role, %error, "broker connection lost; retrying with backoff");
        } else {
            tracing::debug!(broker = %self.shown_url, ?role, %error, "broker still unreachable");
        }
    }

    /// The registered channels that still exist, as the reader's cursors.
    fn sync_cursors(&self, cursors: &mut Vec<Cursor>) {
        let mut channels = lock(&self.channels);
        channels.retain(|registered| registered.channel.strong_count() > 0);
        for registered in channels.iter() {
            if !cursors.iter().any(|cursor| cursor.key == registered.key) {
                cursors.push(Cursor {
                    key: registered.key.clone(),
                    channel: registered.channel.clone(),
                    history: registered.history,
                    last: StreamPos::START,
                    senders: HashMap::new(),
                    backfilled: false,
                });
            }
        }
        cursors.retain(|cursor| cursor.channel.strong_count() > 0);
    }
}

/// Retries with exponential backoff and jitter (each wait between half and
/// all of its ceiling), so that servers that lost Redis together do not
/// come back in lockstep.
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Self {
        Backoff {
            next: FIRST_BACKOFF,
        }
    }

    fn reset(&mut self) {
        self.next = FIRST_BACKOFF;
    }

    async fn wait(&mut self) {
        let ceiling = self.next;
        self.next = (self.next * 2).min(MAX_BACKOFF);
        let jitter = getrandom::u32().unwrap_or(u32::MAX / 2);
        let delay = ceiling / 2 + ceiling.mul_f64(f64::from(jitter) / f64::from(u32::MAX) / 2.0);
        tokio::time::sleep(delay).await;
    }
}

/// Whether the connection must be made again (rather than the request
/// having been refused by Redis).
fn is_connection_fault(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_unrecoverable_error()
}

/// An answer that says "not now" (`LOADING`, `TRYAGAIN`, `MASTERDOWN`,
/// `CLUSTERDOWN`, `READONLY` during a failover), not "never".
fn is_transient(error: &RedisError) -> bool {
    matches!(
        error.retry_method(),
        redis::RetryMethod::WaitAndRetry | redis::RetryMethod::RefreshSlotsAndRetry
    )
}

async fn run_sender(shared: Arc<Shared>, mut queue: mpsc::Receiver<Outgoing>) {
    let mut connection: Option<MultiplexedConnection> = None;
    let mut backoff = Backoff::new();
    let mut sequence = 0u64;
    // The newest sequence number sent on each stream.
    let mut newest_on_stream: HashMap<String, u64> = HashMap::new();
    let mut batch: Vec<(u64, Outgoing)> = Vec::with_capacity(MAX_SEND_BATCH);
    loop {
        if batch.is_empty() {
            let first = match tokio::time::timeout(IDLE_PING, queue.recv()).await {
                Ok(Some(first)) => first,
                Ok(None) => break,
                Err(_) => {
                    // Idle: a PING finds a connection that died meanwhile,
                    // so that `connected` tells the truth and the next
                    // publish does not wait for a reconnect.
                    if let Some(live) = &mut connection {
                        if let Err(error) = redis::cmd("PING").query_async::<()>(live).await {
                            shared.fault(Role::Sender, &error);
                            connection = None;
                        }
                    }
                    shared.connection(Role::Sender, &mut connection).await;
                    continue;
                }
            };
            let mut next = Some(first);
            while let Some(mut outgoing) = next.take() {
                sequence += 1;
                let newest = newest_on_stream.entry(outgoing.key.clone()).or_insert(0);
                outgoing.previous = std::mem::replace(newest, sequence);
                if let Some(receipt) = outgoing.receipt.take() {
                    lock(&shared.confirmations).insert(sequence, receipt);
                }
                batch.push((sequence, outgoing));
                if batch.len() < MAX_SEND_BATCH {
                    next = queue.try_recv().ok();
                }
            }
            shared.in_flight.store(batch.len(), Ordering::Relaxed);
        }
        let fresh = connection.is_none();
        let Some(live) = shared.connection(Role::Sender, &mut connection).await else {
            backoff.wait().await;
            continue;
        };
        if fresh {
            backoff.reset();
        }
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for (sequence, outgoing) in &batch {
            pipe.add_command(xadd(&shared.node, *sequence, outgoing));
        }
        match pipe.query_async::<Vec<RedisResult<String>>>(live).await {
            Ok(replies)
                if replies
                    .iter()
                    .any(|reply| reply.as_ref().is_err_and(is_transient)) =>
            {
                // Redis is loading its data after a restart, or failing
                // over: the batch waits and goes again, whole, like after a
                // lost connection, rather than being refused.
                if let Some(Err(error)) = replies.into_iter().find(Result::is_err) {
                    shared.fault(Role::Sender, &error);
                }
                connection = None;
                backoff.wait().await;
            }
            Ok(replies) => {
                let mut replies = replies.into_iter();
                for (sequence, outgoing) in batch.drain(..) {
                    let reply = replies.next().unwrap_or_else(|| {
                        Err(RedisError::from((
                            redis::ErrorKind::Client,
                            "missing reply in a pipeline",
                        )))
                    });
                    settle(&shared, sequence, &outgoing, reply);
                }
            }
            Err(error) if is_connection_fault(&error) => {
                // The batch is sent again, whole: entries of it that were
                // stored are recognised by their sequence numbers.
                shared.fault(Role::Sender, &error);
                connection = None;
                backoff.wait().await;
            }
            Err(error) => {
                for (sequence, outgoing) in batch.drain(..) {
                    settle(&shared, sequence, &outgoing, Err(error.clone()));
                }
            }
        }
        shared.in_flight.store(batch.len(), Ordering::Relaxed);
    }
    shared.sender_finished.store(true, Ordering::Release);
    shared.sender_done.notify_waiters();
}

/// Counts a publish's answer; a refusal is told to its confirmation here,
/// a success when the reader reads the entry back.
fn settle(shared: &Shared, sequence: u64, outgoing: &Outgoing, reply: RedisResult<String>) {
    match reply {
        Ok(_) => {
            shared.sent.fetch_add(1, Ordering::Relaxed);
        }
        Err(error) => {
            shared.refused.fetch_add(1, Ordering::Relaxed);
            tracing::error!(broker = %shared.shown_url, stream = %outgoing.key, %error, "the broker refused an event");
            if let Some(receipt) = lock(&shared.confirmations).remove(&sequence) {
                let _ = receipt.send(Err(Error::BrokerRefused(error.to_string())));
            }
        }
    }
}

/// `XADD <key> MAXLEN ~ <n> * n <node> s <sequence> p <previous> [d <data>]
/// [e <event>] [i <id>] [r <retry ms>] [c <comment>]`, and for a hub update
/// `t <topic>` per topic and `v 1` if it is private.
fn xadd(node: &str, sequence: u64, outgoing: &Outgoing) -> redis::Cmd {
    let event = &outgoing.event;
    let mut cmd = redis::cmd("XADD");
    cmd.arg(&outgoing.key)
        .arg("MAXLEN")
        .arg("~")
        .arg(outgoing.retain.max(MIN_RETAINED))
        .arg("*")
        .arg("n")
        .arg(node)
        .arg("s")
        .arg(sequence)
        .arg("p")
        .arg(outgoing.previous);
    if let Some(data) = event.data_str() {
        cmd.arg("d").arg(data);
    }
    if let Some(name) = event.event_name() {
        cmd.arg("e").arg(name);
    }
    if let Some(id) = event.id_str() {
        cmd.arg("i").arg(id);
    }
    if let Some(retry) = event.retry_ms() {
        cmd.arg("r").arg(retry);
    }
    if let Some(comment) = event.comment_str() {
        cmd.arg("c").arg(comment);
    }
    if let Some(topics) = &outgoing.topics {
        for topic in topics.names() {
            cmd.arg("t").arg(topic);
        }
        if topics.is_private() {
            cmd.arg("v").arg(1);
        }
    }
    cmd
}

/// The reader's place in one channel's stream.
struct Cursor {
    key: String,
    channel: Weak<ChannelInner>,
    history: usize,
    /// The newest entry read (`0-0` before any), where the next `XREAD`
    /// starts.
    last: StreamPos,
    /// Each sending server's newest sequence number seen here: an entry at
    /// or below it is a copy of one sent again after a lost connection.
    senders: HashMap<String, u64>,
    backfilled: bool,
}

impl Cursor {
    fn take(&mut self, shared: &Shared, entry: StreamEntry) {
        let Some(position) = StreamPos::parse(&entry.id) else {
            return;
        };
        if position <= self.last {
            return;
        }
        let before = std::mem::replace(&mut self.last, position);
        let Some(channel) = Channel::upgrade(&self.channel) else {
            return;
        };
        match event_from_fields(entry.fields) {
            Ok((event, origin, topics)) => {
                let mine = match origin {
                    Some(Origin {
                        node,
                        sequence,
                        previous,
                    }) => {
                        let own = node == shared.node;
                        let newest = self.senders.entry(node).or_insert(0);
                        if sequence <= *newest {
                            return;
                        }
                        // That server's entries between the last one read
                        // here and this one were trimmed before this reader
                        // got to them.
                        if *newest != 0 && previous.is_some_and(|previous| previous > *newest) {
                            tracing::warn!(stream = %self.key, id = %entry.id, "entries were trimmed before they were read: subscribers are sent a reset");
                            shared.gaps.fetch_add(1, Ordering::Relaxed);
                            channel.append_gap(before);
                        }
                        *newest = sequence;
                        own.then_some(sequence)
                    }
                    None => None,
                };
                channel.append_from_broker(&event, topics, position);
                shared.received.fetch_add(1, Ordering::Relaxed);
                if let Some(sequence) = mine {
                    if let Some(receipt) = lock(&shared.confirmations).remove(&sequence) {
                        let _ = receipt.send(Ok(EventId::from_text(&entry.id)));
                    }
                }
            }
            Err(reason) => {
                tracing::warn!(stream = %self.key, id = %entry.id, %reason, "skipped a malformed broker entry");
            }
        }
    }
}

/// Drops the confirmations still waiting when the reader ends (the server
/// stopped): they learn that it stopped.
struct DropConfirmations(Arc<Shared>);

impl Drop for DropConfirmations {
    fn drop(&mut self) {
        lock(&self.0.confirmations).clear();
    }
}

async fn run_reader(shared: Arc<Shared>) {
    let _confirmations = DropConfirmations(Arc::clone(&shared));
    let mut cursors: Vec<Cursor> = Vec::new();
    let mut connection: Option<MultiplexedConnection> = None;
    let mut backoff = Backoff::new();
    let mut after_fault = false;
    // Channels are looked up again only when one was added (at first, and
    // when `channels_changed` fires), not after every read.
    let mut channels_changed = true;
    loop {
        if std::mem::take(&mut channels_changed) {
            shared.sync_cursors(&mut cursors);
        }
        let Some(live) = shared.connection(Role::Reader, &mut connection).await else {
            backoff.wait().await;
            continue;
        };
        let prepared = async {
            if after_fault {
                for cursor in cursors.iter_mut().filter(|cursor| cursor.backfilled) {
                    check_for_gap(&shared, live, cursor).await?;
                }
            }
            for cursor in cursors.iter_mut().filter(|cursor| !cursor.backfilled) {
                backfill(&shared, live, cursor).await?;
            }
            RedisResult::Ok(())
        };
        if let Err(error) = prepared.await {
            shared.fault(Role::Reader, &error);
            connection = None;
            after_fault = true;
            backoff.wait().await;
            continue;
        }
        after_fault = false;
        backoff.reset();
        if cursors.is_empty() {
            shared.channels_changed.notified().await;
            channels_changed = true;
            continue;
        }
        let read = xread(live, &cursors);
        let changed = shared.channels_changed.notified();
        tokio::select! {
            reply = read => match reply {
                Ok(streams) => {
                    for (key, entries) in streams {
                        if let Some(cursor) = cursors.iter_mut().find(|cursor| cursor.key == key) {
                            for entry in entries {
                                cursor.take(&shared, entry);
                            }
                        }
                    }
                }
                Err(error) => {
                    shared.fault(Role::Reader, &error);
                    connection = None;
                    after_fault = true;
                    backoff.wait().await;
                }
            },
            // A channel was added: the blocked read must be made again with
            // it, on a new connection (the old one stays blocked in Redis).
            () = changed => {
                connection = None;
                channels_changed = true;
            }
        }
    }
}

/// Reports this server's subscriber counts and sums everyone's, every
/// [`PRESENCE_PERIOD`], for as long as the server runs.
async fn run_presence(shared: Arc<Shared>) {
    let mut connection: Option<MultiplexedConnection> = None;
    let mut ticks = tokio::time::interval(PRESENCE_PERIOD);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        // A presence connection's faults are the sender's and the reader's
        // too; they report them.
        let Some(live) = shared.connection(Role::Presence, &mut connection).await else {
            continue;
        };
        match report_presence(&shared, live).await {
            Ok(counts) => *lock(&shared.cluster_counts) = counts,
            Err(error) => {
                tracing::debug!(broker = %shared.shown_url, %error, "presence report failed");
                connection = None;
            }
        }
    }
}

/// Writes this server's counts, then reads and sums those of every server
/// that reported within [`PRESENCE_TTL`] (by Redis's clock, so that the
/// servers' own clocks need not agree).
async fn report_presence(
    shared: &Shared,
    connection: &mut MultiplexedConnection,
) -> RedisResult<HashMap<String, usize>> {
    let own: Vec<(String, usize)> = lock(&shared.channels)
        .iter()
        .filter_map(|registered| Channel::upgrade(&registered.channel))
        .map(|channel| (channel.path().to_owned(), channel.subscribers()))
        .collect();
    let (seconds, micros): (u64, u64) = redis::cmd("TIME").query_async(connection).await?;
    let now_ms = seconds * 1000 + micros / 1000;
    let ttl_ms = PRESENCE_TTL.as_millis() as u64;
    let key = presence_key(&shared.node);
    // One transaction, so that no reader sees this server's counts half
    // replaced.
    let mut pipe = redis::pipe();
    pipe.atomic().cmd("DEL").arg(&key).ignore();
    if !own.is_empty() {
        let hset = pipe.cmd("HSET").arg(&key);
        for (path, count) in &own {
            hset.arg(path).arg(count);
        }
        hset.ignore();
        pipe.cmd("PEXPIRE").arg(&key).arg(ttl_ms).ignore();
    }
    pipe.cmd("ZADD")
        .arg(NODES_KEY)
        .arg(now_ms)
        .arg(&shared.node)
        .ignore()
        .cmd("ZREMRANGEBYSCORE")
        .arg(NODES_KEY)
        .arg("-inf")
        .arg(now_ms.saturating_sub(ttl_ms))
        .ignore()
        .cmd("ZRANGE")
        .arg(NODES_KEY)
        .arg(0)
        .arg(-1);
    let (nodes,): (Vec<String>,) = pipe.query_async(connection).await?;
    let mut reads = redis::pipe();
    for node in &nodes {
        reads.cmd("HGETALL").arg(presence_key(node));
    }
    let reports: Vec<HashMap<String, usize>> = reads.query_async(connection).await?;
    let mut totals: HashMap<String, usize> = HashMap::new();
    for report in reports {
        for (path, count) in report {
            *totals.entry(path).or_insert(0) += count;
        }
    }
    // A channel no server reports has none anywhere, this one included.
    for (path, _) in own {
        totals.entry(path).or_insert(0);
    }
    Ok(totals)
}

/// The hash of one server's subscriber counts, by channel path.
fn presence_key(node: &str) -> String {
    format!("tidings:node:{node}")
}

/// Fills a new channel's ring with the stream's newest `history` entries,
/// and starts tailing after them.
async fn backfill(
    shared: &Shared,
    connection: &mut MultiplexedConnection,
    cursor: &mut Cursor,
) -> RedisResult<()> {
    let count = cursor.history.max(1);
    let reply: Value = redis::cmd("XREVRANGE")
        .arg(&cursor.key)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(count)
        .query_async(connection)
        .await?;
    let mut entries = parse_entries(reply)?;
    entries.reverse();
    if cursor.history == 0 {
        // Nothing to replay: only the place to tail from.
        if let Some(newest) = entries.pop() {
            cursor.last = StreamPos::parse(&newest.id).unwrap_or(StreamPos::START);
        }
    } else {
        for entry in entries {
            cursor.take(shared, entry);
        }
    }
    cursor.backfilled = true;
    Ok(())
}

/// After a lost connection: whether Redis still has every entry after the
/// last one this server read. It has not if the stream is gone (Redis
/// restarted without its data), was trimmed past that entry, or restarted
/// anew with later entries only.
async fn check_for_gap(
    shared: &Shared,
    connection: &mut MultiplexedConnection,
    cursor: &mut Cursor,
) -> RedisResult<()> {
    if cursor.last == StreamPos::START {
        return Ok(());
    }
    let info: RedisResult<Value> = redis::cmd("XINFO")
        .arg("STREAM")
        .arg(&cursor.key)
        .query_async(connection)
        .await;
    let gap = match info {
        Ok(info) => {
            let field = |name: &str| stream_info_id(&info, name);
            let first = first_entry_position(&info);
            match field("max-deleted-entry-id") {
                Some(max_deleted) => {
                    max_deleted > cursor.last
                        || first
                            .is_some_and(|first| first > cursor.last && max_deleted < cursor.last)
                }
                // Redis before 7.0 does not say what it trimmed.
                None => first.is_some_and(|first| first > cursor.last),
            }
        }
        Err(error)
            if error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError) =>
        {
            // "no such key": the stream is gone, and what it held with it.
            true
        }
        Err(error) => return Err(error),
    };
    if gap {
        shared.gaps.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(stream = %cursor.key, after = %cursor.last, "the broker lost entries this server had not read; subscribers are sent a reset");
        if let Some(channel) = Channel::upgrade(&cursor.channel) {
            channel.append_gap(cursor.last);
        }
    }
    Ok(())
}

/// `XREAD COUNT <n> BLOCK <ms> STREAMS <keys…> <last ids…>`: the new entries
/// of every stream, by key (none when the block time passed).
async fn xread(
    connection: &mut MultiplexedConnection,
    cursors: &[Cursor],
) -> RedisResult<Vec<(String, Vec<StreamEntry>)>> {
    let mut cmd = redis::cmd("XREAD");
    cmd.arg("COUNT")
        .arg(MAX_READ_BATCH)
        .arg("BLOCK")
        .arg(READ_BLOCK.as_millis() as u64)
        .arg("STREAMS");
    for cursor in cursors {
        cmd.arg(&cursor.key);
    }
    for cursor in cursors {
        cmd.arg(cursor.last.to_string());
    }
    let reply: Value = cmd.query_async(connection).await?;
    let pairs = match reply {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(streams) => streams
            .into_iter()
            .map(|stream| match stream {
                Value::Array(pair) => {
                    let mut pair = pair.into_iter();
                    Ok((
                        pair.next().unwrap_or_default(),
                        pair.next().unwrap_or_default(),
                    ))
                }
                other => Err(unexpected("a stream", &other)),
            })
            .collect::<RedisResult<Vec<_>>>()?,
        Value::Map(pairs) => pairs,
        other => return Err(unexpected("streams", &other)),
    };
    pairs
        .into_iter()
        .map(|(key, entries)| Ok((text(key)?, parse_entries(entries)?)))
        .collect()
}

/// One stream entry: its id and its field-value pairs.
struct StreamEntry {
    id: String,
    fields: Vec<(Vec<u8>, Vec<u8>)>,
}

fn parse_entries(reply: Value) -> RedisResult<Vec<StreamEntry>> {
    let Value::Array(entries) = reply else {
        return match reply {
            Value::Nil => Ok(Vec::new()),
            other => Err(unexpected("entries", &other)),
        };
    };
    entries
        .into_iter()
        .map(|entry| {
            let Value::Array(parts) = entry else {
                return Err(unexpected("an entry", &entry));
            };
            let mut parts = parts.into_iter();
            let id = text(parts.next().unwrap_or_default())?;
            let fields = match parts.next().unwrap_or_default() {
                Value::Array(flat) => {
                    let mut fields = Vec::with_capacity(flat.len() / 2);
                    let mut flat = flat.into_iter();
                    while let (Some(name), Some(value)) = (flat.next(), flat.next()) {
                        fields.push((bytes(name)?, bytes(value)?));
                    }
                    fields
                }
                Value::Map(pairs) => pairs
                    .into_iter()
                    .map(|(name, value)| Ok((bytes(name)?, bytes(value)?)))
                    .collect::<RedisResult<_>>()?,
                Value::Nil => Vec::new(),
                other => return Err(unexpected("entry fields", &other)),
            };
            Ok(StreamEntry { id, fields })
        })
        .collect()
}

/// Which server sent an entry, and its place in that server's sends.
#[derive(Debug, PartialEq, Eq)]
struct Origin {
    node: String,
    sequence: u64,
    /// The sequence number of that server's previous entry in the same
    /// stream (0: none); absent from entries of older versions.
    previous: Option<u64>,
}

/// What an entry holds: its event, who sent it if a tidings server did,
/// and a hub update's topics. Entries other programs add with the same
/// field names are delivered too.
type Decoded = (Event, Option<Origin>, Option<Arc<Topics>>);

/// The event an entry holds (see [`Decoded`]).
fn event_from_fields(fields: Vec<(Vec<u8>, Vec<u8>)>) -> std::result::Result<Decoded, String> {
    let mut parts: [Option<String>; 8] = Default::default();
    let mut topics = Vec::new();
    let mut private = false;
    for (name, value) in fields {
        let slot = match name.as_slice() {
            b"v" => {
                private = value == b"1";
                continue;
            }
            b"t" => {
                let topic = String::from_utf8(value).map_err(|_| "a topic is not UTF-8")?;
                topics.push(topic);
                continue;
            }
            b"d" => 0,
            b"e" => 1,
            b"i" => 2,
            b"r" => 3,
            b"c" => 4,
            b"n" => 5,
            b"s" => 6,
            b"p" => 7,
            _ => continue,
        };
        let value = String::from_utf8(value)
            .map_err(|_| format!("field {:?} is not UTF-8", String::from_utf8_lossy(&name)))?;
        parts[slot] = Some(value);
    }
    let [data, name, id, retry, comment, node, sequence, previous] = parts;
    let mut event = match (data, &comment) {
        (Some(data), _) => Event::data(data),
        (None, Some(_)) => Event::comment_only(""),
        (None, None) => Event::default(),
    };
    if let Some(comment) = comment {
        event = event.comment(comment);
    }
    if let Some(name) = name {
        event = event.event(name).map_err(|err| err.to_string())?;
    }
    if let Some(id) = id {
        event = event.id(id).map_err(|err| err.to_string())?;
    }
    if let Some(retry) = retry {
        let millis: u64 = retry
            .parse()
            .map_err(|_| format!("retry {retry:?} is not a number of milliseconds"))?;
        event = event.retry(Duration::from_millis(millis));
    }
    let origin = match (node, sequence.and_then(|s| s.parse::<u64>().ok())) {
        (Some(node), Some(sequence)) => Some(Origin {
            node,
            sequence,
            previous: previous.and_then(|p| p.parse().ok()),
        }),
        _ => None,
    };
    let topics = (!topics.is_empty()).then(|| Arc::new(Topics::new(topics, private)));
    Ok((event, origin, topics))
}

/// A field of `XINFO STREAM`'s reply that is an entry id.
fn stream_info_id(info: &Value, name: &str) -> Option<StreamPos> {
    match stream_info_field(info, name)? {
        Value::BulkString(id) => StreamPos::parse(std::str::from_utf8(id).ok()?),
        Value::SimpleString(id) => StreamPos::parse(id),
        _ => None,
    }
}

/// The id of the stream's first entry, from `XINFO STREAM`'s reply.
fn first_entry_position(info: &Value) -> Option<StreamPos> {
    let Value::Array(entry) = stream_info_field(info, "first-entry")? else {
        return None;
    };
    match entry.first()? {
        Value::BulkString(id) => StreamPos::parse(std::str::from_utf8(id).ok()?),
        _ => None,
    }
}

fn stream_info_field<'a>(info: &'a Value, name: &str) -> Option<&'a Value> {
    let is_name = |value: &Value| match value {
        Value::BulkString(bytes) => bytes == name.as_bytes(),
        Value::SimpleString(text) => text == name,
        _ => false,
    };
    match info {
        Value::Array(flat) => flat
            .chunks(2)
            .find(|pair| pair.len() == 2 && is_name(&pair[0]))
            .map(|pair| &pair[1]),
        Value::Map(pairs) => pairs
            .iter()
            .find(|(key, _)| is_name(key))
            .map(|(_, value)| value),
        _ => None,
    }
}

fn bytes(value: Value) -> RedisResult<Vec<u8>> {
    match value {
        Value::BulkString(bytes) => Ok(bytes),
        Value::SimpleString(text) => Ok(text.into_bytes()),
        Value::Int(n) => Ok(n.to_string().into_bytes()),
        other => Err(unexpected("a string", &other)),
    }
}

fn text(value: Value) -> RedisResult<String> {
    String::from_utf8(bytes(value)?)
        .map_err(|_| RedisError::from((redis::ErrorKind::Parse, "a key or id is not UTF-8")))
}

fn unexpected(what: &'static str, got: &Value) -> RedisError {
    RedisError::from((
        redis::ErrorKind::Parse,
        "unexpected reply from the broker",
        format!("expected {what}, got {got:?}"),
    ))
}

/// The Redis stream of the channel at `path`.
fn stream_key(path: &str) -> String {
    format!("tidings:{path}")
}

/// The PEM certificates in the file at `path`, checked to hold at least one
/// (an empty or unreadable file would only fail later, at every connect).
fn read_authorities(path: &Path) -> Result<Vec<u8>> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let invalid =
        |why: String| Error::InvalidConfig(format!("broker_ca {}: {why}", path.display()));
    let pem = std::fs::read(path).map_err(|err| invalid(err.to_string()))?;
    let mut certificates = 0;
    for certificate in CertificateDer::pem_slice_iter(&pem) {
        certificate.map_err(|err| invalid(format!("not a PEM certificate ({err})")))?;
        certificates += 1;
    }
    if certificates == 0 {
        return Err(invalid("holds no PEM certificate".to_owned()));
    }
    Ok(pem)
}

/// rustls needs one process-wide cryptography provider. Ours is ring; a host
/// that installed its own (another library of the process did) keeps it.
fn use_ring_unless_chosen() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Fails only if another thread installed one first: that one serves.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// `url` with its password (if any) replaced by `***`.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}

fn fallback_random() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_logs_or_stats() {
        assert_eq!(
            without_password("redis://:s3cret@127.0.0.1:6379/2"),
            "redis://:***@127.0.0.1:6379/2"
        );
        assert_eq!(
            without_password("redis://user:s3cret@host/0"),
            "redis://user:***@host/0"
        );
        assert_eq!(without_password("redis://host:1/0"), "redis://host:1/0");
    }

    fn fields(pairs: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
        pairs
            .iter()
            .map(|(name, value)| (name.as_bytes().to_vec(), value.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn entries_hold_every_field_of_an_event() {
        let event = Event::data("a\nb")
            .event("goal")
            .unwrap()
            .id("7")
            .unwrap()
            .retry(Duration::from_millis(1500))
            .comment("note");
        let outgoing = Outgoing {
            key: stream_key("/c"),
            retain: 10,
            event: event.clone(),
            topics: Some(Arc::new(Topics::new(
                vec!["/a".into(), "urn:b".into()],
                true,
            ))),
            receipt: None,
            previous: 2,
        };
        let args: Vec<String> = xadd("node", 3, &outgoing)
            .args_iter()
            .map(|arg| match arg {
                redis::Arg::Simple(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                _ => "<other>".into(),
            })
            .collect();
        assert_eq!(
            args[..6],
            ["XADD", "tidings:/c", "MAXLEN", "~", "1000", "*"]
        );
        let pairs: Vec<(&str, &str)> = args[6..]
            .chunks(2)
            .map(|pair| (pair[0].as_str(), pair[1].as_str()))
            .collect();
        let (back, origin, topics) = event_from_fields(fields(&pairs)).unwrap();
        assert_eq!(back, event);
        assert_eq!(topics.as_deref(), outgoing.topics.as_deref());
        let sender = Origin {
            node: "node".to_owned(),
            sequence: 3,
            previous: Some(2),
        };
        assert_eq!(origin, Some(sender));
        let (_, origin, topics) = event_from_fields(fields(&[("d", "x")])).unwrap();
        assert_eq!(origin, None, "entries other programs add have no sender");
        assert_eq!(topics, None);
    }

    fn test_cursor(channel: &Channel) -> Cursor {
        Cursor {
            key: stream_key("/c"),
            channel: channel.downgrade(),
            history: 10,
            last: StreamPos::START,
            senders: HashMap::new(),
            backfilled: true,
        }
    }

    fn test_channel() -> Channel {
        Channel::new(
            "/c".into(),
            crate::ChannelOptions::default(),
            Arc::default(),
            None,
        )
    }

    /// A batch sent again after a lost connection may be stored twice; the
    /// copies carry the sequence numbers of the first and are dropped.
    #[test]
    fn copies_of_a_batch_sent_again_are_dropped_and_own_entries_confirm() {
        let broker = RedisBroker::new("redis://127.0.0.1:1/0", None, 10).unwrap();
        let shared = &broker.shared;
        let channel = test_channel();
        let mut cursor = test_cursor(&channel);
        let (receipt, mut answer) = tokio::sync::oneshot::channel();
        lock(&shared.confirmations).insert(2, receipt);
        let entry = |id: &str, node: &str, sequence: &str| StreamEntry {
            id: id.into(),
            fields: fields(&[("n", node), ("s", sequence), ("d", id)]),
        };
        let own = shared.node.clone();
        for (id, node, sequence) in [
            ("1-0", own.as_str(), "1"),
            ("2-0", own.as_str(), "2"),
            ("3-0", "other", "1"),
            // The batch 1..2 stored again, then new entries.
            ("4-0", own.as_str(), "1"),
            ("4-1", own.as_str(), "2"),
            ("5-0", own.as_str(), "3"),
            ("6-0", "other", "1"),
            // Out of order or repeated ids are ignored.
            ("5-0", "other", "9"),
        ] {
            cursor.take(shared, entry(id, node, sequence));
        }
        assert_eq!(channel.events_published(), 4);
        assert_eq!(shared.received.load(Ordering::Relaxed), 4);
        assert_eq!(cursor.last.to_string(), "6-0");
        assert_eq!(answer.try_recv().unwrap().unwrap().as_str(), "2-0");
        assert!(lock(&shared.confirmations).is_empty());
        assert_eq!(shared.gaps.load(Ordering::Relaxed), 0);
    }

    /// Entries trimmed before the reader read them (a burst longer than the
    /// stream keeps) leave a hole in a sender's chain: the subscribers get a
    /// reset there, not a silent gap.
    #[test]
    fn entries_trimmed_before_they_were_read_send_a_reset() {
        let broker = RedisBroker::new("redis://127.0.0.1:1/0", None, 10).unwrap();
        let shared = &broker.shared;
        let channel = test_channel();
        let mut cursor = test_cursor(&channel);
        let entry = |id: &str, node: &str, sequence: &str, previous: &str| StreamEntry {
            id: id.into(),
            fields: fields(&[("n", node), ("s", sequence), ("p", previous), ("d", id)]),
        };
        for (id, node, sequence, previous) in [
            // The first entry read from a sender starts its chain anywhere.
            ("1-0", "a", "7", "5"),
            ("2-0", "a", "8", "7"),
            // Another stream's sends come between a sender's entries here.
            ("3-0", "b", "1", "0"),
            ("4-0", "b", "4", "1"),
        ] {
            cursor.take(shared, entry(id, node, sequence, previous));
        }
        assert_eq!(shared.gaps.load(Ordering::Relaxed), 0);
        assert_eq!(channel.events_published(), 4);
        // a's entries 9 and 10 were trimmed before this reader got to them.
        cursor.take(shared, entry("9-0", "a", "11", "10"));
        assert_eq!(shared.gaps.load(Ordering::Relaxed), 1);
        // The reset, then the entry itself.
        assert_eq!(channel.events_published(), 6);
        // Entries without the field (older servers) are taken as they come.
        cursor.take(
            shared,
            StreamEntry {
                id: "10-0".into(),
                fields: fields(&[("n", "c"), ("s", "5"), ("d", "x")]),
            },
        );
        cursor.take(
            shared,
            StreamEntry {
                id: "11-0".into(),
                fields: fields(&[("n", "c"), ("s", "9"), ("d", "x")]),
            },
        );
        assert_eq!(shared.gaps.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn malformed_entries_are_named_not_delivered() {
        let err = event_from_fields(fields(&[("d", "x"), ("e", "bad\nname")])).unwrap_err();
        assert!(err.contains("event"), "{err}");
        let err = event_from_fields(fields(&[("r", "soon")])).unwrap_err();
        assert!(err.contains("retry"), "{err}");
        let err = event_from_fields(vec![(b"d".to_vec(), vec![0xff])]).unwrap_err();
        assert!(err.contains("UTF-8"), "{err}");
    }
}
