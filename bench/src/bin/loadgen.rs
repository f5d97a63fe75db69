//! The load generator: opens N SSE connections to a peer, reads them all on
//! one thread, checks each stream's sequence (gaps), measures publish-to-
//! receive latency from the send time in each event's data, and samples the
//! server's CPU time and memory from /proc. Prints one JSON object.
//!
//! loadgen --port P[,P...] --pid PID[,PID...] --connections N --events E
//!         [--timeout S] [--hold S] [--sources K] [--source-offset O]
//!         [--window W] [--ramp R]
//!         [--transport h1|tls|h2 --tls-ca PEM [--streams-per-connection S]]
//!         [--path PATH] [--quiet Q --quiet-path PATH]
//!
//! Each subscribes with `GET PATH` (default `/sse`; a query may follow, as
//! a Mercure hub's `?topic=`). `--quiet Q` first opens Q more subscribers to
//! `--quiet-path` (its `{n}` replaced by each one's number), which are only
//! held: subscribers of topics nobody publishes to, beside the measured ones.
//!
//! With several ports (the nodes of a cluster), connection n goes to the
//! n-th port in turn; with several pids, the servers' CPU time and memory
//! are their sum.
//!
//! A connection counts once the server answered its request with a 200
//! head; at most `--window` connections wait for that at once (so a server
//! with a short accept backlog is not flooded), started at most `--ramp`
//! per second (0: no limit). Each then reads its stream on its own task.
//! With `--events 0` it only holds the connections and reports the server's
//! memory per connection. Past ~28k connections one source address runs out
//! of ephemeral ports, so `--sources K` spreads them over 127.0.0.1 ..= .K
//! (shifted by `--source-offset`, so that load generators running side by
//! side take different addresses).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use serde_json::json;
use tidings_bench::{now_ns, option_pairs, parse_value, process_usage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Args {
    ports: Vec<u16>,
    pids: Vec<u32>,
    connections: usize,
    events: usize,
    timeout: Duration,
    hold: Duration,
    sources: u8,
    source_offset: u8,
    window: usize,
    ramp: f64,
    transport: Transport,
    tls_ca: Option<PathBuf>,
    streams_per_connection: usize,
    path: String,
    quiet: usize,
    quiet_path: String,
}

/// How subscribers reach the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    /// HTTP/1.1 over plain TCP, a connection each.
    H1,
    /// HTTP/1.1 over TLS, a connection each.
    Tls,
    /// HTTP/2 over TLS, many streams per connection.
    H2,
}

fn parse() -> Args {
    let mut args = Args {
        ports: Vec::new(),
        pids: Vec::new(),
        connections: 1,
        events: 0,
        timeout: Duration::from_secs(60),
        hold: Duration::from_secs(2),
        sources: 1,
        source_offset: 0,
        window: 256,
        ramp: 0.0,
        transport: Transport::H1,
        tls_ca: None,
        streams_per_connection: 100,
        path: "/sse".to_owned(),
        quiet: 0,
        quiet_path: "/sse".to_owned(),
    };
    for (name, value) in option_pairs() {
        let seconds = |value: &str| Duration::from_secs_f64(parse_value(&name, value));
        match name.as_str() {
            "--port" => args.ports = list(&name, &value),
            "--pid" => args.pids = list(&name, &value),
            "--connections" => args.connections = parse_value(&name, &value),
            "--events" => args.events = parse_value(&name, &value),
            "--timeout" => args.timeout = seconds(&value),
            "--hold" => args.hold = seconds(&value),
            "--sources" => args.sources = parse_value(&name, &value),
            "--source-offset" => args.source_offset = parse_value(&name, &value),
            "--window" => args.window = parse_value(&name, &value),
            "--ramp" => args.ramp = parse_value(&name, &value),
            "--transport" => {
                args.transport = match value.as_str() {
                    "h1" => Transport::H1,
                    "tls" => Transport::Tls,
                    "h2" => Transport::H2,
                    other => panic!("--transport {other}: expected h1, tls or h2"),
                }
            }
            "--tls-ca" => args.tls_ca = Some(PathBuf::from(value)),
            "--streams-per-connection" => args.streams_per_connection = parse_value(&name, &value),
            "--path" => args.path = value,
            "--quiet" => args.quiet = parse_value(&name, &value),
            "--quiet-path" => args.quiet_path = value,
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(!args.ports.is_empty(), "--port is required");
    assert!(
        args.transport == Transport::H1 || args.tls_ca.is_some(),
        "--transport tls and h2 need --tls-ca"
    );
    assert!(
        args.streams_per_connection > 0,
        "--streams-per-connection must be positive"
    );
    let last_source = u16::from(args.source_offset) + u16::from(args.sources.max(1));
    assert!(
        last_source < 255,
        "--sources and --source-offset go past 127.0.0.254"
    );
    args
}

/// A comma-separated list of values.
fn list<T: std::str::FromStr>(name: &str, value: &str) -> Vec<T> {
    value
        .split(',')
        .map(|item| parse_value(name, item))
        .collect()
}

/// CPU time (ms) and memory (KiB) of every server process, summed.
fn servers_usage(pids: &[u32]) -> Option<(f64, f64)> {
    pids.iter().try_fold((0.0, 0.0), |(cpu, rss), &pid| {
        let (c, r) = process_usage(pid)?;
        Some((cpu + c, rss + r))
    })
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

/// One subscriber's event stream, whatever carries it.
enum Source {
    Tcp(tokio::net::TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>),
    H2(H2Body),
}

/// An HTTP/2 response body read as a byte stream.
struct H2Body {
    body: h2::RecvStream,
    pending: Bytes,
}

impl Source {
    /// Reads into `buffer`; 0 at the end of the stream.
    async fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Source::Tcp(stream) => stream.read(buffer).await,
            Source::Tls(stream) => stream.read(buffer).await,
            Source::H2(h2) => {
                if h2.pending.is_empty() {
                    match h2.body.data().await {
                        Some(Ok(data)) => {
                            // Hand the window back at once, as a browser does.
                            let _ = h2.body.flow_control().release_capacity(data.len());
                            h2.pending = data;
                        }
                        Some(Err(err)) => return Err(std::io::Error::other(err)),
                        None => return Ok(0),
                    }
                }
                let n = h2.pending.len().min(buffer.len());
                buffer[..n].copy_from_slice(&h2.pending[..n]);
                h2.pending = h2.pending.slice(n..);
                Ok(n)
            }
        }
    }
}

/// Reads `events` events (or until the deadline or the end of the stream);
/// `carry` holds what arrived after the response head. Parses in place: a
/// read appends after the unparsed tail, which moves to the front only when
/// the buffer runs out of room.
async fn read_stream(
    mut stream: Source,
    carry: Vec<u8>,
    events: usize,
    buffer_size: usize,
    deadline: tokio::time::Instant,
) -> Seen {
    let mut seen = Seen {
        latencies_us: Vec::with_capacity(events),
        // What came with the head counts too (a server may send the head
        // and its first events in one write).
        bytes: carry.len(),
        ..Seen::default()
    };
    let mut buffer = vec![0u8; buffer_size.max(carry.len() * 2)];
    buffer[..carry.len()].copy_from_slice(&carry);
    let (mut start, mut end) = (0, carry.len());
    let mut next_seq = 0usize;
    let mut now = now_ns();
    loop {
        // Every complete line in buffer[start..end].
        while let Some(at) = memchr::memchr(b'\n', &buffer[start..end]) {
            let line = &buffer[start..start + at];
            start += at + 1;
            let Some(data) = line.strip_prefix(b"data: ") else {
                continue;
            };
            let mut fields = data.split(|&b| b == b' ');
            let seq: usize = parse_number(fields.next());
            let sent: u128 = parse_number(fields.next());
            seen.gaps += seq.saturating_sub(next_seq);
            next_seq = seq + 1;
            seen.received += 1;
            seen.latencies_us
                .push(u32::try_from(now.saturating_sub(sent) / 1000).unwrap_or(u32::MAX));
        }
        if seen.received >= events {
            break;
        }
        if end == buffer.len() {
            buffer.copy_within(start..end, 0);
            (start, end) = (0, end - start);
            if end == buffer.len() {
                break; // a line longer than the buffer: not an event of ours
            }
        }
        let read = tokio::time::timeout_at(deadline, stream.read(&mut buffer[end..])).await;
        let Ok(Ok(n)) = read else { break };
        if n == 0 {
            break;
        }
        now = now_ns();
        let instant = Instant::now();
        seen.first.get_or_insert(instant);
        seen.last = Some(instant);
        seen.bytes += n;
        end += n;
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

/// A TCP connection from `source` to the server's `port`.
async fn connect(source: Ipv4Addr, port: u16) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    defer_port_choice(&socket)?;
    socket.bind(SocketAddr::from((source, 0)))?;
    let stream = socket
        .connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await?;
    // Close with a reset rather than a FIN: no TIME_WAIT left on this side,
    // whose ephemeral ports the next run needs (10k connections per run).
    stream.set_zero_linger()?;
    Ok(stream)
}

/// A TLS client trusting only the CA in `ca`, offering `alpn`.
fn tls_connector(ca: &std::path::Path, alpn: &[u8]) -> tokio_rustls::TlsConnector {
    use rustls::pki_types::pem::PemObject;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).expect("--tls-ca readable") {
        roots
            .add(cert.expect("--tls-ca holds certificates"))
            .expect("a CA certificate");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// Connects from `source` (over TLS with `tls`), sends the request and
/// reads the response head. `Ok(Some(..))`: answered 200, with the bytes
/// that followed the head.
async fn open(
    source: Ipv4Addr,
    port: u16,
    tls: Option<&tokio_rustls::TlsConnector>,
    path: &str,
) -> std::io::Result<Option<(Source, Vec<u8>)>> {
    let tcp = connect(source, port).await?;
    let mut stream = match tls {
        None => Source::Tcp(tcp),
        Some(connector) => {
            let name = rustls::pki_types::ServerName::from(std::net::IpAddr::from([127, 0, 0, 1]));
            Source::Tls(Box::new(connector.connect(name, tcp).await?))
        }
    };
    // As EventSource sends it (nchan answers 403 without it).
    let request =
        format!("GET {path} HTTP/1.1\r\nhost: bench\r\naccept: text/event-stream\r\n\r\n");
    let request = request.as_bytes();
    match &mut stream {
        Source::Tcp(tcp) => tcp.write_all(request).await?,
        Source::Tls(tls) => {
            tls.write_all(request).await?;
            tls.flush().await?;
        }
        Source::H2(_) => unreachable!("HTTP/2 streams are opened by open_h2"),
    }
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    loop {
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = head.split_off(end + 4);
            return Ok(head.starts_with(b"HTTP/1.1 200").then_some((stream, rest)));
        }
        match stream.read(&mut buffer).await? {
            0 => return Ok(None),
            n => head.extend_from_slice(&buffer[..n]),
        }
    }
}

/// Opens `--quiet` plain HTTP/1.1 subscribers to `--quiet-path` (with
/// `{n}` numbered) from 127.0.0.250, to hold until the end; panics if one
/// is refused, since the scenario would then measure something else.
async fn hold_quiet(args: &Args) -> Vec<Source> {
    let source = Ipv4Addr::new(127, 0, 0, 250);
    let mut held = Vec::with_capacity(args.quiet);
    for n in 0..args.quiet {
        let path = args.quiet_path.replace("{n}", &n.to_string());
        let port = args.ports[n % args.ports.len()];
        match open(source, port, None, &path).await {
            Ok(Some((stream, _))) => held.push(stream),
            Ok(None) => panic!("quiet subscriber {n} was refused"),
            Err(err) => panic!("quiet subscriber {n}: {err}"),
        }
    }
    held
}

/// One HTTP/2 connection from `source` carrying `streams` subscriptions:
/// each answered one, as its body, or `None` for a refused one. The
/// connection's driver runs until every body is dropped.
async fn open_h2(
    source: Ipv4Addr,
    port: u16,
    connector: &tokio_rustls::TlsConnector,
    streams: usize,
    path: &str,
) -> std::io::Result<Vec<Option<Source>>> {
    let tcp = connect(source, port).await?;
    let name = rustls::pki_types::ServerName::from(std::net::IpAddr::from([127, 0, 0, 1]));
    let tls = connector.connect(name, tcp).await?;
    let (client, connection) = h2::client::Builder::new()
        .initial_window_size(1 << 20)
        .initial_connection_window_size(16 << 20)
        .handshake::<_, Bytes>(tls)
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut answers = Vec::with_capacity(streams);
    for _ in 0..streams {
        let mut sender = client
            .clone()
            .ready()
            .await
            .map_err(std::io::Error::other)?;
        let request = http::Request::get(format!("https://127.0.0.1:{port}{path}"))
            .header("accept", "text/event-stream")
            .body(())
            .expect("request");
        let (response, _) = sender
            .send_request(request, true)
            .map_err(std::io::Error::other)?;
        answers.push(response);
    }
    let mut opened = Vec::with_capacity(streams);
    for response in answers {
        let response = response.await.map_err(std::io::Error::other)?;
        opened.push((response.status() == 200).then(|| {
            Source::H2(H2Body {
                body: response.into_body(),
                pending: Bytes::new(),
            })
        }));
    }
    Ok(opened)
}

/// Has the kernel pick the socket's port at `connect`, not at `bind`
/// (`IP_BIND_ADDRESS_NO_PORT`): a port chosen at bind time must be free on
/// every address, a search that grows with every socket already bound
/// (opening 16k connections took 27 s), while one chosen at connect time
/// need only make the address pair unique.
fn defer_port_choice(socket: &tokio::net::TcpSocket) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: a valid socket descriptor, and a pointer to a c_int that
    // outlives the call, with its size.
    let done = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            std::ptr::addr_of!(on).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if done == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// How one subscription went.
enum Outcome {
    Failed,
    Refused,
    Held(Source),
    Read(Seen),
}

/// Lets this process hold as many sockets as the test needs.
fn raise_fd_limit(wanted: usize) {
    let wanted = wanted as libc::rlim_t;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain libc calls on a stack value.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < wanted {
            limit.rlim_cur = wanted.min(limit.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = parse();
    raise_fd_limit(args.connections + args.quiet + 64);
    // From an address of their own: the measured ones keep their ports.
    let quiet = hold_quiet(&args).await;
    let before = servers_usage(&args.pids);
    let own_before = process_usage(std::process::id());
    let deadline = tokio::time::Instant::now() + args.timeout;
    // Large reads count many events per syscall; bound the total buffer memory.
    let buffer_size = ((256 << 20) / args.connections.max(1)).clamp(4 << 10, 64 << 10);
    let window = Arc::new(tokio::sync::Semaphore::new(args.window.max(1)));
    let connector = args
        .tls_ca
        .as_deref()
        .filter(|_| args.transport != Transport::H1)
        .map(|ca| {
            let alpn: &[u8] = if args.transport == Transport::H2 {
                b"h2"
            } else {
                b"http/1.1"
            };
            Arc::new(tls_connector(ca, alpn))
        });
    let path: Arc<str> = Arc::from(args.path.as_str());
    // Subscriptions per TCP connection, and so the connections to open.
    let per_connection = if args.transport == Transport::H2 {
        args.streams_per_connection
    } else {
        1
    };
    let connections = args.connections.div_ceil(per_connection);
    let connecting = Instant::now();
    let mut tasks = Vec::with_capacity(connections);
    for n in 0..connections {
        if args.ramp > 0.0 {
            tokio::time::sleep_until(
                (connecting + Duration::from_secs_f64(n as f64 / args.ramp)).into(),
            )
            .await;
        }
        let Ok(Ok(permit)) =
            tokio::time::timeout_at(deadline, Arc::clone(&window).acquire_owned()).await
        else {
            break;
        };
        let source = Ipv4Addr::new(
            127,
            0,
            0,
            1 + args.source_offset + (n % usize::from(args.sources.max(1))) as u8,
        );
        let (port, events) = (args.ports[n % args.ports.len()], args.events);
        let streams = per_connection.min(args.connections - n * per_connection);
        let (connector, transport) = (connector.clone(), args.transport);
        let path = Arc::clone(&path);
        tasks.push(tokio::spawn(async move {
            let sources: Vec<Option<Source>> = if transport == Transport::H2 {
                let connector = connector.as_deref().expect("a connector for h2");
                let opened = tokio::time::timeout_at(
                    deadline,
                    open_h2(source, port, connector, streams, &path),
                )
                .await;
                drop(permit);
                match opened {
                    Ok(Ok(sources)) => sources,
                    Ok(Err(_)) | Err(_) => return (0..streams).map(|_| Outcome::Failed).collect(),
                }
            } else {
                let opened = tokio::time::timeout_at(
                    deadline,
                    open(source, port, connector.as_deref(), &path),
                )
                .await;
                drop(permit);
                match opened {
                    Ok(Ok(Some((stream, _)))) if events == 0 => {
                        return vec![Outcome::Held(stream)];
                    }
                    Ok(Ok(Some((stream, rest)))) => {
                        let seen = read_stream(stream, rest, events, buffer_size, deadline).await;
                        return vec![Outcome::Read(seen)];
                    }
                    Ok(Ok(None)) => return vec![Outcome::Refused],
                    Ok(Err(_)) | Err(_) => return vec![Outcome::Failed],
                }
            };
            // HTTP/2: every stream of the connection is read at once.
            let readers: Vec<_> = sources
                .into_iter()
                .map(|source| {
                    tokio::spawn(async move {
                        match source {
                            None => Outcome::Refused,
                            Some(stream) if events == 0 => Outcome::Held(stream),
                            Some(stream) => Outcome::Read(
                                read_stream(stream, Vec::new(), events, buffer_size, deadline)
                                    .await,
                            ),
                        }
                    })
                })
                .collect();
            let mut outcomes = Vec::with_capacity(readers.len());
            for reader in readers {
                outcomes.push(reader.await.unwrap_or(Outcome::Failed));
            }
            outcomes
        }));
    }
    // Wait until every connection was answered (or failed) before the clock.
    let _ = tokio::time::timeout_at(deadline, window.acquire_many(args.window.max(1) as u32)).await;
    let connect_seconds = connecting.elapsed().as_secs_f64();
    let (mut held, mut seens, mut refused, mut failed) = (Vec::new(), Vec::new(), 0, 0);
    for task in tasks {
        for outcome in task.await.expect("connection task") {
            match outcome {
                Outcome::Failed => failed += 1,
                Outcome::Refused => refused += 1,
                Outcome::Held(stream) => held.push(stream),
                Outcome::Read(seen) => seens.push(seen),
            }
        }
    }
    let answered = held.len() + seens.len();
    if args.events == 0 {
        // Idle: hold the answered connections, then report the server's memory.
        tokio::time::sleep(args.hold).await;
        let after = servers_usage(&args.pids);
        let rss_per_connection = match (before, after) {
            (Some((_, b)), Some((_, a))) if answered > 0 => (a - b) / answered as f64,
            _ => 0.0,
        };
        println!(
            "{}",
            json!({
                "connections": args.connections, "answered": answered, "refused": refused,
                "connect_errors": failed, "connect_seconds": connect_seconds, "quiet_held": quiet.len(),
                "server_rss_kib_before": before.map(|u| u.1), "server_rss_kib_after": after.map(|u| u.1),
                "rss_kib_per_connection": rss_per_connection,
            })
        );
        return;
    }
    let mut latencies = Vec::new();
    let (mut received, mut gaps, mut bytes, mut complete) = (0, 0, 0, 0);
    let (mut first, mut last) = (None::<Instant>, None::<Instant>);
    for seen in seens {
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
    let after = servers_usage(&args.pids);
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
            "connections": args.connections, "answered": answered, "refused": refused,
            "connect_errors": failed, "connect_seconds": connect_seconds, "complete_streams": complete,
            "quiet_held": quiet.len(),
            "events_expected": args.events * args.connections,
            "events_received": received, "gaps": gaps, "bytes": bytes,
            "seconds": seconds, "deliveries_per_s": if seconds > 0.0 { received as f64 / seconds } else { 0.0 },
            "latency_ms": {
                "p50": percentile(&latencies, 50.0), "p99": percentile(&latencies, 99.0),
                "p999": percentile(&latencies, 99.9), "max": percentile(&latencies, 100.0),
            },
            // For the latency CDF plots: (percentile, ms) pairs.
            "latency_quantiles_ms": (0..=100).map(f64::from).chain([99.5, 99.9, 99.99])
                .map(|p| [p, percentile(&latencies, p)]).collect::<Vec<_>>(),
            "server_cpu_ms": server_cpu_ms,
            "server_cpu_us_per_delivery": if received > 0 { server_cpu_ms * 1000.0 / received as f64 } else { 0.0 },
            "server_rss_kib": after.map(|u| u.1),
            "loadgen_cpu_ms": cpu(own_before, own_after),
        })
    );
}
