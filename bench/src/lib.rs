//! Shared pieces of the benchmark binaries: the peers' command line, the
//! payload that carries its own send time, the publishing schedule, and
//! reading a process tree's CPU time and memory from /proc.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What every peer server is asked to do.
#[derive(Clone, Debug)]
pub struct PeerArgs {
    /// Port to listen on (0: any; the peer prints the one it got).
    pub port: u16,
    /// Start publishing once this many subscribers are connected.
    pub subscribers: usize,
    /// Events to publish, then idle until killed.
    pub events: usize,
    /// Events per second; 0 publishes as fast as possible.
    pub rate: f64,
    /// Bytes of data per event (at least the header with seq and time).
    pub size: usize,
    /// Broadcast (one shared stream) or a stream per connection.
    pub mode: Mode,
    /// Threads the server may use (1 when pinned to one core).
    pub threads: usize,
    /// Build every payload before the clock starts (`--payloads prebuilt`):
    /// publish cost alone; the send times they carry are then meaningless.
    pub prebuilt: bool,
    /// Peers that join a cluster only (see [`PeerArgs::parse_clustered`]):
    /// the broker's URL (`--broker`), so several peers act as one.
    pub broker: Option<String>,
    /// Peers that join a cluster only: share the port with other processes
    /// (`--reuse-port 1`), as workers do.
    pub reuse_port: bool,
    /// Peers that join a cluster only: `--publisher 0` serves the channel,
    /// made as on the publisher, and publishes nothing.
    pub publisher: bool,
    /// Peers that join a cluster only: serve HTTPS (and HTTP/2) with this
    /// PEM certificate chain (`--tls-cert`) and key (`--tls-key`).
    pub tls: Option<(String, String)>,
    /// Peers that join a cluster only: also run a Mercure hub (`--hub 1`),
    /// whose subscribers of the topic `/sse` get what is published.
    pub hub: bool,
}

/// What `GET /sse` serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One channel: every subscriber gets every published event.
    Broadcast,
    /// Each connection gets its own `events` events as fast as possible,
    /// then the response ends (the counter demo without its delay).
    Stream,
}

impl PeerArgs {
    /// Parses `--port --subscribers --events --rate --size --mode --threads
    /// --payloads`.
    pub fn parse() -> Self {
        Self::parse_options(false)
    }

    /// [`PeerArgs::parse`] for a peer that can join a cluster: it also takes
    /// `--broker URL`, `--reuse-port 0|1`, `--publisher 0|1`,
    /// `--tls-cert PEM --tls-key PEM` and `--hub 0|1`, and its
    /// `--subscribers` counts the cluster's.
    pub fn parse_clustered() -> Self {
        Self::parse_options(true)
    }

    fn parse_options(clustered: bool) -> Self {
        let mut args = PeerArgs {
            port: 0,
            subscribers: 1,
            events: 1000,
            rate: 0.0,
            size: 100,
            mode: Mode::Broadcast,
            threads: 1,
            prebuilt: false,
            broker: None,
            reuse_port: false,
            publisher: true,
            tls: None,
            hub: false,
        };
        let (mut cert, mut key) = (None, None);
        for (name, value) in option_pairs() {
            match name.as_str() {
                "--port" => args.port = parse_value(&name, &value),
                "--subscribers" => args.subscribers = parse_value(&name, &value),
                "--events" => args.events = parse_value(&name, &value),
                "--rate" => args.rate = parse_value(&name, &value),
                "--size" => args.size = parse_value(&name, &value),
                "--mode" => {
                    args.mode = match value.as_str() {
                        "broadcast" => Mode::Broadcast,
                        "stream" => Mode::Stream,
                        other => panic!("--mode {other}: expected broadcast or stream"),
                    }
                }
                "--threads" => args.threads = parse_value(&name, &value),
                "--payloads" => {
                    args.prebuilt = match value.as_str() {
                        "live" => false,
                        "prebuilt" => true,
                        other => panic!("--payloads {other}: expected live or prebuilt"),
                    }
                }
                "--broker" if clustered => args.broker = Some(value),
                "--reuse-port" if clustered => {
                    args.reuse_port = parse_value::<u8>(&name, &value) != 0
                }
                "--hub" if clustered => args.hub = parse_value::<u8>(&name, &value) != 0,
                "--publisher" if clustered => {
                    args.publisher = parse_value::<u8>(&name, &value) != 0
                }
                "--tls-cert" if clustered => cert = Some(value),
                "--tls-key" if clustered => key = Some(value),
                other => panic!("unknown argument {other}"),
            }
        }
        args.tls = match (cert, key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => panic!("--tls-cert and --tls-key go together"),
        };
        args
    }
}

/// The command line as `(--name, value)` pairs: every option of the bench
/// binaries takes a value.
pub fn option_pairs() -> Vec<(String, String)> {
    let given: Vec<String> = std::env::args().skip(1).collect();
    given
        .chunks(2)
        .map(|pair| (pair[0].clone(), pair.get(1).cloned().unwrap_or_default()))
        .collect()
}

/// An option's value, or a stop with a message naming the option.
pub fn parse_value<T: std::str::FromStr>(name: &str, value: &str) -> T {
    value
        .parse()
        .unwrap_or_else(|_| panic!("{name} {value:?}: not a valid value"))
}

/// Nanoseconds since the Unix epoch (the load generator runs on the same
/// machine, so the clocks agree).
pub fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos())
}

/// Event data: `<seq> <send time ns> <padding to size>`.
pub fn payload(seq: usize, size: usize) -> String {
    let mut data = format!("{seq} {}", now_ns());
    if data.len() + 1 < size {
        data.push(' ');
        data.extend(std::iter::repeat_n('x', size - data.len()));
    }
    data
}

/// Waits until `subscribers()` reaches the target (printing `subscribers
/// <N>`: the harness reads the servers' memory then), then calls
/// `publish(data)` with every event's payload on schedule; returns when all
/// were published, after printing `published <events> in <seconds>` (the
/// harness derives publish calls/s from it).
pub fn run_schedule(
    args: &PeerArgs,
    subscribers: impl Fn() -> usize,
    mut publish: impl FnMut(String),
) {
    let built: Vec<String> = if args.prebuilt {
        (0..args.events)
            .map(|seq| payload(seq, args.size))
            .collect()
    } else {
        Vec::new()
    };
    let mut prebuilt = built.into_iter();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let connected = subscribers();
        if connected >= args.subscribers {
            println!("subscribers {connected}");
            break;
        }
        assert!(Instant::now() < deadline, "subscribers never arrived");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Let the last connections settle before the clock starts.
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    for seq in 0..args.events {
        if args.rate > 0.0 {
            let due = start + Duration::from_secs_f64(seq as f64 / args.rate);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        publish(prebuilt.next().unwrap_or_else(|| payload(seq, args.size)));
    }
    println!(
        "published {} in {:.6}",
        args.events,
        start.elapsed().as_secs_f64()
    );
}

/// CPU time (user + system, ms) and resident memory (KiB) of a process and
/// all its descendants (nginx's workers, a Python peer's children).
pub fn process_usage(pid: u32) -> Option<(f64, f64)> {
    let mut total = own_usage(pid)?;
    for child in descendants(pid) {
        if let Some((cpu, rss)) = own_usage(child) {
            total.0 += cpu;
            total.1 += rss;
        }
    }
    Some(total)
}

fn own_usage(pid: u32) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    // Linux reports CPU time in clock ticks of 10 ms (USER_HZ = 100).
    Some((ticks * 10.0, rss))
}

/// Every process below `pid`, found through each process's parent in /proc.
fn descendants(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let child: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let parent = stat
                .rsplit(')')
                .next()?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some((child, parent))
        })
        .collect();
    let mut found = vec![pid];
    let mut next = 0;
    while next < found.len() {
        let parent = found[next];
        found.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        next += 1;
    }
    found.split_off(1)
}

/// Keeps a peer serving until the harness kills it.
pub fn idle_forever() -> ! {
    loop {
        std::thread::park();
    }
}
