//! The load generator: opens N SSE connections to a peer, reads them all on
//! one thread, checks each stream's sequence (gaps), measures publish-to-
//! receive latency from the send time in each event's data, and samples the
//! server's CPU time and memory from /proc. Prints one JSON object.
//!
//! loadgen --port P --pid PID --connections N --events E [--timeout S] [--hold S]

use std::time::{Duration, Instant};

use serde_json::json;
use tidings_bench::{now_ns, process_usage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Args {
    port: u16,
    pid: u32,
    connections: usize,
    events: usize,
    timeout: Duration,
    hold: Duration,
}

fn parse() -> Args {
    let mut args = Args {
        port: 0,
        pid: 0,
        connections: 1,
        events: 0,
        timeout: Duration::from_secs(60),
        hold: Duration::from_secs(2),
    };
    let given: Vec<String> = std::env::args().skip(1).collect();
    for pair in given.chunks(2) {
        let value = pair.get(1).map(String::as_str).unwrap_or_default();
        match pair[0].as_str() {
            "--port" => args.port = value.parse().expect("--port"),
            "--pid" => args.pid = value.parse().expect("--pid"),
            "--connections" => args.connections = value.parse().expect("--connections"),
            "--events" => args.events = value.parse().expect("--events"),
            "--timeout" => {
                args.timeout = Duration::from_secs_f64(value.parse().expect("--timeout"))
            }
            "--hold" => args.hold = Duration::from_secs_f64(value.parse().expect("--hold")),
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

/// What one connection saw.
#[derive(Default)]
struct Seen {
    received: usize,
    gaps: usize,
    bytes: usize,
    latencies_us: Vec<u32>,
    first: Option<Instant>,
    last: Option<Instant>,
}

async fn read_stream(
    mut stream: tokio::net::TcpStream,
    events: usize,
    deadline: tokio::time::Instant,
) -> Seen {
    let mut seen = Seen::default();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut carry: Vec<u8> = Vec::new();
    let mut next_seq = 0usize;
    while seen.received < events {
        let read = tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await;
        let Ok(Ok(n)) = read else { break };
        if n == 0 {
            break;
        }
        let now = now_ns();
        seen.bytes += n;
        carry.extend_from_slice(&buffer[..n]);
        let mut consumed = 0;
        while let Some(end) = carry[consumed..].iter().position(|&b| b == b'\n') {
            let line = &carry[consumed..consumed + end];
            consumed += end + 1;
            let Some(data) = line.strip_prefix(b"data: ") else {
                continue;
            };
            let mut fields = data.split(|&b| b == b' ');
            let seq: usize = parse_number(fields.next());
            let sent: u128 = parse_number(fields.next());
            if seq != next_seq {
                seen.gaps += seq.saturating_sub(next_seq);
            }
            next_seq = seq + 1;
            seen.received += 1;
            let instant = Instant::now();
            seen.first.get_or_insert(instant);
            seen.last = Some(instant);
            seen.latencies_us
                .push(u32::try_from(now.saturating_sub(sent) / 1000).unwrap_or(u32::MAX));
        }
        carry.drain(..consumed);
    }
    seen
}

fn parse_number<T: std::str::FromStr + Default>(field: Option<&[u8]>) -> T {
    field
        .and_then(|f| std::str::from_utf8(f).ok())
        .and_then(|f| f.parse().ok())
        .unwrap_or_default()
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    f64::from(sorted[rank.min(sorted.len() - 1)]) / 1000.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = parse();
    let before = process_usage(args.pid);
    let own_before = process_usage(std::process::id());
    let mut streams = Vec::with_capacity(args.connections);
    let mut connect_errors = 0;
    for _ in 0..args.connections {
        match tokio::net::TcpStream::connect(("127.0.0.1", args.port)).await {
            Ok(mut stream) => {
                if stream
                    .write_all(b"GET /sse HTTP/1.1\r\nhost: bench\r\n\r\n")
                    .await
                    .is_ok()
                {
                    streams.push(stream);
                } else {
                    connect_errors += 1;
                }
            }
            Err(_) => connect_errors += 1,
        }
    }
    let connected = streams.len();
    if args.events == 0 {
        // Idle: hold the connections and report the server's memory.
        tokio::time::sleep(args.hold).await;
        let after = process_usage(args.pid);
        let rss_per_connection = match (before, after) {
            (Some((_, b)), Some((_, a))) if connected > 0 => (a - b) / connected as f64,
            _ => 0.0,
        };
        println!(
            "{}",
            json!({
                "connections": args.connections, "connected": connected, "connect_errors": connect_errors,
                "server_rss_kib_before": before.map(|u| u.1), "server_rss_kib_after": after.map(|u| u.1),
                "rss_kib_per_connection": rss_per_connection,
            })
        );
        return;
    }
    let deadline = tokio::time::Instant::now() + args.timeout;
    let tasks: Vec<_> = streams
        .into_iter()
        .map(|stream| tokio::spawn(read_stream(stream, args.events, deadline)))
        .collect();
    let mut latencies = Vec::new();
    let (mut received, mut gaps, mut bytes, mut complete) = (0, 0, 0, 0);
    let (mut first, mut last) = (None::<Instant>, None::<Instant>);
    for task in tasks {
        let seen = task.await.expect("reader");
        received += seen.received;
        gaps += seen.gaps;
        bytes += seen.bytes;
        complete += usize::from(seen.received == args.events);
        latencies.extend_from_slice(&seen.latencies_us);
        if let Some(f) = seen.first {
            first = Some(first.map_or(f, |x| x.min(f)));
        }
        if let Some(l) = seen.last {
            last = Some(last.map_or(l, |x| x.max(l)));
        }
    }
    let after = process_usage(args.pid);
    let own_after = process_usage(std::process::id());
    latencies.sort_unstable();
    let seconds = match (first, last) {
        (Some(f), Some(l)) => (l - f).as_secs_f64().max(1e-9),
        _ => 0.0,
    };
    let cpu = |b: Option<(f64, f64)>, a: Option<(f64, f64)>| match (b, a) {
        (Some((b, _)), Some((a, _))) => a - b,
        _ => 0.0,
    };
    let server_cpu_ms = cpu(before, after);
    println!(
        "{}",
        json!({
            "connections": args.connections, "connected": connected, "connect_errors": connect_errors,
            "complete_streams": complete, "events_expected": args.events * connected,
            "events_received": received, "gaps": gaps, "bytes": bytes,
            "seconds": seconds, "deliveries_per_s": if seconds > 0.0 { received as f64 / seconds } else { 0.0 },
            "latency_ms": {
                "p50": percentile(&latencies, 50.0), "p99": percentile(&latencies, 99.0),
                "p999": percentile(&latencies, 99.9), "max": percentile(&latencies, 100.0),
            },
            "server_cpu_ms": server_cpu_ms,
            "server_cpu_us_per_delivery": if received > 0 { server_cpu_ms * 1000.0 / received as f64 } else { 0.0 },
            "server_rss_kib": after.map(|u| u.1),
            "loadgen_cpu_ms": cpu(own_before, own_after),
        })
    );
}
