//! Peer: what a Rust developer writes in an afternoon: axum's Sse response
//! over a tokio broadcast channel, one task per connection, each event
//! encoded per subscriber.
use std::convert::Infallible;
use std::sync::Arc;

use axum::response::sse::{Event, Sse};
use axum::routing::get;
use axum::Router;
use futures_util::stream::{self, Stream};
use tidings_bench::{payload, run_schedule, PeerArgs};
use tokio::sync::broadcast;

fn main() {
    let args = PeerArgs::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (sender, _) = broadcast::channel::<Arc<str>>(args.events.max(1024));
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(("127.0.0.1", args.port)))
        .expect("bind");
    println!("port {}", listener.local_addr().expect("addr").port());
    let subscribe = sender.clone();
    let app = Router::new().route(
        "/sse",
        get(move || {
            let receiver = subscribe.subscribe();
            async move { Sse::new(events(receiver)) }
        }),
    );
    runtime.spawn(async move { axum::serve(listener, app).await.expect("serve") });
    run_schedule(
        &args,
        || sender.receiver_count(),
        |seq| {
            let _ = sender.send(Arc::from(payload(seq, args.size)));
        },
    );
    std::thread::park();
}

fn events(
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
