//! In-process listeners (`Channel::listen`): the host reads a channel as a
//! subscriber does, with or without the server running.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use tidings::{ChannelOptions, Config, Event, Received};

fn frames(received: Received) -> String {
    match received {
        Received::Frames(bytes) => String::from_utf8(bytes.to_vec()).unwrap(),
        other => panic!("expected frames, got {other:?}"),
    }
}

#[test]
fn a_listener_is_woken_by_a_publish_and_reads_the_encoded_events() {
    let server = server(Config::default());
    let news = server.channel("/news", ChannelOptions::default()).unwrap();
    let wakes = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&wakes);
    let mut listener = news
        .listen(None, move || {
            counted.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    assert_eq!(news.subscribers(), 1);
    assert_eq!(listener.try_next(), Received::Pending);
    let id = news
        .publish(Event::data("one").event("tick").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(wakes.load(Ordering::SeqCst), 1);
    assert_eq!(
        frames(listener.try_next()),
        format!("event: tick\nid: {id}\ndata: one\n\n")
    );
    assert_eq!(listener.try_next(), Received::Pending);
    drop(listener);
    assert_eq!(news.subscribers(), 0);
}

#[test]
fn a_listener_resumes_after_an_id_and_an_unknown_one_gets_a_reset() {
    let server = server(Config::default());
    let news = server.channel("/news", ChannelOptions::default()).unwrap();
    let ids: Vec<String> = (0..3)
        .map(|n| {
            news.publish(Event::data(format!("e{n}")))
                .unwrap()
                .unwrap()
                .to_string()
        })
        .collect();
    let mut resumed = news.listen(Some(&ids[0]), || {}).unwrap();
    let missed = frames(resumed.try_next());
    assert!(
        missed.contains("data: e1\n") && missed.contains("data: e2\n"),
        "{missed}"
    );
    assert!(!missed.contains("data: e0\n"), "{missed}");

    let mut unknown = news.listen(Some("not-an-id"), || {}).unwrap();
    assert_eq!(frames(unknown.try_next()), "event: reset\ndata: reset\n\n");
    assert!(frames(unknown.try_next()).contains("data: e0\n"));
}

#[test]
fn a_full_channel_and_a_stopped_server_are_clear_errors() {
    let server = server(Config::default());
    let options = ChannelOptions {
        max_subscribers: Some(1),
        ..Default::default()
    };
    let small = server.channel("/small", options).unwrap();
    let mut first = small.listen(None, || {}).unwrap();
    let second = small.listen(None, || {});
    assert!(
        matches!(second, Err(tidings::Error::ChannelFull)),
        "{second:?}"
    );
    server.start().unwrap();
    server.stop();
    assert_eq!(first.try_next(), Received::Closed);
    assert!(matches!(
        small.listen(None, || {}),
        Err(tidings::Error::Stopped)
    ));
}

#[test]
fn a_listener_that_falls_behind_is_dropped() {
    let server = server(Config::default());
    let options = ChannelOptions {
        history: 0,
        max_lag: 4,
        ..Default::default()
    };
    let news = server.channel("/news", options).unwrap();
    let mut listener = news.listen(None, || {}).unwrap();
    for n in 0..10 {
        news.publish(Event::data(n.to_string())).unwrap();
    }
    assert_eq!(listener.try_next(), Received::TooSlow);
    assert_eq!(listener.try_next(), Received::Closed);
}

#[test]
fn an_unrouted_channel_is_listed_and_closed_with_the_server() {
    let server = server(Config::default());
    let hidden = server
        .unrouted_channel("/hidden", ChannelOptions::default())
        .unwrap();
    assert!(matches!(
        server.channel("/hidden", ChannelOptions::default()),
        Err(tidings::Error::RouteExists(_))
    ));
    let mut listener = hidden.listen(None, || {}).unwrap();
    hidden.publish(Event::data("x")).unwrap();
    assert!(frames(listener.try_next()).contains("data: x"));
    let stats = server.stats();
    assert!(stats
        .channels
        .iter()
        .any(|c| c.path == "/hidden" && c.subscribers == 1));
    server.start().unwrap();
    server.stop();
    assert_eq!(listener.try_next(), Received::Closed);
}
