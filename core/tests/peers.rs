//! Dead, slow and idle peers: a client that reads a trickle, one that stops
//! reading while it lags, one that vanished, and sockets that never send a
//! head when the server stops.

mod common;

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

use common::*;
use tidings::{ChannelOptions, Config, Event, Limits, StreamSender};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A client with a tiny receive buffer that reads `bytes` every `every`:
/// it makes progress forever, but no large write ever completes in time.
async fn trickle_reader(addr: SocketAddr, path: &str, bytes: usize, every: Duration) {
    let mut stream = small_buffer_client(addr, path, 4096).await;
    let mut buf = vec![0u8; bytes];
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    });
}

#[tokio::test]
async fn a_client_reading_a_trickle_is_closed_when_a_write_does_not_complete_in_time() {
    let server = server(Config {
        write_timeout: Duration::from_secs(3),
        ..Config::default()
    });
    // 1 MiB events, batched up to a queue's worth per write: at the
    // client's pace such a write takes seconds.
    server
        .stream("/big", |_request, tx: StreamSender| async move {
            let chunk = "t".repeat(1 << 20);
            for _ in 0..200 {
                tx.send(Event::data(chunk.clone())).await?;
            }
            Ok::<(), tidings::Error>(())
        })
        .unwrap();
    let addr = server.start().unwrap();
    trickle_reader(addr, "/big", 16 * 1024, Duration::from_millis(5)).await;
    eventually("the stalled frame times out", || {
        server.stats().write_timeouts >= 1
    })
    .await;
    eventually("connection closed", || server.stats().connections_open == 0).await;
    server.stop();
}

#[tokio::test]
async fn a_subscriber_whose_write_is_stuck_is_dropped_once_it_lags_max_lag() {
    let server = server(Config {
        write_timeout: Duration::from_secs(600),
        ..Config::default()
    });
    let channel = server
        .channel(
            "/c",
            ChannelOptions {
                history: 0,
                max_lag: 8,
                ..ChannelOptions::default()
            },
        )
        .unwrap();
    let addr = server.start().unwrap();
    let _stalled = stalled_client(addr, "/c").await;
    eventually("subscribed", || channel.subscribers() == 1).await;
    let chunk = "z".repeat(64 * 1024);
    // Enough to fill the socket buffers and leave a write pending, then
    // many times max_lag more.
    for _ in 0..400 {
        channel.publish(Event::data(chunk.clone())).unwrap();
        if channel.subscribers() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    eventually("the lagging subscriber is dropped", || {
        channel.subscribers() == 0
    })
    .await;
    assert_eq!(server.stats().slow_consumer_drops, 1);
    assert_eq!(server.stats().write_timeouts, 0);
    server.stop();
}

/// The engine's end of the connection whose client end is `client`: the
/// test shares the process, and so the file table, with the server.
fn server_side_socket(client: &tokio::net::TcpStream) -> Option<Duration> {
    let client_addr = client.local_addr().unwrap();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if fd == client.as_raw_fd() {
            continue;
        }
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
        if !is_socket {
            continue;
        }
        // SAFETY: the fd was just listed as open in this process; the engine
        // keeps its connection open until the client leaves, which this test
        // has not done, so the borrow cannot outlive the descriptor.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let socket = socket2::SockRef::from(&borrowed);
        let peer = socket.peer_addr().ok().and_then(|a| a.as_socket());
        if peer == Some(client_addr) {
            return socket.tcp_user_timeout().ok().flatten();
        }
    }
    panic!("no server-side socket for {client_addr}");
}

#[tokio::test]
async fn unacknowledged_data_to_a_vanished_peer_times_out_with_the_write_timeout() {
    let server = server(Config {
        write_timeout: Duration::from_secs(7),
        ..Config::default()
    });
    let channel = server.channel("/c", ChannelOptions::default()).unwrap();
    let addr = server.start().unwrap();
    let client = stalled_client(addr, "/c").await;
    eventually("subscribed", || channel.subscribers() == 1).await;
    // Without TCP_USER_TIMEOUT a peer that vanished while data is in flight
    // is only found after ~15 minutes of retransmissions: keep-alive probes
    // are not sent while data is unacknowledged.
    assert_eq!(server_side_socket(&client), Some(Duration::from_secs(7)));
    server.stop();
}

#[test]
fn stop_does_not_wait_for_sockets_that_never_sent_a_head() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = server(Config {
        drain_timeout: Duration::from_secs(60),
        limits: Limits {
            head_timeout: Duration::from_secs(60),
            ..Limits::default()
        },
        ..Config::default()
    });
    let _channel = server.channel("/c", ChannelOptions::default()).unwrap();
    let addr = server.start().unwrap();
    let _sockets = runtime.block_on(async {
        // A browser's pre-connected socket, a head cut short, and a
        // keep-alive connection idle after its first response.
        let preconnected = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut partial = tokio::net::TcpStream::connect(addr).await.unwrap();
        partial.write_all(b"GET /c HTTP/1.1\r\nhos").await.unwrap();
        let mut idle = RawConn::open(addr, b"GET /missing HTTP/1.1\r\nhost: x\r\n\r\n").await;
        idle.read_until("not found").await;
        eventually("three connections", || server.stats().connections_open == 3).await;
        (preconnected, partial, idle)
    });
    let started = Instant::now();
    server.stop();
    assert!(
        started.elapsed() < PATIENCE,
        "stop waited {:?} for sockets with no stream (drain timeout 60 s)",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_slow_but_steady_download_is_not_cut_by_the_write_timeout() {
    let dir = std::env::temp_dir().join(format!("tidings-steady-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let contents: Vec<u8> = (0..6u32 << 20).map(|n| (n % 253) as u8).collect();
    std::fs::write(dir.join("big.bin"), &contents).unwrap();
    let server = server(Config {
        write_timeout: Duration::from_secs(1),
        ..Config::default()
    });
    server.page("/big", dir.join("big.bin")).unwrap();
    let addr = server.start().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    stream
        .write_all(b"GET /big HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    // ~1.6 MB/s: the whole file takes several write timeouts, though every
    // moment some of it moves.
    let mut received = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let deadline = Instant::now() + PATIENCE;
    loop {
        assert!(
            Instant::now() < deadline,
            "download too slow to finish in time"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
        match stream.read(&mut buf).await.unwrap() {
            0 => break,
            n => received.extend_from_slice(&buf[..n]),
        }
    }
    let body_at = received.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(
        received.len() - body_at,
        contents.len(),
        "the download was cut"
    );
    assert!(received[body_at..] == contents[..]);
    assert_eq!(server.stats().write_timeouts, 0);
    server.stop();
    std::fs::remove_dir_all(&dir).unwrap();
}
