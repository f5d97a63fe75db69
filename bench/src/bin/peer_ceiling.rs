//! Peer: the ceiling. The smallest encode-once server: read the request
//! head, answer, then one writer thread writes everything published since its
//! last round to every socket in turn, one write per socket per round. No
//! routing, limits or per-connection task: the bound a real engine is
//! measured against.
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use tidings_bench::{idle_forever, run_schedule, Mode, PeerArgs};

const HEAD: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\r\n";

#[derive(Default)]
struct Shared {
    /// Encoded events not yet written, and sockets not yet in the writer's list.
    pending: Mutex<(Vec<u8>, Vec<TcpStream>)>,
    wake: Condvar,
    connected: AtomicUsize,
}

fn main() {
    let args = PeerArgs::parse();
    assert!(
        args.mode == Mode::Broadcast,
        "the ceiling serves broadcast only"
    );
    let listener = TcpListener::bind(("127.0.0.1", args.port)).expect("bind");
    println!("port {}", listener.local_addr().expect("addr").port());
    let shared = Arc::new(Shared::default());

    let acceptor = Arc::clone(&shared);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            if let Some(stream) = answer(stream) {
                acceptor.pending.lock().expect("pending").1.push(stream);
                acceptor.connected.fetch_add(1, Ordering::Relaxed);
                acceptor.wake.notify_one();
            }
        }
    });

    let writer = Arc::clone(&shared);
    std::thread::spawn(move || {
        let mut sockets: Vec<TcpStream> = Vec::new();
        loop {
            let batch = {
                let mut pending = writer.pending.lock().expect("pending");
                while pending.0.is_empty() && pending.1.is_empty() {
                    pending = writer.wake.wait(pending).expect("pending");
                }
                sockets.append(&mut pending.1);
                std::mem::take(&mut pending.0)
            };
            if !batch.is_empty() {
                // Blocking writes: fine for a bound measured with fast readers.
                sockets.retain_mut(|socket| socket.write_all(&batch).is_ok());
            }
        }
    });

    run_schedule(
        &args,
        || shared.connected.load(Ordering::Relaxed),
        |data| {
            let event = format!("data: {data}\n\n");
            shared
                .pending
                .lock()
                .expect("pending")
                .0
                .extend_from_slice(event.as_bytes());
            shared.wake.notify_one();
        },
    );
    idle_forever()
}

fn answer(mut stream: TcpStream) -> Option<TcpStream> {
    let _ = stream.set_nodelay(true);
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) => return None,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return None,
        }
    }
    stream.write_all(HEAD).ok()?;
    Some(stream)
}
