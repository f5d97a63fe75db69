//! One server of a cluster: a channel at `/c` joined with every other server
//! on the same Redis, and a route that publishes to it. Start several, on
//! any ports, subscribe to any of them and publish on any: every subscriber
//! gets every event, in one order, and resumes on any server.
//!
//! ```text
//! cargo run --release --example cluster_node -- redis://127.0.0.1:6379/0 [--port 0]
//! curl -N http://127.0.0.1:PORT/c                              # subscribe
//! curl 'http://127.0.0.1:PORT/publish?name=hello&count=3'      # publish hello:0..2
//! curl http://127.0.0.1:PORT/broker                            # the broker link's state
//! ```
//! Ctrl-C stops it (what it queued for Redis is flushed first).

use tidings::{ChannelOptions, Config, Event, Reply, Request, Server};

/// The most events one `/publish` request may ask for.
const MAX_COUNT: usize = 100_000;

fn parse_args() -> Result<(String, u16), String> {
    let mut given = std::env::args().skip(1);
    let broker = given
        .next()
        .ok_or("usage: cluster_node REDIS_URL [--port PORT]")?;
    let mut port = 0;
    while let Some(flag) = given.next() {
        match flag.as_str() {
            "--port" => {
                let value = given.next().ok_or("--port needs a value")?;
                port = value.parse().map_err(|e| format!("--port {value}: {e}"))?;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok((broker, port))
}

/// `GET /publish?name=N&count=K` publishes `N:0` … `N:K-1` from this server.
fn publish(channel: &tidings::Channel, request: &Request) -> Result<String, String> {
    let name = request.query("name").ok_or("name is missing")?;
    let count: usize = request
        .query("count")
        .ok_or("count is missing")?
        .parse()
        .map_err(|e| format!("count: {e}"))?;
    if count > MAX_COUNT {
        return Err(format!("count: at most {MAX_COUNT}"));
    }
    for i in 0..count {
        channel
            .publish(Event::data(format!("{name}:{i}")))
            .map_err(|e| e.to_string())?;
    }
    Ok("ok".to_owned())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (broker, port) = parse_args()?;
    let server = Server::new(Config {
        port,
        broker: Some(broker),
        ..Config::default()
    })?;
    let channel = server.channel(
        "/c",
        ChannelOptions {
            history: 1000,
            ..ChannelOptions::default()
        },
    )?;
    server.route("/publish", {
        let channel = channel.clone();
        move |request: Request, reply: Reply| {
            let _ = match publish(&channel, &request) {
                Ok(text) => reply.send(200, "text/plain", text),
                Err(why) => reply.send(400, "text/plain", why),
            };
        }
    })?;
    let server = std::sync::Arc::new(server);
    server.route("/broker", {
        let server = std::sync::Arc::downgrade(&server);
        move |_request: Request, reply: Reply| {
            let Some(broker) = server.upgrade().and_then(|s| s.stats().broker) else {
                let _ = reply.send(503, "text/plain", "stopping");
                return;
            };
            let state = serde_json::json!({
                "url": broker.url, "connected": broker.connected, "faults": broker.faults,
                "reconnects": broker.reconnects, "queued": broker.queued, "sent": broker.sent,
                "received": broker.received, "gaps": broker.gaps, "last_error": broker.last_error,
            });
            let _ = reply.send(200, "application/json", state.to_string());
        }
    })?;
    let addr = server.start()?;
    println!("cluster_node: open http://{addr}/");
    tokio::signal::ctrl_c().await?;
    server.stop();
    Ok(())
}
