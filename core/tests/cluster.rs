//! Servers joined by a real redis-server (started here on a free loopback
//! port): one order for every subscriber of every server, resume on another
//! server, and Redis killed and started again under load.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::tls::TestCa;
use common::*;
use tidings::{Channel, ChannelOptions, Config, Error, EventId, Server};

use tidings::Event;

/// An event as the test's SSE client parsed it.
type Received = common::Event;

/// A redis-server of the test's own, on a free port, in a directory of its
/// own; killed (by its pid) when dropped.
struct Redis {
    port: u16,
    dir: PathBuf,
    persistent: bool,
    /// Serves TLS only, with a certificate for 127.0.0.1 signed by `ca.pem`
    /// in `dir`.
    tls: bool,
    process: Option<Child>,
}

impl Redis {
    fn start(persistent: bool) -> Redis {
        Redis::launched(persistent, false)
    }

    /// A redis-server that speaks TLS only (`rediss://`), its certificate
    /// signed by a CA made for it ([`Redis::ca`]).
    fn start_tls() -> Redis {
        Redis::launched(false, true)
    }

    fn launched(persistent: bool, tls: bool) -> Redis {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("tidings-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        if tls {
            let ca = TestCa::new("tidings test CA");
            std::fs::write(dir.join("ca.pem"), ca.certificate.pem()).unwrap();
            let (certificate, key) = ca.sign_server("127.0.0.1");
            std::fs::write(dir.join("server.pem"), certificate).unwrap();
            std::fs::write(dir.join("server.key"), key).unwrap();
        }
        let mut redis = Redis {
            port,
            dir,
            persistent,
            tls,
            process: None,
        };
        redis.launch();
        redis
    }

    fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
    }

    /// The CA that signed a TLS server's certificate.
    fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    fn launch(&mut self) {
        let port = self.port.to_string();
        let mut command = Command::new("redis-server");
        if self.tls {
            command
                .args([
                    "--port",
                    "0",
                    "--tls-port",
                    &port,
                    "--tls-auth-clients",
                    "no",
                ])
                .arg("--tls-cert-file")
                .arg(self.dir.join("server.pem"))
                .arg("--tls-key-file")
                .arg(self.dir.join("server.key"))
                .arg("--tls-ca-cert-file")
                .arg(self.ca());
        } else {
            command.args(["--port", &port]);
        }
        command
            .args([
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--enable-debug-command",
                "local",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--appendonly", if self.persistent { "yes" } else { "no" }])
            .args(["--appendfsync", "always"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = command
            .spawn()
            .expect("redis-server runs (Debian's redis-server package)");
        self.process = Some(child);
        let deadline = Instant::now() + PATIENCE;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Adds `keys` filler keys and rewrites the append-only file with them,
    /// so that a restart spends a while loading (Redis answers `LOADING`
    /// meanwhile).
    fn fill(&self, keys: usize) {
        let cli = |args: &[&str]| {
            let output = Command::new("redis-cli")
                .args(["-p", &self.port.to_string()])
                .args(args)
                .output()
                .expect("redis-cli runs (Debian's redis-tools, with redis-server)");
            String::from_utf8_lossy(&output.stdout).into_owned()
        };
        assert_eq!(cli(&["DEBUG", "POPULATE", &keys.to_string()]).trim(), "OK");
        cli(&["BGREWRITEAOF"]);
        let deadline = Instant::now() + PATIENCE;
        while !cli(&["INFO", "persistence"])
            .contains("aof_rewrite_in_progress:0\r\naof_rewrite_scheduled:0")
        {
            assert!(Instant::now() < deadline, "the AOF rewrite did not finish");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `kill -9`: no shutdown, no last save.
    fn kill(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn restart(&mut self) {
        self.kill();
        self.launch();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Node {
    server: Server,
    channel: Channel,
    addr: SocketAddr,
}

fn node(broker: &str, history: usize) -> Node {
    node_with(
        Config {
            broker: Some(broker.to_owned()),
            ..Config::default()
        },
        ChannelOptions {
            history,
            ..ChannelOptions::default()
        },
    )
}

/// A node of `config` (on one engine thread), its channel `/c` of
/// `options` started.
fn node_with(config: Config, options: ChannelOptions) -> Node {
    let server = server(Config {
        worker_threads: 1,
        ..config
    });
    let channel = server.channel("/c", options).unwrap();
    let addr = server.start().unwrap();
    Node {
        server,
        channel,
        addr,
    }
}

/// Publishes `event` and waits for its confirmation, failing the test
/// rather than hanging if it never comes.
async fn confirmed(channel: &Channel, event: Event) -> tidings::Result<Option<EventId>> {
    tokio::time::timeout(PATIENCE, channel.publish_confirmed(event))
        .await
        .expect("the publish is confirmed in time")
}

/// Two servers on `redis`, channel histories of `history`, each having read
/// up to the stream's head.
async fn settled_pair(redis: &Redis, history: usize) -> (Node, Node) {
    let pair = (node(&redis.url(), history), node(&redis.url(), history));
    settled(&[&pair.0, &pair.1]).await;
    pair
}

/// Waits until every node's reader has read up to the stream's head: a
/// marker published from the first one has reached all of them.
async fn settled(nodes: &[&Node]) {
    let id = confirmed(
        &nodes[0].channel,
        Event::data("settle").event("settle").unwrap(),
    )
    .await
    .unwrap()
    .unwrap();
    for node in nodes {
        let mut events = get(node.addr, "/c", &[("last-event-id", "0-1")])
            .await
            .events();
        // Resuming from the start replays history through the marker.
        loop {
            let event = tokio::time::timeout(PATIENCE, events.next())
                .await
                .expect("the marker reaches every node")
                .expect("stream open");
            if event.id == id.as_str() {
                break;
            }
        }
    }
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subscriber_of_every_server_gets_every_publish_in_one_order() {
    quiet_logs();
    let redis = Redis::start(false);
    let nodes: Vec<Node> = (0..3).map(|_| node(&redis.url(), 1000)).collect();
    let mut subscribers = Vec::new();
    for node in &nodes {
        for _ in 0..2 {
            let response = get(node.addr, "/c", &[]).await;
            assert_eq!(response.status, 200);
            subscribers.push(response.events());
        }
    }
    const PER_NODE: usize = 200;
    let publishers: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(n, node)| {
            let channel = node.channel.clone();
            std::thread::spawn(move || {
                for i in 0..PER_NODE {
                    channel.publish(Event::data(format!("{n}:{i}"))).unwrap();
                }
            })
        })
        .collect();
    for publisher in publishers {
        publisher.join().unwrap();
    }
    let mut sequences = Vec::new();
    for mut subscriber in subscribers {
        let events = tokio::time::timeout(PATIENCE, subscriber.take(3 * PER_NODE))
            .await
            .expect("every event arrives");
        sequences.push(events);
    }
    let first: Vec<(String, String)> = sequences[0]
        .iter()
        .map(|e| (e.id.clone(), e.data.clone()))
        .collect();
    assert_eq!(first.len(), 3 * PER_NODE);
    for sequence in &sequences[1..] {
        let this: Vec<(String, String)> = sequence
            .iter()
            .map(|e| (e.id.clone(), e.data.clone()))
            .collect();
        assert_eq!(this, first, "every subscriber sees the same order");
    }
    // Each server's own publishes keep their order in the global one.
    for n in 0..3 {
        let mine: Vec<&str> = first
            .iter()
            .map(|(_, data)| data.as_str())
            .filter(|data| data.starts_with(&format!("{n}:")))
            .collect();
        let expected: Vec<String> = (0..PER_NODE).map(|i| format!("{n}:{i}")).collect();
        assert_eq!(mine, expected);
    }
    // The ids are the stream's, increasing.
    assert!(first.windows(2).all(|pair| {
        let id = |s: &str| {
            let (ms, seq) = s.split_once('-').unwrap();
            (ms.parse::<u64>().unwrap(), seq.parse::<u64>().unwrap())
        };
        id(&pair[0].0) < id(&pair[1].0)
    }));
    for node in &nodes {
        let stats = node.server.stats();
        let broker = stats.broker.expect("broker stats");
        assert!(broker.connected);
        assert_eq!(broker.sent, PER_NODE as u64);
        assert_eq!(broker.received, 3 * PER_NODE as u64);
        assert_eq!(broker.url, redis.url());
    }
}

/// The stream keeps what the channel's ring holds (history + max_lag), so a
/// burst far longer than the history reaches a server whose reader falls
/// behind the sender, whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_longer_than_the_history_reaches_every_server_whole() {
    quiet_logs();
    let redis = Redis::start(false);
    const BURST: usize = 20_000;
    let options = ChannelOptions {
        history: 0,
        max_lag: BURST,
        ..ChannelOptions::default()
    };
    let config = || Config {
        broker: Some(redis.url()),
        broker_queue: BURST,
        ..Config::default()
    };
    let (a, b) = (
        node_with(config(), options.clone()),
        node_with(config(), options),
    );
    let mut on_b = get(b.addr, "/c", &[]).await.raw();
    // Once the marker arrives, b's reader is tailing the stream.
    confirmed(&a.channel, Event::data("ready")).await.unwrap();
    on_b.read_until("data: ready\n\n").await;
    let channel = a.channel.clone();
    std::thread::spawn(move || {
        for i in 0..BURST {
            channel.publish(Event::data(i.to_string())).unwrap();
        }
    })
    .join()
    .unwrap();
    let last = format!("data: {}\n\n", BURST - 1);
    let received = on_b.count_events_until(&last).await;
    assert_eq!(received, BURST, "events lost or a reset sent");
    assert_eq!(b.server.stats().broker.unwrap().gaps, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resumes_on_another_server_with_no_gap_and_no_duplicate() {
    quiet_logs();
    let redis = Redis::start(false);
    let (a, b) = settled_pair(&redis, 100).await;
    let mut first_half = get(a.addr, "/c", &[]).await.events();
    for i in 0..10 {
        a.channel.publish(Event::data(format!("e{i}"))).unwrap();
    }
    let seen = tokio::time::timeout(PATIENCE, first_half.take(5))
        .await
        .unwrap();
    drop(first_half);
    for i in 10..20 {
        b.channel.publish(Event::data(format!("e{i}"))).unwrap();
    }
    let last = seen.last().unwrap().id.clone();
    let mut second_half = get(b.addr, "/c", &[("last-event-id", &last)])
        .await
        .events();
    let rest = tokio::time::timeout(PATIENCE, second_half.take(15))
        .await
        .unwrap();
    let data: Vec<String> = seen.iter().chain(&rest).map(|e| e.data.clone()).collect();
    let expected: Vec<String> = (0..20).map(|i| format!("e{i}")).collect();
    assert_eq!(data, expected);
    assert!(rest.iter().all(|e| e.event != "reset"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_from_an_entry_this_server_has_not_read_yet_skips_it_when_it_arrives() {
    quiet_logs();
    let redis = Redis::start(false);
    let (a, b) = settled_pair(&redis, 100).await;
    // An id newer than anything b has read, as a client served by a faster
    // server would bring: what b reads up to it is not sent again.
    let id = confirmed(&a.channel, Event::data("seen elsewhere"))
        .await
        .unwrap()
        .unwrap();
    let (millis, sequence) = id.as_str().split_once('-').unwrap();
    let ahead = format!("{}-{sequence}", millis.parse::<u64>().unwrap() + 60_000);
    let mut events = get(b.addr, "/c", &[("last-event-id", &ahead)])
        .await
        .events();
    a.channel.publish(Event::data("also before")).unwrap();
    // Entries after the client's id come through once it is passed.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let nothing = tokio::time::timeout(Duration::from_millis(300), events.next()).await;
    assert!(nothing.is_err(), "entries before the resume id are skipped");
    drop(events);
}

/// A confirmed publish is in the server's own history: a client that
/// resumes from its id right after the confirmation misses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_confirmed_tells_the_brokers_id_and_the_host_id_wins_when_given() {
    quiet_logs();
    let redis = Redis::start(false);
    let a = node(&redis.url(), 10);
    let id = confirmed(&a.channel, Event::data("x"))
        .await
        .unwrap()
        .unwrap();
    assert!(id.as_str().contains('-'), "{id}");
    let own = confirmed(&a.channel, Event::data("y").id("mine-1").unwrap())
        .await
        .unwrap();
    assert_eq!(own.unwrap().as_str(), "mine-1");
    assert_eq!(
        a.channel
            .publish(Event::data("z").id("mine-2").unwrap())
            .unwrap()
            .unwrap()
            .as_str(),
        "mine-2"
    );
    assert_eq!(a.channel.publish(Event::data("w")).unwrap(), None);
    // A plain thread waits for the same answer.
    let channel = a.channel.clone();
    let waited = std::thread::spawn(move || {
        channel
            .publish_confirmed(Event::data("v"))
            .wait(Some(PATIENCE))
    })
    .join()
    .unwrap();
    assert!(waited.unwrap().unwrap().as_str().contains('-'));
    // A host id resumes on the server too.
    let mut events = get(a.addr, "/c", &[("last-event-id", "mine-1")])
        .await
        .events();
    let next = tokio::time::timeout(PATIENCE, events.take(2))
        .await
        .unwrap();
    assert_eq!(next[0].id, "mine-2");
    assert_eq!(next[1].data, "w");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_older_than_the_history_resets_as_on_one_server() {
    quiet_logs();
    let redis = Redis::start(false);
    let (a, b) = settled_pair(&redis, 5).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let id = confirmed(&a.channel, Event::data(format!("e{i}")))
            .await
            .unwrap()
            .unwrap();
        ids.push(id.to_string());
    }
    settled(&[&a, &b]).await;
    let mut events = get(b.addr, "/c", &[("last-event-id", &ids[2])])
        .await
        .events();
    let replay = tokio::time::timeout(PATIENCE, events.take(6))
        .await
        .unwrap();
    assert_eq!(replay[0].event, "reset");
    // The history holds the five newest: e16..e19 and the second marker.

    let data: Vec<&str> = replay[1..].iter().map(|e| e.data.as_str()).collect();
    assert_eq!(data, ["e16", "e17", "e18", "e19", "settle"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_with_its_data_loses_nothing() {
    quiet_logs();
    let mut redis = Redis::start(true);
    let (a, b) = settled_pair(&redis, 1000).await;
    let mut on_a = get(a.addr, "/c", &[]).await.events();
    let mut on_b = get(b.addr, "/c", &[]).await.events();
    for i in 0..50 {
        a.channel.publish(Event::data(format!("e{i}"))).unwrap();
    }
    let before = tokio::time::timeout(PATIENCE, on_b.take(50)).await.unwrap();
    assert_eq!(before.len(), 50);
    redis.kill();
    // Published while Redis is down: queued, sent when it is back.
    for i in 50..100 {
        b.channel.publish(Event::data(format!("e{i}"))).unwrap();
    }
    eventually("the fault to show in stats", || {
        let broker = a.server.stats().broker.unwrap();
        !broker.connected && broker.faults > 0 && broker.last_error.is_some()
    })
    .await;
    redis.restart();
    let all_a = tokio::time::timeout(PATIENCE, on_a.take(100))
        .await
        .unwrap();
    let after_b = tokio::time::timeout(PATIENCE, on_b.take(50)).await.unwrap();
    let expected: Vec<String> = (0..100).map(|i| format!("e{i}")).collect();
    let data = |events: &[Received]| events.iter().map(|e| e.data.clone()).collect::<Vec<_>>();
    assert_eq!(data(&all_a), expected);
    assert_eq!([data(&before), data(&after_b)].concat(), expected);
    // Both connections of both servers reconnect, a's idle sender too (it
    // checks its connection when idle).
    eventually("both servers to reconnect", || {
        [&a, &b].iter().all(|node| {
            let broker = node.server.stats().broker.unwrap();
            broker.connected && broker.reconnects == 2 && broker.gaps == 0
        })
    })
    .await;
    // Once healed, a channel added (which makes the reader connect again
    // with it) is not counted as another reconnect. (`connected` holds for
    // a's sender too, which sent nothing meanwhile: idle, it checks.)
    let reconnects = a.server.stats().broker.unwrap().reconnects;
    let late = a
        .server
        .channel("/late", ChannelOptions::default())
        .unwrap();
    confirmed(&late, Event::data("x")).await.unwrap();
    assert_eq!(a.server.stats().broker.unwrap().reconnects, reconnects);
}

/// A TCP proxy to Redis that the test cuts (every connection reset, new ones
/// refused) and heals.
struct Proxy {
    port: u16,
    open: Arc<AtomicBool>,
    /// While set, the relays hold every byte: connections stay open and
    /// silent, as behind a network that stopped delivering.
    stalled: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accepting: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(redis_port: u16) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicBool::new(true));
        let stalled = Arc::new(AtomicBool::new(false));
        let connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let accepting = tokio::spawn({
            let (open, stalled) = (Arc::clone(&open), Arc::clone(&stalled));
            let connections = Arc::clone(&connections);
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    if !open.load(Ordering::SeqCst) {
                        continue; // dropped: the client sees the connection close
                    }
                    let stalled = Arc::clone(&stalled);
                    let relay = tokio::spawn(async move {
                        let Ok(redis) =
                            tokio::net::TcpStream::connect(("127.0.0.1", redis_port)).await
                        else {
                            return;
                        };
                        let (from_client, to_client) = client.into_split();
                        let (from_redis, to_redis) = redis.into_split();
                        let up = relay(from_client, to_redis, Arc::clone(&stalled));
                        let down = relay(from_redis, to_client, stalled);
                        tokio::join!(up, down);
                    });
                    connections.lock().unwrap().push(relay);
                }
            }
        });
        Proxy {
            port,
            open,
            stalled,
            connections,
            accepting,
        }
    }

    /// Holds every byte in both directions until [`Proxy::heal`].
    fn stall(&self) {
        self.stalled.store(true, Ordering::SeqCst);
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for relay in self.connections.lock().unwrap().drain(..) {
            relay.abort();
        }
    }

    fn heal(&self) {
        self.stalled.store(false, Ordering::SeqCst);
        self.open.store(true, Ordering::SeqCst);
    }
}

/// Copies `from` to `to`, holding what it read while `stalled` is set.
async fn relay(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    stalled: Arc<AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0u8; 16 * 1024];
    while let Ok(n @ 1..) = from.read(&mut buffer).await {
        while stalled.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accepting.abort();
    }
}

/// After a restart Redis answers `LOADING` until its data is read back:
/// publishes sent then wait and go again; none is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_sent_while_redis_loads_its_data_wait_and_arrive() {
    quiet_logs();
    let mut redis = Redis::start(true);
    redis.fill(2_000_000);
    let (a, b) = settled_pair(&redis, 100).await;
    let mut on_b = get(b.addr, "/c", &[]).await.raw();
    redis.kill();
    for i in 0..20 {
        a.channel
            .publish(Event::data(format!("during:{i}")))
            .unwrap();
    }
    // Accepting connections again, and loading for a while.
    redis.launch();
    let received = on_b.count_events_until("data: during:19\n\n").await;
    assert_eq!(received, 20);
    let broker = a.server.stats().broker.unwrap();
    assert_eq!((broker.refused, broker.gaps), (0, 0), "{broker:?}");
}

/// How the network between a server and Redis fails.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Connections are closed and new ones refused.
    Cut,
    /// Connections stay open and go silent.
    Stall,
}

/// One server reaches Redis through a proxy that fails as `fault` says, the
/// other directly. The other goes on at once; the one behind the proxy
/// queues its own publishes, notices the fault (a cut at once, silence by
/// its reply timeouts), and once healed catches up, in the one order.
async fn a_failing_link_stalls_no_other_server(fault: Fault) {
    quiet_logs();
    let redis = Redis::start(false);
    let proxy = Proxy::start(redis.port).await;
    let behind = node(&proxy.url(), 1000);
    let direct = node(&redis.url(), 1000);
    // The marker is published behind the proxy: its connections are all
    // made before the fault.
    settled(&[&behind, &direct]).await;
    let mut on_behind = get(behind.addr, "/c", &[]).await.events();
    let mut on_direct = get(direct.addr, "/c", &[]).await.events();
    match fault {
        Fault::Cut => proxy.cut(),
        Fault::Stall => proxy.stall(),
    }
    for i in 0..5 {
        behind
            .channel
            .publish(Event::data(format!("b{i}")))
            .unwrap();
    }
    for i in 0..20 {
        direct
            .channel
            .publish(Event::data(format!("d{i}")))
            .unwrap();
    }
    let during = tokio::time::timeout(PATIENCE, on_direct.take(20))
        .await
        .unwrap();
    assert_eq!(during.len(), 20);
    // A send's reply timeout is 5 s.
    let deadline = Instant::now() + 3 * PATIENCE;
    loop {
        let broker = behind.server.stats().broker.unwrap();
        if broker.faults > 0 && !broker.connected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{fault:?} never showed: {broker:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    proxy.heal();
    let caught_up = tokio::time::timeout(3 * PATIENCE, on_behind.take(25))
        .await
        .unwrap();
    let data: Vec<&str> = caught_up.iter().map(|e| e.data.as_str()).collect();
    assert!(caught_up.iter().all(|e| e.event != "reset"), "{data:?}");
    let from = |prefix: char, count: usize| -> (Vec<&str>, Vec<String>) {
        let got = data
            .iter()
            .copied()
            .filter(|d| d.starts_with(prefix))
            .collect();
        (got, (0..count).map(|i| format!("{prefix}{i}")).collect())
    };
    for (got, expected) in [from('d', 20), from('b', 5)] {
        assert_eq!(got, expected, "each server's publishes, whole and in order");
    }
    let rest = tokio::time::timeout(PATIENCE, on_direct.take(5))
        .await
        .unwrap();
    let ids = |events: &[Received]| events.iter().map(|e| e.id.clone()).collect::<Vec<_>>();
    assert_eq!(
        [ids(&during), ids(&rest)].concat(),
        ids(&caught_up),
        "one order"
    );
    eventually("the server behind the proxy to be back", || {
        let broker = behind.server.stats().broker.unwrap();
        broker.connected && broker.reconnects > 0 && broker.gaps == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_cut_off_from_redis_stalls_no_other_and_catches_up_when_healed() {
    a_failing_link_stalls_no_other_server(Fault::Cut).await;
}

/// A network that stops delivering without closing anything (a proxy that
/// holds every byte).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_whose_link_to_redis_stalls_stalls_no_other_and_catches_up() {
    a_failing_link_stalls_no_other_server(Fault::Stall).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_without_its_data_sends_a_reset_then_carries_on() {
    quiet_logs();
    let mut redis = Redis::start(false);
    let a = node(&redis.url(), 1000);
    settled(&[&a]).await;
    let mut events = get(a.addr, "/c", &[]).await.events();
    a.channel.publish(Event::data("before")).unwrap();
    let first = tokio::time::timeout(PATIENCE, events.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.data, "before");
    redis.restart();
    a.channel.publish(Event::data("after")).unwrap();
    let next = tokio::time::timeout(PATIENCE, events.take(2))
        .await
        .unwrap();
    assert_eq!(next[0].event, "reset", "the lost stream is told as a gap");
    assert_eq!(next[1].data, "after");
    assert_eq!(a.server.stats().broker.unwrap().gaps, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_beyond_the_queue_fail_clearly_while_redis_is_unreachable() {
    quiet_logs();
    let port = free_port();
    let server = server(Config {
        broker: Some(format!("redis://:hunter2@127.0.0.1:{port}/0")),
        broker_queue: 3,
        worker_threads: 1,
        drain_timeout: Duration::from_millis(300),
        ..Config::default()
    });
    let channel = server.channel("/c", ChannelOptions::default()).unwrap();
    server.start().unwrap();
    let pending = channel.publish_confirmed(Event::data("never stored"));
    let mut refused = None;
    for i in 0..100 {
        if let Err(err) = channel.publish(Event::data(i.to_string())) {
            refused = Some(err);
            break;
        }
    }
    let err = refused.expect("a full queue refuses");
    assert!(matches!(err, Error::BrokerUnavailable { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("unreachable") && !message.contains("hunter2"),
        "{message}"
    );
    assert_eq!(err.code(), "BROKER_UNAVAILABLE");
    eventually("the fault to show in stats", || {
        let broker = server.stats().broker.unwrap();
        broker.faults > 0 && !broker.connected && broker.queued >= 3
    })
    .await;
    // Stopping does not wait for Redis longer than the drain time, and
    // waiting confirmations learn that the server stopped.
    server.stop();
    let answer = tokio::time::timeout(PATIENCE, pending)
        .await
        .expect("answered at stop");
    assert!(matches!(answer, Err(Error::Stopped)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_added_while_running_is_read_at_once_and_is_no_fault() {
    quiet_logs();
    let redis = Redis::start(false);
    let (a, b) = settled_pair(&redis, 10).await;
    let late_a = a
        .server
        .channel("/late", ChannelOptions::default())
        .unwrap();
    let late_b = b
        .server
        .channel("/late", ChannelOptions::default())
        .unwrap();
    let mut events = get(b.addr, "/late", &[]).await.events();
    let id = confirmed(&late_a, Event::data("late"))
        .await
        .unwrap()
        .unwrap();
    let event = tokio::time::timeout(PATIENCE, events.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (event.id.as_str(), event.data.as_str()),
        (id.as_str(), "late")
    );
    assert_eq!(late_b.events_published(), 1);
    for node in [&a, &b] {
        let broker = node.server.stats().broker.unwrap();
        assert_eq!(
            (broker.faults, broker.reconnects),
            (0, 0),
            "a new channel is no fault"
        );
    }
}

fn cluster_count(node: &Node) -> Option<usize> {
    node.server.stats().channels[0].cluster_subscribers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_server_counts_the_subscribers_of_all() {
    quiet_logs();
    let redis = Redis::start(false);
    let a = node(&redis.url(), 10);
    let b = node(&redis.url(), 10);
    let on_a: Vec<_> = futures_util::future::join_all((0..2).map(|_| get(a.addr, "/c", &[]))).await;
    let mut on_b: Vec<_> =
        futures_util::future::join_all((0..3).map(|_| get(b.addr, "/c", &[]))).await;
    eventually("both servers to count 5", || {
        cluster_count(&a) == Some(5) && cluster_count(&b) == Some(5)
    })
    .await;
    assert_eq!(
        a.server.stats().channels[0].subscribers,
        2,
        "the local count stays local"
    );
    on_b.truncate(1);
    eventually("b's leavers to be counted out", || {
        cluster_count(&a) == Some(3)
    })
    .await;
    // A server that stops withdraws its count at once, not when it expires.
    b.server.stop();
    eventually("a stopped server to be counted out", || {
        cluster_count(&a) == Some(2)
    })
    .await;
    drop((on_a, on_b));
    let alone = self::server(Config::default());
    alone.channel("/c", ChannelOptions::default()).unwrap();
    assert_eq!(alone.stats().channels[0].cluster_subscribers, None);
}

#[test]
fn a_confirmation_waited_for_past_its_timeout_says_so() {
    let port = free_port();
    let server = server(Config {
        broker: Some(format!("redis://127.0.0.1:{port}/0")),
        worker_threads: 1,
        drain_timeout: Duration::from_millis(100),
        ..Config::default()
    });
    let channel = server.channel("/c", ChannelOptions::default()).unwrap();
    server.start().unwrap();
    let waited = channel
        .publish_confirmed(Event::data("x"))
        .wait(Some(Duration::from_millis(100)));
    assert!(matches!(waited, Err(Error::TimedOut)), "{waited:?}");
    assert_eq!(Error::TimedOut.code(), "TIMED_OUT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_joined_over_tls_share_one_order() {
    quiet_logs();
    let redis = Redis::start_tls();
    let over_tls = || {
        node_with(
            Config {
                broker: Some(redis.url()),
                broker_ca: Some(redis.ca()),
                ..Config::default()
            },
            ChannelOptions::default(),
        )
    };
    let (a, b) = (over_tls(), over_tls());
    settled(&[&a, &b]).await;
    let mut on_b = get(b.addr, "/c", &[]).await.events();
    let id = confirmed(&a.channel, Event::data("encrypted"))
        .await
        .unwrap()
        .unwrap();
    let event = tokio::time::timeout(PATIENCE, on_b.next())
        .await
        .expect("delivered in time")
        .expect("stream open");
    assert_eq!(
        (event.data.as_str(), event.id.as_str()),
        ("encrypted", id.as_str())
    );
    // The sender counts its reply after the reader may have confirmed.
    eventually("both publishes to be counted as sent", || {
        a.server.stats().broker.unwrap().sent == 2
    })
    .await;
    let broker = a.server.stats().broker.unwrap();
    assert!(broker.connected && broker.faults == 0, "{broker:?}");
    assert!(broker.url.starts_with("rediss://"), "{}", broker.url);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_broker_whose_certificate_another_ca_signed_is_refused() {
    quiet_logs();
    let redis = Redis::start_tls();
    let stranger = redis.dir.join("stranger-ca.pem");
    std::fs::write(&stranger, TestCa::new("not the signer").certificate.pem()).unwrap();
    let node = node_with(
        Config {
            broker: Some(redis.url()),
            broker_ca: Some(stranger),
            drain_timeout: Duration::from_millis(300),
            ..Config::default()
        },
        ChannelOptions::default(),
    );
    eventually("the refused certificate to show in stats", || {
        let broker = node.server.stats().broker.unwrap();
        !broker.connected
            && broker.faults > 0
            && broker
                .last_error
                .is_some_and(|error| error.to_lowercase().contains("certificate"))
    })
    .await;
    // Nothing is sent in the clear instead: the publish is never confirmed.
    let pending = node.channel.publish_confirmed(Event::data("kept back"));
    let waited = tokio::time::timeout(Duration::from_millis(300), pending).await;
    assert!(waited.is_err(), "{waited:?}");
    assert_eq!(node.server.stats().broker.unwrap().sent, 0);
}

#[test]
fn a_broker_ca_is_checked_when_the_server_is_made() {
    let dir = std::env::temp_dir().join(format!("tidings-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "no certificate here\n").unwrap();
    let cases = [
        (
            "redis://127.0.0.1/0",
            Some(empty.clone()),
            "rediss:// broker only",
        ),
        (
            "rediss://127.0.0.1/0",
            Some(dir.join("missing.pem")),
            "missing.pem",
        ),
        (
            "rediss://127.0.0.1/0",
            Some(empty),
            "holds no PEM certificate",
        ),
    ];
    for (url, ca, expected) in cases {
        let err = Server::new(Config {
            broker: Some(url.into()),
            broker_ca: ca,
            ..Config::default()
        })
        .unwrap_err();
        assert!(matches!(err, Error::InvalidConfig(_)), "{err}");
        assert!(err.to_string().contains(expected), "{url}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn broker_urls_are_checked_when_the_server_is_made() {
    for bad in ["http://127.0.0.1:6379", "127.0.0.1:6379", "redis://[::1"] {
        let err = Server::new(Config {
            broker: Some(bad.into()),
            ..Config::default()
        })
        .unwrap_err();
        assert!(matches!(err, Error::InvalidConfig(_)), "{bad}: {err}");
    }
    let err = Server::new(Config {
        broker_queue: 0,
        broker: Some("redis://127.0.0.1/0".into()),
        ..Config::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("broker_queue"), "{err}");
}

/// With a broker, the metrics route adds its series, and an event that
/// arrives from the broker is timed from its arrival.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_route_reports_the_broker() {
    quiet_logs();
    let redis = Redis::start(false);
    let with_metrics = || Config {
        broker: Some(redis.url()),
        metrics_path: Some("/metrics".into()),
        ..Config::default()
    };
    let a = node_with(with_metrics(), ChannelOptions::default());
    let b = node_with(with_metrics(), ChannelOptions::default());
    let mut on_b = get(b.addr, "/c", &[]).await.events();
    eventually("the subscriber counted across servers", || {
        cluster_count(&a) == Some(1)
    })
    .await;
    confirmed(&a.channel, Event::data("from a")).await.unwrap();
    assert_eq!(on_b.next().await.unwrap().data, "from a");
    // b has published nothing: its sending connection is made when idle.
    eventually("b's broker connections up", || {
        b.server
            .stats()
            .broker
            .is_some_and(|broker| broker.connected)
    })
    .await;

    let text = get(b.addr, "/metrics", &[]).await.text().await;
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
            .parse()
            .unwrap()
    };
    assert_eq!(value("tidings_broker_connected"), 1.0);
    assert_eq!(value("tidings_broker_received_total"), 1.0);
    assert_eq!(value("tidings_broker_sent_total"), 0.0);
    assert_eq!(
        value(r#"tidings_channel_cluster_subscribers{channel="/c"}"#),
        1.0
    );
    assert_eq!(value("tidings_delivery_latency_seconds_count"), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_update_published_on_one_server_reaches_every_servers_hub_subscribers() {
    use jsonwebtoken::{encode, EncodingKey, Header};
    use tidings::{HubConfig, JwtConfig, JwtKey};
    let redis = Redis::start(false);
    let key = b"the hub's publishers' key, 32 bytes and more".to_vec();
    let hub_node = || {
        node_with(
            Config {
                broker: Some(redis.url()),
                hub: Some(HubConfig {
                    publisher_jwt: Some(JwtConfig::mercure(JwtKey::Secret(key.clone()))),
                    ..HubConfig::default()
                }),
                ..Config::default()
            },
            ChannelOptions::default(),
        )
    };
    let (a, b) = (hub_node(), hub_node());
    settled(&[&a, &b]).await;
    let url = "/.well-known/mercure?topic=%2Fnews&topic=%2Fc";
    let mut on_b = get(b.addr, url, &[]).await.events();
    let token = encode(
        &Header::default(),
        &serde_json::json!({"mercure": {"publish": ["*"]}}),
        &EncodingKey::from_secret(&key),
    )
    .unwrap();
    let bearer = format!("Bearer {token}");
    let headers = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("authorization", bearer.as_str()),
    ];
    let hub = "/.well-known/mercure";
    for form in [
        "topic=%2Fnews&data=first&id=urn%3Aone",
        "topic=%2Fnews&data=private&private=on",
    ] {
        let response = request_with_body(a.addr, "POST", hub, &headers, form).await;
        assert_eq!(response.status, 200, "{form}");
    }
    // The host's channel on A is a topic on B too, once.
    a.channel.publish(Event::data("from the host")).unwrap();
    request_with_body(a.addr, "POST", hub, &headers, "topic=%2Fnews&data=last").await;
    let data: Vec<String> = on_b.take(3).await.into_iter().map(|e| e.data).collect();
    assert_eq!(data, ["first", "from the host", "last"]);
    // Resuming on B after A's first update.
    let resumed = get(b.addr, url, &[("last-event-id", "urn:one")]).await;
    assert_eq!(resumed.header("last-event-id"), Some("urn:one"));
    let data: Vec<String> = resumed
        .events()
        .take(2)
        .await
        .into_iter()
        .map(|e| e.data)
        .collect();
    assert_eq!(data, ["from the host", "last"]);
    a.server.stop();
    b.server.stop();
}
