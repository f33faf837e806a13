//! A JWT carried in `Sec-WebSocket-Protocol`, checked at the upgrade: the incident
//! path end to end, on the **axum** adapter (`ws_lifecycle::axum::serve`).
//!
//! ```sh
//! cargo run --example jwt --features axum -- --secret s3cret     # ws://127.0.0.1:8081/ws
//! TOKEN=$(cargo run -q --example jwt --features axum -- --secret s3cret --mint ada 60)
//! websocat --protocol "chat.v1, jwt.$TOKEN" ws://127.0.0.1:8081/ws
//! ```
//!
//! Flags: `--addr` (default `127.0.0.1:8081`), `--secret` (the HS256 key, default
//! `secret`), and `--mint <user> <seconds>`, which prints a token for `user` that
//! expires in `seconds` and exits (`--aud <audience>` mints one for another
//! audience, to see the 403).
//!
//! **The upgrade.** Browsers cannot set headers on a WebSocket, so the client offers
//! the token as a second subprotocol: `Sec-WebSocket-Protocol: chat.v1, jwt.<token>`.
//! RFC 6455 (4.1) makes each offered subprotocol an RFC 2616 *token*: visible ASCII
//! without separators (`()<>@,;:\"/[]?={}`, space, tab). A JWT is three base64url
//! segments (`A–Z a–z 0–9 - _`, unpadded) joined by dots, so `jwt.<token>` is a legal
//! token and a legal `http::HeaderValue`; a padded `=` or a standard-base64 `/` would
//! not be. The server checks the token before the `101` ([`JwtAuth`]): HS256 with
//! the shared secret, `aud` = [`AUDIENCE`], `exp` (no leeway). It answers with
//! `chat.v1` only — never the token, which would echo a credential into every proxy
//! log and is not what the client should see selected. Refusals are HTTP answers,
//! with no WebSocket: no token → 401; a bad signature, a malformed or expired token
//! → 401; a valid token for another audience → 403; a token without `chat.v1`
//! offered → 400 (a browser fails a connection whose selected protocol it did not
//! offer).
//!
//! **The connection.** The token's `exp` is the credential's expiry
//! (`Identity::expiring_at`, on the driver's clock): when it lapses the connection
//! is closed with 1008 "credential expired" (G5). The protocol, JSON text frames:
//!
//! - server → client, first (emitted before `Ready`, so before anything else, G2):
//!   `{"type":"welcome","user":"ada","exp":<unix seconds>}`;
//! - `{"type":"say","text":".."}` → `{"type":"said","from":"ada","text":".."}` to
//!   every `Ready` connection (G7);
//! - `{"type":"refresh","token":"<new jwt>"}` → validated like the upgrade's (same
//!   user), the expiry moved (`Sender::reauthenticate`), answered
//!   `{"type":"refreshed","exp":..}`; a refused refresh is answered
//!   `{"type":"error",..}` and the old expiry stands;
//! - SIGINT or SIGTERM drains: every client gets Close 1001.
//!
//! `tests/delayed_upgrade.rs` includes this file as a module and drives it through a
//! proxy that delays the first frames after the `101`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::StatusCode;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use ws_lifecycle::driver::{Closed, Refusal, UpgradeRequest, UpgradeVerdict};
use ws_lifecycle::registry::DrainReport;
use ws_lifecycle::{
    Authenticator, CloseCode, CloseFrame, DriverConfig, Emitter, Handler, Identity, Message,
    Registry, Sender, Service, Session,
};

/// The subprotocol the server speaks, and answers the upgrade with.
pub const PROTOCOL: &str = "chat.v1";
/// The prefix of the offered subprotocol that carries the token.
pub const TOKEN_PREFIX: &str = "jwt.";
/// The audience every token must name.
pub const AUDIENCE: &str = "ws-lifecycle-chat";
/// How long a drain waits for the close handshakes.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A token's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user.
    pub sub: String,
    /// Who the token is for: [`AUDIENCE`].
    pub aud: String,
    /// When it expires, in unix seconds.
    pub exp: u64,
}

/// A token that checked out.
#[derive(Debug, Clone)]
pub struct Credential {
    /// The user (`sub`).
    pub user: String,
    /// `exp`, in unix seconds.
    pub exp: u64,
    /// `exp` on the driver's clock.
    pub expires_at: Instant,
}

/// The HS256 key, both ways, and how tokens are validated.
pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl Keys {
    /// Keys from the shared secret.
    pub fn new(secret: &str) -> Keys {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "sub", "aud"]);
        // The expiry is the connection's deadline to the millisecond (G5): a token
        // is not accepted past its `exp` (jsonwebtoken's default leeway is 60 s).
        validation.leeway = 0;
        Keys {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
        }
    }

    /// A token for `user` and `audience` (the server's is [`AUDIENCE`]) that
    /// expires `lifetime` from now, to the second (`exp` is in unix seconds).
    pub fn mint(&self, user: &str, audience: &str, lifetime: Duration) -> String {
        self.sign(&Claims {
            sub: user.to_owned(),
            aud: audience.to_owned(),
            exp: unix_now().as_secs() + lifetime.as_secs(),
        })
    }

    /// A token with these claims.
    pub fn sign(&self, claims: &Claims) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .expect("HS256 signing cannot fail")
    }

    /// Checks a token: signature, audience, expiry. `Err`: the HTTP refusal.
    pub fn check(&self, token: &str) -> Result<Credential, Refusal> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|error| refusal(error.kind()))?;
        let Claims { sub, exp, .. } = data.claims;
        // Valid to the second, but `exp` may be less than a second away and lapse
        // before we get here: then it is expired.
        let expires_at = expiry(exp).ok_or_else(|| Refusal::unauthorized("token expired"))?;
        Ok(Credential {
            user: sub,
            exp,
            expires_at,
        })
    }
}

/// A failed validation as the client sees it (no secrets in the reason: it is the
/// response body).
fn refusal(kind: &ErrorKind) -> Refusal {
    match kind {
        ErrorKind::InvalidAudience | ErrorKind::InvalidIssuer | ErrorKind::InvalidSubject => {
            Refusal::forbidden("token not valid for this service")
        }
        ErrorKind::ExpiredSignature => Refusal::unauthorized("token expired"),
        ErrorKind::InvalidSignature => Refusal::unauthorized("bad token signature"),
        _ => Refusal::unauthorized("malformed token"),
    }
}

/// The time since the unix epoch.
pub fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// A JWT `exp` (unix seconds) on the driver's clock (tokio's, which a paused test
/// clock drives too): now plus what is left of the token. `None` if it has lapsed.
pub fn expiry(exp: u64) -> Option<Instant> {
    let left = Duration::from_secs(exp).checked_sub(unix_now())?;
    (!left.is_zero()).then(|| tokio::time::Instant::now().into_std() + left)
}

/// The per-connection state: the token's `exp` at the upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Granted {
    /// `exp`, in unix seconds.
    pub exp: u64,
}

/// The authenticator: the token in `Sec-WebSocket-Protocol`, checked before the `101`.
pub struct JwtAuth {
    keys: Arc<Keys>,
}

impl JwtAuth {
    /// Checks tokens with `keys`.
    pub fn new(keys: Arc<Keys>) -> JwtAuth {
        JwtAuth { keys }
    }
}

impl Authenticator for JwtAuth {
    type State = Granted;

    async fn at_upgrade(&self, request: Arc<UpgradeRequest>) -> UpgradeVerdict<Granted> {
        let token = request
            .protocols()
            .find_map(|offered| offered.strip_prefix(TOKEN_PREFIX));
        let Some(token) = token else {
            let why = "missing token: offer `jwt.<token>` in Sec-WebSocket-Protocol";
            return UpgradeVerdict::Refuse(Refusal::unauthorized(why));
        };
        if !request.protocols().any(|offered| offered == PROTOCOL) {
            let why = "offer the chat.v1 subprotocol beside the token";
            return UpgradeVerdict::Refuse(Refusal::with_status(StatusCode::BAD_REQUEST, why));
        }
        match self.keys.check(token) {
            Ok(credential) => UpgradeVerdict::Accept(
                Identity::user(credential.user)
                    .expiring_at(credential.expires_at) // 1008 when it lapses (G5)
                    .with_state(Granted {
                        exp: credential.exp,
                    })
                    .selecting_protocol(PROTOCOL), // never the token
            ),
            Err(refusal) => UpgradeVerdict::Refuse(refusal),
        }
    }
}

/// The chat's handler: welcome, say, refresh.
pub struct Chat {
    keys: Arc<Keys>,
}

impl Chat {
    /// Checks refreshed tokens with `keys`.
    pub fn new(keys: Arc<Keys>) -> Chat {
        Chat { keys }
    }
}

fn text(value: Value) -> Message {
    Message::text(value.to_string())
}

impl Handler<Granted> for Chat {
    async fn on_authenticated(&self, session: &Session<Granted>, emitter: &Emitter) {
        // Emitted before Ready: the client's first frame, before any broadcast (G2).
        let _ = emitter.emit(text(json!({
            "type": "welcome",
            "user": session.user(),
            "exp": session.state.exp,
        })));
    }

    async fn on_message(
        &self,
        session: &Session<Granted>,
        sender: &Sender,
        message: Message,
    ) -> Result<(), CloseFrame> {
        let Some(body) = message.as_text() else {
            let frame = CloseFrame::new(CloseCode::UNSUPPORTED_DATA, "text frames only");
            return Err(frame.expect("a valid close frame"));
        };
        let error = |what: &str| {
            let _ = sender.send(text(json!({"type": "error", "error": what})));
            Ok(())
        };
        let Ok(value) = serde_json::from_str::<Value>(body) else {
            return error("malformed JSON");
        };
        let user = session.user().unwrap_or_default();
        match value["type"].as_str() {
            Some("say") => {
                let Some(said) = value["text"].as_str() else {
                    return error("missing \"text\"");
                };
                let out = json!({"type": "said", "from": user, "text": said});
                session.registry.broadcast(text(out)); // every Ready connection (G7)
                Ok(())
            }
            Some("refresh") => {
                let Some(token) = value["token"].as_str() else {
                    return error("missing \"token\"");
                };
                let credential = match self.keys.check(token) {
                    Ok(credential) => credential,
                    Err(refusal) => {
                        return error(&format!("refresh refused: {}", refusal.reason()));
                    }
                };
                if credential.user != user {
                    return error("refresh refused: the token is for another user");
                }
                // The 1008 at the old expiry is off, the new one armed (G5). Refused
                // only if the connection is closing already (the old one lapsed
                // first): then there is no one to answer.
                if sender.reauthenticate(Some(credential.expires_at)).is_ok() {
                    let _ = sender.send(text(json!({"type": "refreshed", "exp": credential.exp})));
                }
                Ok(())
            }
            _ => error("unknown message type"),
        }
    }

    async fn on_close(&self, session: &Session<Granted>, closed: &Closed) {
        let user = session.user().unwrap_or("?");
        let (cause, code) = (closed.record.cause.as_str(), closed.record.code());
        println!("{user} left: {cause} ({code})");
    }
}

/// A service checking tokens with `keys`, listing its connections in `registry`.
pub fn service<H: Handler<Granted>>(
    registry: Registry,
    config: DriverConfig,
    keys: Arc<Keys>,
    handler: H,
) -> Arc<Service<JwtAuth, H>> {
    Arc::new(Service::new(registry, config, JwtAuth::new(keys), handler))
}

/// `GET /ws`, the WebSocket, on `service`.
pub fn router<H: Handler<Granted>>(service: Arc<Service<JwtAuth, H>>) -> Router {
    Router::new().route("/ws", get(ws::<H>)).with_state(service)
}

async fn ws<H: Handler<Granted>>(
    State(service): State<Arc<Service<JwtAuth, H>>>,
    request: UpgradeRequest,
) -> Response {
    ws_lifecycle::axum::serve(request, service)
        .await
        .into_response()
}

/// Serves on `listener` until `shutdown` completes, then drains.
pub async fn serve(
    listener: TcpListener,
    secret: &str,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<DrainReport> {
    let registry = Registry::default();
    let keys = Arc::new(Keys::new(secret));
    let config = DriverConfig::default(); // axum answers pings itself
    let service = service(registry.clone(), config, keys.clone(), Chat::new(keys));
    let app = router(service);
    registry.open(); // the handlers are in place (G8)
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            let _ = stop_rx.await;
        })
        .into_future(),
    );
    shutdown.await;
    let report = registry.drain(tokio::time::sleep(DRAIN_TIMEOUT)).await;
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, server).await;
    Ok(report)
}

/// The command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// `--addr`: where to listen.
    pub addr: SocketAddr,
    /// `--secret`: the HS256 key.
    pub secret: String,
    /// `--mint <user> <seconds>`: print a token and exit.
    pub mint: Option<(String, u64)>,
    /// `--aud`: the audience of a minted token.
    pub aud: String,
}

const USAGE: &str = "usage: jwt [--addr 127.0.0.1:8081] [--secret secret]\n       \
                     jwt [--secret secret] --mint <user> <seconds> [--aud audience]";

impl Args {
    /// Parses the flags; unknown flags and bad values are errors (the usage).
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
        let mut parsed = Args {
            addr: SocketAddr::from(([127, 0, 0, 1], 8081)),
            secret: "secret".to_owned(),
            mint: None,
            aud: AUDIENCE.to_owned(),
        };
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            let mut value = || {
                args.next()
                    .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
            };
            match flag.as_str() {
                "--addr" => {
                    let addr = value()?;
                    parsed.addr = addr
                        .parse()
                        .map_err(|e| format!("bad --addr: {e}\n{USAGE}"))?;
                }
                "--secret" => parsed.secret = value()?,
                "--aud" => parsed.aud = value()?,
                "--mint" => {
                    let user = value()?;
                    let seconds = value()?;
                    let seconds = seconds
                        .parse()
                        .map_err(|e| format!("bad --mint seconds: {e}\n{USAGE}"))?;
                    parsed.mint = Some((user, seconds));
                }
                _ => return Err(USAGE.to_owned()),
            }
        }
        Ok(parsed)
    }
}

/// SIGINT (Ctrl-C) or SIGTERM.
#[path = "common/signal.rs"]
mod signal;
use signal::signal;

#[tokio::main]
async fn main() {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let keys = Keys::new(&args.secret);
    if let Some((user, seconds)) = &args.mint {
        println!(
            "{}",
            keys.mint(user, &args.aud, Duration::from_secs(*seconds))
        );
        return;
    }
    let listener = match TcpListener::bind(args.addr).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("cannot listen on {}: {error}", args.addr);
            std::process::exit(1);
        }
    };
    let addr = listener.local_addr().expect("a bound address");
    println!("jwt chat on ws://{addr}/ws  (Ctrl-C drains and exits); try:");
    println!(
        "  TOKEN=$(cargo run -q --example jwt --features axum -- --secret <secret> --mint ada 60)"
    );
    println!("  websocat --protocol \"{PROTOCOL}, {TOKEN_PREFIX}$TOKEN\" ws://{addr}/ws");
    match serve(listener, &args.secret, signal()).await {
        Ok(report) => println!(
            "drained: {} asked to close, {} closed in time, {} dropped",
            report.closing, report.closed, report.dropped
        ),
        Err(error) => {
            eprintln!("server error: {error}");
            std::process::exit(1);
        }
    }
}
