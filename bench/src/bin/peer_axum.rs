//! Peer: what a Rust developer writes in an afternoon: axum's Sse response
//! over a tokio broadcast channel, one task per connection, each event
//! encoded per subscriber. Stream mode: an `Sse` over a per-connection
//! stream of generated events.
use std::convert::Infallible;
use std::sync::Arc;

use axum::response::sse::{Event, Sse};
use axum::routing::get;
use axum::Router;
use futures_util::stream::{self, Stream, StreamExt};
use tidings_bench::{idle_forever, payload, run_schedule, Mode, PeerArgs};
use tokio::sync::broadcast;

fn main() {
    let args = PeerArgs::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .expect("runtime");
    let (sender, _) = broadcast::channel::<Arc<str>>(args.events.max(1024));
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(("127.0.0.1", args.port)))
        .expect("bind");
    println!("port {}", listener.local_addr().expect("addr").port());
    let (events, size) = (args.events, args.size);
    let subscribe = sender.clone();
    let app =
        match args.mode {
            Mode::Stream => Router::new().route(
                "/sse",
                get(move || async move {
                    Sse::new(stream::iter(0..events).map(move |seq| {
                        Ok::<_, Infallible>(Event::default().data(payload(seq, size)))
                    }))
                }),
            ),
            Mode::Broadcast => Router::new().route(
                "/sse",
                get(move || {
                    let receiver = subscribe.subscribe();
                    async move { Sse::new(broadcast_events(receiver)) }
                }),
            ),
        };
    runtime.spawn(async move { axum::serve(listener, app).await.expect("serve") });
    if args.mode == Mode::Stream {
        idle_forever()
    }
    run_schedule(
        &args,
        || sender.receiver_count(),
        |data| {
            let _ = sender.send(Arc::from(data));
        },
    );
    idle_forever()
}

fn broadcast_events(
    receiver: broadcast::Receiver<Arc<str>>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(receiver, |mut receiver| async move {
        loop {
            match receiver.recv().await {
                Ok(data) => return Some((Ok(Event::default().data(&*data)), receiver)),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}
