//! Peer: tidings itself. Broadcast: one channel at /sse. Stream: a producer
//! per connection at /sse (the counter demo without its delay).
//!
//! It also joins a cluster: `--broker redis://…` shares the channel with
//! every peer given the same broker (the subscriber gate then counts the
//! cluster's subscribers), `--reuse-port 1` shares the port, as workers do,
//! and `--publisher 0` only serves. `--tls-cert`/`--tls-key` serve HTTPS,
//! HTTP/1.1 and HTTP/2 (ALPN). `--hub 1` also runs a Mercure hub: its
//! subscribers of the topic `/sse` (the channel's) get every event too, and
//! the subscriber gate counts them with the channel's.
use tidings_bench::{idle_forever, payload, run_schedule, Mode, PeerArgs};

fn main() {
    let args = PeerArgs::parse_clustered();
    let server = tidings::Server::new(tidings::Config {
        port: args.port,
        worker_threads: args.threads,
        keepalive: None,
        reuse_port: args.reuse_port,
        broker: args.broker.clone(),
        // A burst is queued whole while the broker takes it.
        broker_queue: args.events.max(10_000),
        tls_cert: args.tls.as_ref().map(|(cert, _)| cert.into()),
        tls_key: args.tls.as_ref().map(|(_, key)| key.into()),
        hub: args.hub.then(|| tidings::HubConfig {
            history: 0,
            max_lag: args.events.max(1024),
            ..tidings::HubConfig::default()
        }),
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
    if !args.publisher {
        idle_forever()
    }
    let clustered = args.broker.is_some();
    run_schedule(
        &args,
        || {
            if !clustered && !args.hub {
                return channel.subscribers();
            }
            let stats = server.stats();
            if args.hub {
                return stats.channels.iter().map(|c| c.subscribers).sum();
            }
            let sse = stats.channels.iter().find(|c| c.path == "/sse");
            sse.and_then(|c| c.cluster_subscribers).unwrap_or(0)
        },
        |data| {
            channel
                .publish(tidings::Event::data(data))
                .expect("publish");
        },
    );
    idle_forever()
}
