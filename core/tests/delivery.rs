//! Delivery: fan-out, resume, slow and vanished clients, presence, keep-alive,
//! and per-connection streams, all over real sockets.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use tidings::{ChannelOptions, Config, Error, Event, Request, StreamHandler, StreamSender};
use tokio::io::AsyncReadExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_1000_subscribers_each_get_1000_events_in_order() {
    const SUBSCRIBERS: usize = 1000;
    const EVENTS: usize = 1000;
    let server = server(Config::default());
    let channel = server.channel("/fan", ChannelOptions::default()).unwrap();
    let addr = server.start().unwrap();

    let mut readers = Vec::new();
    for _ in 0..SUBSCRIBERS {
        let events = get(addr, "/fan", &[]).await.events();
        readers.push(tokio::spawn(async move {
            let mut events = events;
            events.take(EVENTS).await
        }));
    }
    assert_eq!(channel.subscribers(), SUBSCRIBERS);
    let publisher = channel.clone();
    std::thread::spawn(move || {
        for n in 0..EVENTS {
            publisher.publish(Event::data(n.to_string())).unwrap();
        }
    })
    .join()
    .unwrap();

    for reader in readers {
        let received = reader.await.unwrap();
        let data: Vec<usize> = received.iter().map(|e| e.data.parse().unwrap()).collect();
        assert_eq!(data, (0..EVENTS).collect::<Vec<_>>());
    }
    let stats = server.stats();
    assert_eq!(stats.events_published, EVENTS as u64);
    assert!(stats.events_delivered >= (SUBSCRIBERS * EVENTS) as u64);
    server.stop();
}

#[tokio::test]
async fn events_published_right_after_the_head_are_never_missed() {
    let server = server(Config::default());
    let channel = server.channel("/c", ChannelOptions::default()).unwrap();
    let addr = server.start().unwrap();
    for round in 0..50 {
        let response = get(addr, "/c", &[]).await;
        // The head has arrived: the subscription must already exist.
        channel
            .publish(Event::data(format!("round {round}")))
            .unwrap();
        let mut events = response.events();
        assert_eq!(events.next().await.unwrap().data, format!("round {round}"));
    }
    server.stop();
}

/// A small deterministic generator, so failures reproduce.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_drop_and_resume_see_every_event_exactly_once() {
    const EVENTS: usize = 2000;
    const CLIENTS: u64 = 20;
    let server = server(Config::default());
    let channel = server
        .channel(
            "/live",
            ChannelOptions {
                history: EVENTS,
                ..ChannelOptions::default()
            },
        )
        .unwrap();
    let addr = server.start().unwrap();

    let mut clients = Vec::new();
    for seed in 1..=CLIENTS {
        clients.push(tokio::spawn(async move {
            let mut random = XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut seen = Vec::new();
            let mut last_id = String::new();
            let mut reconnects = 0;
            while seen.len() < EVENTS {
                let headers: Vec<(&str, &str)> = if last_id.is_empty() {
                    vec![]
                } else {
                    vec![("last-event-id", last_id.as_str())]
                };
                let mut events = get(addr, "/live", &headers).await.events();
                let quota = 1 + random.below(150) as usize;
                for _ in 0..quota.min(EVENTS - seen.len()) {
                    let event = events.next().await.expect("event");
                    assert_ne!(event.event, "reset", "history covers everything");
                    seen.push(event.data.parse::<usize>().unwrap());
                    last_id = event.id;
                }
                reconnects += 1;
            }
            (seen, reconnects)
        }));
    }
    // Every client's first connection is live before publishing starts;
    // after that, publish while clients come and go.
    eventually("all connected", || {
        channel.subscribers() == CLIENTS as usize
    })
    .await;
    let publisher = channel.clone();
    let publishing = tokio::task::spawn_blocking(move || {
        for n in 0..EVENTS {
            publisher.publish(Event::data(n.to_string())).unwrap();
            if n % 50 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    });
    for client in clients {
        let (seen, reconnects) = client.await.unwrap();
        assert_eq!(seen, (0..EVENTS).collect::<Vec<_>>());
        assert!(reconnects > 1);
    }
    publishing.await.unwrap();
    server.stop();
}

#[tokio::test]
async fn an_id_older_than_history_gets_reset_then_the_whole_history() {
    let server = server(Config::default());
    let channel = server
        .channel(
            "/c",
            ChannelOptions {
                history: 5,
                max_lag: 2,
                ..ChannelOptions::default()
            },
        )
        .unwrap();
    let addr = server.start().unwrap();
    let ids: Vec<String> = (0..20)
        .map(|n| {
            channel
                .publish(Event::data(n.to_string()))
                .unwrap()
                .unwrap()
                .to_string()
        })
        .collect();

    let mut events = get(addr, "/c", &[("last-event-id", &ids[3])])
        .await
        .events();
    // Published while the replay may still be on its way: within max_lag.
    channel.publish(Event::data("20")).unwrap();
    let newest = channel.publish(Event::data("21")).unwrap().unwrap();
    let reset = events.next().await.unwrap();
    assert_eq!(reset.event, "reset");
    let replay: Vec<String> = events.take(7).await.into_iter().map(|e| e.data).collect();
    assert_eq!(replay, ["15", "16", "17", "18", "19", "20", "21"]);

    // An id from another run of the server is unknown: same treatment.
    let mut events = get(addr, "/c?lastEventId=0-19", &[]).await.events();
    assert_eq!(events.next().await.unwrap().event, "reset");

    // The newest id resumes with nothing to replay and no reset.
    let mut events = get(addr, "/c", &[("last-event-id", newest.as_str())])
        .await
        .events();
    channel.publish(Event::data("live")).unwrap();
    assert_eq!(events.next().await.unwrap().data, "live");
    server.stop();
}

#[tokio::test]
async fn a_client_that_stops_reading_is_gone_within_the_write_timeout() {
    let server = server(Config {
        write_timeout: Duration::from_millis(300),
        ..Config::default()
    });
    // Lag never ends this subscriber: only the write timeout can.
    let options = ChannelOptions {
        history: 0,
        max_lag: 10_000,
        ..ChannelOptions::default()
    };
    let channel = server.channel("/c", options).unwrap();
    let addr = server.start().unwrap();
    let _stalled = stalled_client(addr, "/c").await;
    eventually("subscribed", || channel.subscribers() == 1).await;
    let chunk = "y".repeat(16 * 1024);
    // Fill every buffer between us and the client until the write stalls.
    for _ in 0..2000 {
        if channel.subscribers() == 0 {
            break;
        }
        channel.publish(Event::data(chunk.clone())).unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    eventually("stalled subscriber freed", || channel.subscribers() == 0).await;
    eventually("connection closed", || server.stats().connections_open == 0).await;
    assert!(server.stats().write_timeouts >= 1);
    server.stop();
}

#[tokio::test]
async fn a_subscriber_that_falls_off_the_ring_is_disconnected_and_counted() {
    let server = server(Config::default());
    let channel = server
        .channel(
            "/c",
            ChannelOptions {
                history: 0,
                max_lag: 16,
                auto_id: false,
                ..ChannelOptions::default()
            },
        )
        .unwrap();
    let addr = server.start().unwrap();
    let mut stream = stalled_client(addr, "/c").await;
    eventually("subscribed", || channel.subscribers() == 1).await;
    let chunk = "z".repeat(8 * 1024);
    for _ in 0..600 {
        channel.publish(Event::data(chunk.clone())).unwrap();
    }
    // Now read: the server's next look at the ring finds the cursor gone.
    let mut sink = vec![0u8; 64 * 1024];
    let drained = tokio::time::timeout(PATIENCE, async {
        while stream.read(&mut sink).await.is_ok_and(|n| n > 0) {}
    })
    .await;
    assert!(drained.is_ok(), "server kept a lagging subscriber");
    eventually("dropped", || channel.subscribers() == 0).await;
    assert_eq!(server.stats().slow_consumer_drops, 1);
    server.stop();
}

#[tokio::test]
async fn presence_hooks_fire_once_per_connection_even_on_abrupt_loss() {
    let server = server(Config::default());
    let channel = server.channel("/c", ChannelOptions::default()).unwrap();
    let joined = Arc::new(Mutex::new(Vec::new()));
    let left = Arc::new(AtomicUsize::new(0));
    let record = Arc::clone(&joined);
    channel.on_subscribe(move |request: &Request| {
        record
            .lock()
            .unwrap()
            .push(request.query("who").unwrap_or_default());
    });
    let count = Arc::clone(&left);
    channel.on_unsubscribe(move |_request: &Request| {
        count.fetch_add(1, Ordering::SeqCst);
    });
    let addr = server.start().unwrap();

    let mut polite = Vec::new();
    for n in 0..5 {
        polite.push(get(addr, &format!("/c?who=polite{n}"), &[]).await);
    }
    let mut abrupt = Vec::new();
    for n in 0..5 {
        let stream = stalled_client(addr, &format!("/c?who=abrupt{n}")).await;
        abrupt.push(stream);
    }
    eventually("all joined", || channel.subscribers() == 10).await;
    assert_eq!(joined.lock().unwrap().len(), 10);
    drop(polite);
    for stream in abrupt {
        // RST instead of FIN: the connection is lost, not closed.
        let std = stream.into_std().unwrap();
        socket2::SockRef::from(&std)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(std);
    }
    eventually("all left", || left.load(Ordering::SeqCst) == 10).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        left.load(Ordering::SeqCst),
        10,
        "an unsubscribe hook fired twice"
    );
    assert_eq!(channel.subscribers(), 0);
    server.stop();
}

#[tokio::test]
async fn a_panicking_presence_hook_leaks_neither_the_subscriber_nor_its_count() {
    let server = server(Config::default());
    let channel = server.channel("/c", ChannelOptions::default()).unwrap();
    channel.on_subscribe(|_request: &Request| panic!("host bug in on_subscribe"));
    channel.on_unsubscribe(|_request: &Request| panic!("host bug in on_unsubscribe"));
    let addr = server.start().unwrap();
    for round in 0..3 {
        let response = get(addr, "/c", &[]).await;
        assert_eq!(response.status, 200);
        assert_eq!(channel.subscribers(), 1);
        channel
            .publish(Event::data(format!("round {round}")))
            .unwrap();
        let mut events = response.events();
        assert_eq!(events.next().await.unwrap().data, format!("round {round}"));
        drop(events);
        eventually("the subscriber is gone", || channel.subscribers() == 0).await;
        eventually("its stream is closed", || server.stats().streams_open == 0).await;
    }
    server.stop();
}

#[tokio::test]
async fn idle_streams_get_keepalive_comments() {
    let server = server(Config {
        keepalive: Some(Duration::from_millis(100)),
        ..Config::default()
    });
    server.channel("/c", ChannelOptions::default()).unwrap();
    let addr = server.start().unwrap();
    let mut raw = get(addr, "/c", &[]).await.raw();
    let seen = raw.read_until(":\n\n:\n\n").await;
    assert_eq!(seen, ":\n\n:\n\n");
    server.stop();
}

#[tokio::test]
async fn a_channels_keepalive_overrides_the_servers_and_zero_turns_it_off() {
    let server = server(Config {
        keepalive: Some(Duration::from_millis(100)),
        ..Config::default()
    });
    let with_keepalive = |keepalive| ChannelOptions {
        keepalive,
        auto_id: false,
        ..ChannelOptions::default()
    };
    let slow = server
        .channel("/slow", with_keepalive(Some(Duration::from_secs(3600))))
        .unwrap();
    let off = server
        .channel("/off", with_keepalive(Some(Duration::ZERO)))
        .unwrap();
    server
        .channel("/fast", with_keepalive(Some(Duration::from_millis(50))))
        .unwrap();
    let addr = server.start().unwrap();
    let mut slow_stream = get(addr, "/slow", &[]).await.raw();
    let mut off_stream = get(addr, "/off", &[]).await.raw();
    let mut fast_stream = get(addr, "/fast", &[]).await.raw();
    // Several of the server's (and far more of /fast's) periods pass...
    assert_eq!(
        fast_stream.read_until(":\n\n:\n\n:\n\n:\n\n").await.len(),
        12
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    // ...while the other two stay silent: their first bytes are this event.
    for (channel, stream) in [(&slow, &mut slow_stream), (&off, &mut off_stream)] {
        channel.publish(Event::data("first")).unwrap();
        assert_eq!(
            stream.read_until("data: first\n\n").await,
            "data: first\n\n"
        );
    }
    server.stop();
}

fn counter_event(n: u32) -> Event {
    Event::data(format!("Counter value {n}"))
        .event("new_message")
        .and_then(|e| e.id("message_id"))
        .map(|e| e.retry(Duration::from_millis(15000)))
        .unwrap()
}

#[tokio::test]
async fn the_counter_stream_sends_its_exact_sequence_and_ends() {
    let server = server(Config::default());
    server
        .stream("/stream", |_request, tx: StreamSender| async move {
            for n in 1..=20 {
                tx.send(counter_event(n)).await?;
            }
            let end = Event::data("End of the stream")
                .event("end_event")?
                .id("message_id")?
                .retry(Duration::from_millis(15000));
            tx.send(end).await?;
            Ok::<(), Error>(())
        })
        .unwrap();
    let addr = server.start().unwrap();
    let response = get(addr, "/stream", &[]).await;
    assert_eq!(
        response.header("content-type"),
        Some("text/event-stream; charset=utf-8")
    );
    let events = response.events().collect().await;
    assert_eq!(events.len(), 21);
    for (n, event) in events[..20].iter().enumerate() {
        assert_eq!(event.event, "new_message");
        assert_eq!(event.data, format!("Counter value {}", n + 1));
        assert_eq!(event.id, "message_id");
        assert_eq!(event.retry, Some(Duration::from_millis(15000)));
    }
    assert_eq!(
        (events[20].event.as_str(), events[20].data.as_str()),
        ("end_event", "End of the stream")
    );
    server.stop();
}

/// Sets its flag when dropped: proves a producer future was cancelled.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_stream_producer_is_cancelled_when_its_client_leaves() {
    let server = server(Config::default());
    let cancelled = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&cancelled);
    server
        .stream("/forever", move |_request, tx: StreamSender| {
            let guard = DropFlag(Arc::clone(&flag));
            async move {
                let _guard = guard;
                for n in 0.. {
                    tx.send(Event::data(n.to_string())).await?;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Ok::<(), Error>(())
            }
        })
        .unwrap();
    let addr = server.start().unwrap();
    let mut events = get(addr, "/forever", &[]).await.events();
    assert_eq!(events.take(3).await.len(), 3);
    assert!(!cancelled.load(Ordering::SeqCst));
    drop(events);
    eventually("producer cancelled", || cancelled.load(Ordering::SeqCst)).await;
    eventually("stream released", || server.stats().streams_open == 0).await;
    server.stop();
}

#[tokio::test]
async fn a_failing_producer_ends_with_an_error_event_and_others_go_on() {
    let server = server(Config::default());
    server
        .stream("/fails", |_request, tx: StreamSender| async move {
            tx.send(Event::data("one")).await?;
            Err::<(), Error>(Error::InvalidConfig("producer blew up".into()))
        })
        .unwrap();
    server
        .stream("/panics", |_request, tx: StreamSender| async move {
            tx.send(Event::data("one")).await?;
            if tx.is_closed() {
                return Ok::<(), Error>(());
            }
            panic!("producer panicked");
        })
        .unwrap();
    let addr = server.start().unwrap();
    for path in ["/fails", "/panics"] {
        let events = get(addr, path, &[]).await.events().collect().await;
        let kinds: Vec<(&str, &str)> = events
            .iter()
            .map(|e| (e.event.as_str(), e.data.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [("message", "one"), ("error", "stream failed")],
            "{path}"
        );
    }
    let events = get(addr, "/fails", &[]).await.events().collect().await;
    assert_eq!(events.len(), 2, "the server keeps serving");
    server.stop();
}

struct PanickingHandler;

impl StreamHandler for PanickingHandler {
    fn open(&self, _request: Request, _stream: StreamSender) {
        panic!("host handler bug");
    }
}

#[tokio::test]
async fn a_panicking_handler_costs_its_client_a_500_only() {
    let server = server(Config::default());
    server.stream_handler("/bad", PanickingHandler).unwrap();
    server.channel("/ok", ChannelOptions::default()).unwrap();
    let addr = server.start().unwrap();
    assert_eq!(get(addr, "/bad", &[]).await.status, 500);
    assert_eq!(get(addr, "/ok", &[]).await.status, 200);
    server.stop();
}

/// What the handler saw of each request: query, Last-Event-ID, x-client.
type SeenRequests = Arc<Mutex<Vec<(String, Option<String>, Option<String>)>>>;

/// A host-style handler: produces from a plain thread with blocking sends,
/// the way the C binding does.
struct ThreadHandler {
    closes: Arc<AtomicUsize>,
    requests: SeenRequests,
}

impl StreamHandler for ThreadHandler {
    fn open(&self, request: Request, stream: StreamSender) {
        self.requests.lock().unwrap().push((
            request.query_string().to_owned(),
            request.last_event_id().map(str::to_owned),
            request.header("x-client").map(str::to_owned),
        ));
        let closes = Arc::clone(&self.closes);
        stream.on_close(move || {
            closes.fetch_add(1, Ordering::SeqCst);
        });
        let limit: usize = request.query("n").and_then(|n| n.parse().ok()).unwrap_or(0);
        std::thread::spawn(move || {
            for n in 0..limit {
                if stream.blocking_send(Event::data(n.to_string())).is_err() {
                    return;
                }
            }
        });
    }
}

#[tokio::test]
async fn a_thread_driven_handler_gets_the_request_and_one_close_callback() {
    let server = server(Config {
        stream_queue: 4,
        ..Config::default()
    });
    let closes = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(Mutex::new(Vec::new()));
    server
        .stream_handler(
            "/t",
            ThreadHandler {
                closes: Arc::clone(&closes),
                requests: Arc::clone(&requests),
            },
        )
        .unwrap();
    let addr = server.start().unwrap();

    let events = get(
        addr,
        "/t?n=500",
        &[("last-event-id", "41"), ("x-client", "c")],
    )
    .await
    .events()
    .collect()
    .await;
    let data: Vec<usize> = events.iter().map(|e| e.data.parse().unwrap()).collect();
    assert_eq!(
        data,
        (0..500).collect::<Vec<_>>(),
        "a small queue applies backpressure, loses nothing"
    );
    eventually("closed once", || closes.load(Ordering::SeqCst) == 1).await;
    assert_eq!(
        requests.lock().unwrap()[0],
        (
            "n=500".to_owned(),
            Some("41".to_owned()),
            Some("c".to_owned())
        )
    );

    // A client that leaves mid-stream: the producer's next send fails, and
    // the close callback runs exactly once.
    let mut events = get(addr, "/t?n=1000000", &[]).await.events();
    events.take(10).await;
    drop(events);
    eventually("closed twice", || closes.load(Ordering::SeqCst) == 2).await;
    eventually("stream released", || server.stats().streams_open == 0).await;
    server.stop();
}

/// A server whose `/s` accepts each stream and hands its sender to the test.
fn server_keeping_stream_senders() -> (tidings::Server, Arc<Mutex<Option<StreamSender>>>) {
    let server = server(Config::default());
    let captured = Arc::new(Mutex::new(None));
    struct Capture(Arc<Mutex<Option<StreamSender>>>);
    impl StreamHandler for Capture {
        fn open(&self, _request: Request, stream: StreamSender) {
            stream.accept();
            *self.0.lock().unwrap() = Some(stream);
        }
    }
    server
        .stream_handler("/s", Capture(Arc::clone(&captured)))
        .unwrap();
    (server, captured)
}

#[test]
fn blocking_send_inside_a_runtime_is_an_error_not_a_stall() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (server, captured) = server_keeping_stream_senders();
    let addr = server.start().unwrap();
    runtime.block_on(async {
        let _response = get(addr, "/s", &[]).await;
        let sender = captured.lock().unwrap().take().unwrap();
        assert!(matches!(
            sender.blocking_send(Event::data("x")),
            Err(Error::BlockingInAsync)
        ));
        assert!(sender.try_send(Event::data("x")).is_ok());
    });
    server.stop();
}

#[test]
fn blocking_send_works_on_blocking_threads_and_multi_thread_workers() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (server, captured) = server_keeping_stream_senders();
    let addr = server.start().unwrap();
    runtime.block_on(async {
        let mut events = get(addr, "/s", &[]).await.events();
        let sender = captured.lock().unwrap().take().unwrap();
        let on_blocking_thread = sender.clone();
        tokio::task::spawn_blocking(move || {
            on_blocking_thread.blocking_send(Event::data("from spawn_blocking"))
        })
        .await
        .unwrap()
        .expect("blocking_send on a spawn_blocking thread");
        let on_worker = sender.clone();
        tokio::spawn(async move { on_worker.blocking_send(Event::data("from a worker")) })
            .await
            .unwrap()
            .expect("blocking_send on a multi-thread worker");
        let data: Vec<String> = events.take(2).await.into_iter().map(|e| e.data).collect();
        assert_eq!(data, ["from spawn_blocking", "from a worker"]);
    });
    server.stop();
}

#[tokio::test]
async fn a_handler_decides_the_head_reject_accept_or_nothing() {
    let server = server(Config::default());
    server
        .stream_handler("/progress", |request: Request, stream: StreamSender| {
            let Some(id) = request
                .query("session_id")
                .and_then(|id| id.parse::<u32>().ok())
            else {
                stream
                    .reject(400, "session_id must be an integer\n")
                    .unwrap();
                return;
            };
            stream
                .try_send(Event::data(format!("session {id}")))
                .unwrap();
            let err = stream.reject(400, "too late").unwrap_err();
            assert!(matches!(err, Error::AlreadyAccepted), "{err}");
        })
        .unwrap();
    server
        .stream_handler("/nothing", |_request: Request, stream: StreamSender| {
            drop(stream)
        })
        .unwrap();
    server
        .stream_handler("/bad-status", |_request: Request, stream: StreamSender| {
            assert!(matches!(
                stream.clone().reject(200, "no"),
                Err(Error::InvalidStatus(200))
            ));
            stream.accept();
        })
        .unwrap();
    let addr = server.start().unwrap();

    let rejected = get(addr, "/progress?session_id=abc", &[]).await;
    assert_eq!(rejected.status, 400);
    assert_eq!(
        rejected.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(rejected.text().await, "session_id must be an integer\n");

    let events = get(addr, "/progress?session_id=7", &[])
        .await
        .events()
        .collect()
        .await;
    assert_eq!(events[0].data, "session 7");

    let nothing = get(addr, "/nothing", &[]).await;
    assert_eq!(nothing.status, 204);
    assert_eq!(get(addr, "/bad-status", &[]).await.status, 200);
    server.stop();
}

#[tokio::test]
async fn when_ready_signals_room_in_a_full_queue() {
    let server = server(Config {
        stream_queue: 1,
        ..Config::default()
    });
    let captured = Arc::new(Mutex::new(None));
    let slot = Arc::clone(&captured);
    server
        .stream_handler("/s", move |_request: Request, stream: StreamSender| {
            stream.accept();
            *slot.lock().unwrap() = Some(stream);
        })
        .unwrap();
    let addr = server.start().unwrap();
    let response = get(addr, "/s", &[]).await;
    let sender = captured.lock().unwrap().take().unwrap();
    // Fill the queue and whatever the connection already took from it.
    let mut sent = 0;
    while sender.try_send(Event::data(sent.to_string())).is_ok() {
        sent += 1;
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(sent < 100_000, "the queue never filled");
    }
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    sender.when_ready(move |has_room| {
        let _ = ready_tx.send(has_room);
    });
    let mut events = response.events();
    events.take(1).await;
    assert!(tokio::time::timeout(PATIENCE, ready_rx)
        .await
        .unwrap()
        .unwrap());
    assert!(sender.try_send(Event::data("after")).is_ok());

    // Once the client is gone, the callback says so.
    drop(events);
    eventually("client gone", || sender.is_closed()).await;
    let (gone_tx, gone_rx) = tokio::sync::oneshot::channel();
    sender.when_ready(move |has_room| {
        let _ = gone_tx.send(has_room);
    });
    assert!(!tokio::time::timeout(PATIENCE, gone_rx)
        .await
        .unwrap()
        .unwrap());
    server.stop();
}

#[tokio::test]
async fn closing_one_clone_of_a_stream_ends_it_for_all_and_later_sends_fail() {
    let server = server(Config::default());
    let captured = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&captured);
    server
        .stream_handler("/s", move |_request: Request, stream: StreamSender| {
            // An invalid status is an error that leaves the stream usable.
            assert!(matches!(
                stream.reject(200, "no"),
                Err(Error::InvalidStatus(200))
            ));
            stream.try_send(Event::data("one")).unwrap();
            let other = stream.clone();
            keep.lock().unwrap().push(other);
            stream.close();
            assert!(matches!(
                stream.try_send(Event::data("late")),
                Err(Error::Disconnected)
            ));
        })
        .unwrap();
    let addr = server.start().unwrap();
    // Another clone is still held, yet the stream ends after what was queued.
    let events = get(addr, "/s", &[]).await.events().collect().await;
    assert_eq!(
        events.iter().map(|e| e.data.as_str()).collect::<Vec<_>>(),
        ["one"]
    );
    let held = captured.lock().unwrap().pop().unwrap();
    assert!(held.is_closed());
    assert!(matches!(
        held.try_send(Event::data("x")),
        Err(Error::Disconnected)
    ));
    held.close();
    server.stop();
}

#[tokio::test]
async fn a_reply_answers_once_and_an_invalid_status_leaves_it_unanswered() {
    let server = server(Config::default());
    server
        .route("/once", |_request: Request, reply: tidings::Reply| {
            assert!(matches!(
                reply.send(99, "text/plain", "x"),
                Err(Error::InvalidStatus(99))
            ));
            reply.send(201, "text/plain", "first").unwrap();
            assert!(matches!(
                reply.send(200, "text/plain", "second"),
                Err(Error::AlreadyAnswered)
            ));
        })
        .unwrap();
    let addr = server.start().unwrap();
    let response = get(addr, "/once", &[]).await;
    assert_eq!(response.status, 201);
    assert_eq!(response.text().await, "first");
    server.stop();
}

#[tokio::test]
async fn route_handlers_reply_from_any_thread() {
    let server = server(Config::default());
    let visits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&visits);
    server
        .route("/page", move |request: Request, reply: tidings::Reply| {
            let visit = counter.fetch_add(1, Ordering::SeqCst) + 1;
            let name = request.query("name").unwrap_or_default();
            std::thread::spawn(move || {
                reply
                    .send(
                        200,
                        "text/html; charset=utf-8",
                        format!("<p>{name} #{visit}</p>"),
                    )
                    .unwrap();
            });
        })
        .unwrap();
    server
        .route("/silent", |_request: Request, reply: tidings::Reply| {
            drop(reply)
        })
        .unwrap();
    server
        .route("/invalid", |_request: Request, reply: tidings::Reply| {
            assert!(matches!(
                reply.send(99, "text/plain", "x"),
                Err(Error::InvalidStatus(99))
            ));
        })
        .unwrap();
    let addr = server.start().unwrap();

    let page = get(addr, "/page?name=ada", &[]).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.text().await, "<p>ada #1</p>");
    assert_eq!(get(addr, "/page", &[]).await.text().await, "<p> #2</p>");
    let head = request(addr, "HEAD", "/page", &[]).await;
    assert_eq!(head.header("content-length"), Some("10"), "<p> #3</p>");
    assert_eq!(get(addr, "/silent", &[]).await.status, 500);
    assert_eq!(get(addr, "/invalid", &[]).await.status, 500);
    server.stop();
}
