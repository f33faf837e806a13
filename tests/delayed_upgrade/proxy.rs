//! A TCP proxy (127.0.0.1, OS-assigned port) that injects the platform delay of the
//! incidents: it forwards bytes both ways at once until it has seen the end of the
//! server's `101 Switching Protocols` head (`\r\n\r\n`), then holds the next bytes in
//! each direction — the server's first WebSocket frames, and the first frames the
//! client sends — for a seeded random 50–150 ms, then forwards everything at once
//! again.
//!
//! It is also the tests' wire tap: every WebSocket frame it forwards after the `101`
//! is recorded, per connection and direction, in a [`Tap`], so a test can check the
//! order of frames as the client's socket received them (G1/G2), that the server
//! sent exactly one Close and nothing after it (G3/G4), and that the delay really
//! was in force.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The shortest and longest injected delay.
pub const DELAY: (Duration, Duration) = (Duration::from_millis(50), Duration::from_millis(150));

/// One WebSocket frame as it crossed the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireFrame {
    /// The frame's opcode: 1 text, 2 binary, 8 close, 9 ping, 10 pong (0 continuation).
    pub opcode: u8,
    /// The FIN bit.
    pub fin: bool,
    /// The payload, unmasked.
    pub payload: Vec<u8>,
}

impl WireFrame {
    /// True for a Close frame.
    pub fn is_close(&self) -> bool {
        self.opcode == 8
    }

    /// A Close frame's code.
    pub fn close_code(&self) -> Option<u16> {
        (self.is_close() && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }

    /// A text frame's text.
    pub fn text(&self) -> Option<&str> {
        (self.opcode == 1).then(|| std::str::from_utf8(&self.payload).ok())?
    }
}

/// The frames of one direction, parsed as they are forwarded.
#[derive(Debug, Clone, Default)]
pub struct Frames {
    /// Bytes of a frame not complete yet.
    pending: Vec<u8>,
    /// The complete frames, in order.
    pub frames: Vec<WireFrame>,
}

impl Frames {
    fn feed(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        while let Some((frame, used)) = parse(&self.pending) {
            self.frames.push(frame);
            self.pending.drain(..used);
        }
    }

    /// Bytes that do not make a complete frame (none once a stream ended cleanly).
    pub fn incomplete(&self) -> usize {
        self.pending.len()
    }
}

/// One frame at the start of `bytes`, and how many bytes it took; `None` if they do
/// not hold a complete frame yet.
fn parse(bytes: &[u8]) -> Option<(WireFrame, usize)> {
    let (&b0, &b1) = (bytes.first()?, bytes.get(1)?);
    let mut at = 2;
    let len = match b1 & 0x7f {
        126 => {
            let len = u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?);
            at = 4;
            len as usize
        }
        127 => {
            let len = u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?);
            at = 10;
            usize::try_from(len).ok()?
        }
        len => len as usize,
    };
    let mask = if b1 & 0x80 != 0 {
        let mask: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
        at += 4;
        Some(mask)
    } else {
        None
    };
    let mut payload = bytes.get(at..at + len)?.to_vec();
    if let Some(mask) = mask {
        payload
            .iter_mut()
            .enumerate()
            .for_each(|(i, byte)| *byte ^= mask[i % 4]);
    }
    let frame = WireFrame {
        opcode: b0 & 0x0f,
        fin: b0 & 0x80 != 0,
        payload,
    };
    Some((frame, at + len))
}

/// What the proxy saw of one connection.
#[derive(Debug, Clone)]
pub struct Tap {
    /// The connection's number, in accept order.
    pub index: usize,
    /// The client's address (its socket's local address).
    pub client: SocketAddr,
    /// The delay injected before the server's first frames.
    pub s2c_delay: Duration,
    /// The delay injected before the client's first frames.
    pub c2s_delay: Duration,
    /// The server's response head, up to and with its `\r\n\r\n`.
    pub head: Vec<u8>,
    /// When the end of a `101` head went by.
    pub upgraded_at: Option<Instant>,
    /// When the server's first bytes after the `101` were let through.
    pub s2c_released_at: Option<Instant>,
    /// When the client's first bytes after the `101` were let through.
    pub c2s_released_at: Option<Instant>,
    /// The server's frames, as forwarded to the client.
    pub s2c: Frames,
    /// The client's frames, as forwarded to the server.
    pub c2s: Frames,
    /// The server's side of the stream ended (EOF or error).
    pub s2c_ended: bool,
}

type Taps = Arc<Mutex<Vec<Arc<Mutex<Tap>>>>>;

/// The proxy, in front of `upstream`.
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    /// The seed of the delays.
    pub seed: u64,
    taps: Taps,
    task: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// splitmix64: a seeded, well-mixed stream, one value per (seed, connection, direction).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The delay of connection `index` in one direction (0: server → client, 1: client →
/// server), uniform in [`DELAY`] to the millisecond.
pub fn delay(seed: u64, index: usize, direction: u64) -> Duration {
    let (min, max) = (DELAY.0.as_millis() as u64, DELAY.1.as_millis() as u64);
    let draw = mix(seed ^ mix(index as u64 * 2 + direction));
    Duration::from_millis(min + draw % (max - min + 1))
}

impl Proxy {
    /// Listens on 127.0.0.1 (OS-assigned port) and forwards each connection to
    /// `upstream`, with delays drawn from `seed`.
    pub async fn start(upstream: SocketAddr, seed: u64) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let taps = Taps::default();
        let task = tokio::spawn(accept(listener, upstream, seed, taps.clone()));
        Proxy {
            addr,
            seed,
            taps,
            task,
        }
    }

    /// What the proxy saw of the connection from `client`.
    pub fn tap(&self, client: SocketAddr) -> Tap {
        let taps = self.taps.lock().unwrap();
        let tap = taps.iter().find(|tap| tap.lock().unwrap().client == client);
        tap.expect("a connection from this client")
            .lock()
            .unwrap()
            .clone()
    }
}

async fn accept(listener: TcpListener, upstream: SocketAddr, seed: u64, taps: Taps) {
    let mut index = 0;
    while let Ok((client, peer)) = listener.accept().await {
        let tap = Arc::new(Mutex::new(Tap {
            index,
            client: peer,
            s2c_delay: delay(seed, index, 0),
            c2s_delay: delay(seed, index, 1),
            head: Vec::new(),
            upgraded_at: None,
            s2c_released_at: None,
            c2s_released_at: None,
            s2c: Frames::default(),
            c2s: Frames::default(),
            s2c_ended: false,
        }));
        taps.lock().unwrap().push(tap.clone());
        index += 1;
        tokio::spawn(async move {
            let connect = TcpStream::connect(upstream);
            let Ok(Ok(server)) = tokio::time::timeout(Duration::from_secs(5), connect).await else {
                return; // the client sees its connection end
            };
            let _ = (client.set_nodelay(true), server.set_nodelay(true));
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            let upgraded = Arc::new(AtomicBool::new(false));
            tokio::join!(
                server_to_client(server_read, client_write, tap.clone(), upgraded.clone()),
                client_to_server(client_read, server_write, tap, upgraded),
            );
        });
    }
}

/// Forwards the server's bytes: the response head at once; after a `101` head, the
/// next bytes `s2c_delay` later.
async fn server_to_client(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    tap: Arc<Mutex<Tap>>,
    upgraded: Arc<AtomicBool>,
) {
    let mut buffer = vec![0_u8; 64 * 1024];
    let mut head: Vec<u8> = Vec::new();
    let mut head_done = false;
    let mut released = false;
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        let mut chunk = &buffer[..read];
        if !head_done {
            let before = head.len();
            head.extend_from_slice(chunk);
            let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") else {
                if to.write_all(chunk).await.is_err() {
                    break;
                }
                continue;
            };
            let (in_head, rest) = chunk.split_at(end + 4 - before);
            head.truncate(end + 4);
            head_done = true;
            let is_101 = head.starts_with(b"HTTP/1.1 101");
            {
                let mut tap = tap.lock().unwrap();
                tap.head = head.clone();
                if is_101 {
                    tap.upgraded_at = Some(Instant::now());
                }
            }
            if is_101 {
                // Before the client can have the head: its first frames come after.
                upgraded.store(true, Ordering::Release);
            } else {
                released = true; // a refusal: no WebSocket, no delay
            }
            if to.write_all(in_head).await.is_err() {
                break;
            }
            chunk = rest;
            if chunk.is_empty() {
                continue;
            }
        }
        if !released {
            let delay = tap.lock().unwrap().s2c_delay;
            tokio::time::sleep(delay).await;
            released = true;
            tap.lock().unwrap().s2c_released_at = Some(Instant::now());
        }
        if head_done && tap.lock().unwrap().upgraded_at.is_some() {
            tap.lock().unwrap().s2c.feed(chunk);
        }
        if to.write_all(chunk).await.is_err() {
            break;
        }
    }
    tap.lock().unwrap().s2c_ended = true;
    let _ = to.shutdown().await;
}

/// Forwards the client's bytes: the request at once; once the `101` went by, the
/// next bytes `c2s_delay` later.
async fn client_to_server(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    tap: Arc<Mutex<Tap>>,
    upgraded: Arc<AtomicBool>,
) {
    let mut buffer = vec![0_u8; 64 * 1024];
    let mut released = false;
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        let chunk = &buffer[..read];
        if !released && upgraded.load(Ordering::Acquire) {
            let delay = tap.lock().unwrap().c2s_delay;
            tokio::time::sleep(delay).await;
            released = true;
            tap.lock().unwrap().c2s_released_at = Some(Instant::now());
        }
        if released {
            tap.lock().unwrap().c2s.feed(chunk);
        }
        if to.write_all(chunk).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
