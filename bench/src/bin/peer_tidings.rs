//! Peer: tidings itself, one broadcast channel at /sse on one engine thread.
use tidings_bench::{payload, run_schedule, PeerArgs};

fn main() {
    let args = PeerArgs::parse();
    let server = tidings::Server::new(tidings::Config {
        port: args.port,
        worker_threads: 1,
        keepalive: None,
        ..tidings::Config::default()
    })
    .expect("server");
    let channel = server
        .channel(
            "/sse",
            tidings::ChannelOptions {
                history: 0,
                // As deep as the other peers' queues: nobody is dropped for lag here.
                max_lag: args.events.max(1024),
                ..tidings::ChannelOptions::default()
            },
        )
        .expect("channel");
    let addr = server.start().expect("start");
    println!("port {}", addr.port());
    run_schedule(
        &args,
        || channel.subscribers(),
        |seq| {
            channel
                .publish(tidings::Event::data(payload(seq, args.size)))
                .expect("publish");
        },
    );
    std::thread::park();
}
