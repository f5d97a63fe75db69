//! Shared pieces of the benchmark binaries: the peers' command line, the
//! payload that carries its own send time, the publishing schedule, and
//! reading a process's CPU time and memory from /proc.

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
}

impl PeerArgs {
    /// Parses `--port --subscribers --events --rate --size`.
    pub fn parse() -> Self {
        let mut args = PeerArgs {
            port: 0,
            subscribers: 1,
            events: 1000,
            rate: 0.0,
            size: 100,
        };
        let given: Vec<String> = std::env::args().skip(1).collect();
        for pair in given.chunks(2) {
            let value = pair.get(1).map(String::as_str).unwrap_or_default();
            match pair[0].as_str() {
                "--port" => args.port = value.parse().expect("--port"),
                "--subscribers" => args.subscribers = value.parse().expect("--subscribers"),
                "--events" => args.events = value.parse().expect("--events"),
                "--rate" => args.rate = value.parse().expect("--rate"),
                "--size" => args.size = value.parse().expect("--size"),
                other => panic!("unknown argument {other}"),
            }
        }
        args
    }
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

/// Waits until `subscribers()` reaches the target, then calls `publish(seq)`
/// for every event on schedule; returns when all were published.
pub fn run_schedule(
    args: &PeerArgs,
    subscribers: impl Fn() -> usize,
    mut publish: impl FnMut(usize),
) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while subscribers() < args.subscribers {
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
        publish(seq);
    }
}

/// A process's CPU time (user + system, ms) and resident memory (KiB).
pub fn process_usage(pid: u32) -> Option<(f64, f64)> {
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
