//! Peer: tidings itself. Broadcast: one channel at /sse. Stream: a producer
//! per connection at /sse (the counter demo without its delay).
use tidings_bench::{idle_forever, payload, run_schedule, Mode, PeerArgs};

fn main() {
    let args = PeerArgs::parse();
    let server = tidings::Server::new(tidings::Config {
        port: args.port,
        worker_threads: args.threads,
        keepalive: None,
        ..tidings::Config::default()
    })
    .expect("server");
    if args.mode == Mode::Stream {
        let (events, size) = (args.events, args.size);
        server
            .stream(
                "/sse",
                move |_request, sender: tidings::StreamSender| async move {
                    for seq in 0..events {
                        sender
                            .send(tidings::Event::data(payload(seq, size)))
                            .await?;
                    }
                    Ok::<(), tidings::Error>(())
                },
            )
            .expect("stream");
        let addr = server.start().expect("start");
        println!("port {}", addr.port());
        idle_forever()
    }
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
        |data| {
            channel
                .publish(tidings::Event::data(data))
                .expect("publish");
        },
    );
    idle_forever()
}
