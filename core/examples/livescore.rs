//! The livescore demo in Rust: one broadcast channel replaying a mock match.
//!
//! ```text
//! cargo run --release --example livescore -- [--host 127.0.0.1] [--port 8000] [--interval 2]
//! ```
//! Then open the printed URL. Goals are sent as `event: goal`, every other
//! update as an unnamed event; a client that reconnects resumes from history.

use std::path::PathBuf;
use std::time::Duration;

use tidings::{ChannelOptions, Config, Cors, Event, Server};

struct Args {
    host: String,
    port: u16,
    interval: Duration,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        host: "127.0.0.1".into(),
        port: 8000,
        interval: Duration::from_secs(2),
    };
    let mut given = std::env::args().skip(1);
    while let Some(flag) = given.next() {
        let mut value = || given.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--host" => args.host = value()?,
            "--port" => args.port = value()?.parse().map_err(|e| format!("--port: {e}"))?,
            "--interval" => {
                let seconds: f64 = value()?.parse().map_err(|e| format!("--interval: {e}"))?;
                args.interval =
                    Duration::try_from_secs_f64(seconds).map_err(|e| format!("--interval: {e}"))?;
            }
            "-h" | "--help" => {
                println!("usage: livescore [--host HOST] [--port PORT] [--interval SECONDS]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(args)
}

/// The mock match, each update in its wire form.
fn load_match(path: &PathBuf) -> Result<Vec<serde_json::Value>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let updates = load_match(&examples.join("data/match.json"))?;

    let server = Server::new(Config {
        host: args.host,
        port: args.port,
        cors: Cors::AnyOrigin,
        ..Config::default()
    })?;
    let scores = server.channel(
        "/livescore",
        ChannelOptions {
            history: 100,
            ..Default::default()
        },
    )?;
    server.page("/", examples.join("pages/livescore.html"))?;
    let addr = server.start()?;
    println!("livescore: open http://{addr}/ (Ctrl-C to stop)");

    let publisher = tokio::spawn(async move {
        for update in updates.iter().cycle() {
            let is_goal = update["event"]["type"] == "goal";
            let mut event = Event::data(update.to_string());
            if is_goal {
                event = event.event("goal")?;
            }
            scores.publish(event)?;
            tokio::time::sleep(args.interval).await;
        }
        Ok::<(), tidings::Error>(())
    });

    tokio::select! {
        _ = tokio::signal::ctrl_c() => println!("\nstopping"),
        outcome = publisher => outcome??,
    }
    server.stop();
    Ok(())
}
