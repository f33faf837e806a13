//! An echo server with no authentication: every message comes back as it was sent
//! (text as text, binary as binary), on either adapter. It is the server the
//! Autobahn TestSuite runs against (`scripts/autobahn.sh`, `docs/conformance.md`).
//!
//! ```sh
//! cargo run --release --example echo --features axum,tungstenite                      # axum, ws://127.0.0.1:9001/
//! cargo run --release --example echo --features axum,tungstenite -- --adapter tungstenite --addr 127.0.0.1:9002
//! ```
//!
//! Flags: `--adapter axum|tungstenite` (default `axum`), `--addr` (default
//! `127.0.0.1:9001`), `--log-closes` (print each connection's close record on stderr:
//! the connection's code, the cause, the code of our Close, which Closes were
//! exchanged). Every path is a WebSocket
//! endpoint. SIGINT or SIGTERM drains: every client gets Close 1001.
//!
//! The configuration ([`config`]) is the library's default except where the test
//! suite needs more room; each change says why.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use tokio::net::TcpListener;
use ws_lifecycle::axum::Served;
use ws_lifecycle::driver::{Closed, Public, UpgradeRequest};
use ws_lifecycle::{
    CloseFrame, DriverConfig, Handler, Message, Registry, Sender, Service, Session,
};

/// The largest message echoed: Autobahn's largest cases (9.1.6, 9.2.6) send 16 MiB
/// messages, 9.1.6 in a single frame; twice that leaves room.
const MAX_MESSAGE: usize = 32 << 20;

/// Echoes every message back to its sender, unchanged.
struct Echo {
    log_closes: bool,
}

impl Handler for Echo {
    async fn on_message(
        &self,
        _: &Session,
        sender: &Sender,
        message: Message,
    ) -> Result<(), CloseFrame> {
        // Waits for room rather than refusing (the echo must not drop a message): a
        // client that sends faster than it reads is slowed down, since the driver
        // stops reading while this call waits. An error means the connection is
        // closing; the message is dropped with it.
        let _ = sender.send_async(message).await;
        Ok(())
    }

    async fn on_close(&self, session: &Session, closed: &Closed) {
        if self.log_closes {
            let record = &closed.record;
            let ours = match &record.frame {
                Some(frame) => frame.code().to_string(),
                None => "none".to_owned(),
            };
            eprintln!(
                "echo: connection {:?} closed {} ({:?}), our code {ours}, close sent {}, peer closed {}, {} unsent",
                session.id,
                record.code(),
                record.cause,
                record.close_sent,
                record.peer_closed,
                closed.unsent.len()
            );
        }
    }
}

/// The library's defaults, changed only where a conformance run needs it.
fn config() -> DriverConfig {
    let mut config = DriverConfig::default();
    // Autobahn 9.1.6 sends a 16 MiB message in one frame, and tungstenite's default
    // frame limit is exactly 16 MiB: raise both limits so the largest cases are
    // echoed, not refused.
    config.socket.max_message_size = Some(MAX_MESSAGE);
    config.socket.max_frame_size = Some(MAX_MESSAGE);
    // Once Ready, a full inbound hold makes the driver stop reading (back-pressure),
    // which is correct but slows the many-small-frames cases; before Ready, one
    // message over it closes with 1008. A client that pipelines right after the
    // handshake (the fuzzing client does) is held, not cut.
    config.connection.inbound_capacity = 4096;
    // The echo waits for room (`send_async`), so the outbox bound costs no message;
    // a larger outbox lets a burst of echoes be written in fewer, larger batches.
    config.connection.outbox_capacity = 4096;
    config.connection.pending_capacity = 4096;
    // A case that ships 16 MiB through a slow client can be silent for a while; the
    // keep-alive Ping (sent at half this) must not land in the middle of a case,
    // where the suite would see a frame it did not expect.
    config.idle_timeout = Some(Duration::from_secs(600));
    config
}

/// Which adapter serves the connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Adapter {
    Axum,
    Tungstenite,
}

type EchoService = Service<Public, Echo>;

async fn ws(State(service): State<Arc<EchoService>>, request: UpgradeRequest) -> Served {
    ws_lifecycle::axum::serve(request, service).await
}

async fn serve_axum(listener: TcpListener, service: Arc<EchoService>) -> std::io::Result<()> {
    let app = Router::new()
        .route("/", get(ws))
        .route("/{*path}", get(ws))
        .with_state(service);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
}

async fn serve_tungstenite(
    listener: TcpListener,
    service: Arc<EchoService>,
) -> std::io::Result<()> {
    loop {
        let (stream, peer) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        tokio::spawn(async move {
            if let Err(error) =
                ws_lifecycle::tungstenite::accept(stream, Some(peer), &service).await
            {
                if service.handler().log_closes {
                    eprintln!("echo: upgrade from {peer} failed: {error}");
                }
            }
        });
    }
}

fn usage() -> ! {
    eprintln!("usage: echo [--adapter axum|tungstenite] [--addr HOST:PORT] [--log-closes]");
    std::process::exit(2)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut adapter = Adapter::Axum;
    let mut addr: SocketAddr = "127.0.0.1:9001".parse()?;
    let mut log_closes = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--adapter" => {
                adapter = match args.next().as_deref() {
                    Some("axum") => Adapter::Axum,
                    Some("tungstenite") => Adapter::Tungstenite,
                    _ => usage(),
                }
            }
            "--addr" => addr = args.next().unwrap_or_else(|| usage()).parse()?,
            "--log-closes" => log_closes = true,
            _ => usage(),
        }
    }

    let registry = Registry::open_now();
    let service = Arc::new(Service::public(
        registry.clone(),
        config(),
        Echo { log_closes },
    ));
    let listener = TcpListener::bind(addr).await?;
    eprintln!(
        "echo: {adapter:?} adapter on ws://{}/",
        listener.local_addr()?
    );
    let server = async {
        match adapter {
            Adapter::Axum => serve_axum(listener, service).await,
            Adapter::Tungstenite => serve_tungstenite(listener, service).await,
        }
    };
    tokio::select! {
        result = server => result?,
        () = signal::signal() => {
            let report = registry.drain(tokio::time::sleep(Duration::from_secs(5))).await;
            eprintln!("echo: drained ({} closing, {} dropped)", report.closing, report.dropped);
        }
    }
    Ok(())
}

#[path = "common/signal.rs"]
mod signal;
