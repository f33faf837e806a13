//! Clients that misbehave at the wire, against the example chat server on real
//! sockets: one that vanishes mid-frame or mid-broadcast, one that never answers our
//! Close, one that sends Close while we broadcast to it. In every case: no panic
//! (the server goes on serving the others), no data frame after a Close we sent
//! (G3), one Close from us (G4), and the registry returns to empty (G7, via `/stats`).

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::raw::{Raw, RawFrame};
use support::{Server, json, login, raw_login, send};

/// The `said` texts in `frames`, in order.
fn said(frames: &[RawFrame]) -> Vec<String> {
    frames
        .iter()
        .filter_map(|frame| match frame {
            RawFrame::Text(text) => {
                let value: Value = serde_json::from_str(text).unwrap();
                (value["type"] == "said").then(|| value["text"].as_str().unwrap().to_owned())
            }
            _ => None,
        })
        .collect()
}

/// Checks G3/G4 on everything a client saw: exactly one Close, and it is the last
/// frame. Returns its code.
fn one_close_and_nothing_after(frames: &[RawFrame]) -> Option<u16> {
    let closes: Vec<usize> = (0..frames.len())
        .filter(|&i| matches!(frames[i], RawFrame::Close(_)))
        .collect();
    assert_eq!(
        closes.len(),
        1,
        "exactly one Close from us (G4): {frames:?}"
    );
    assert_eq!(
        closes[0],
        frames.len() - 1,
        "nothing after our Close (G3): {:?}",
        &frames[closes[0]..]
    );
    match frames[closes[0]] {
        RawFrame::Close(code) => code,
        _ => unreachable!(),
    }
}

/// `bob` says `count` numbered messages, keeping at most `window` unanswered, and
/// checks he hears every one of them back once, in order.
async fn say_and_hear(bob: &mut support::Ws, count: usize, window: usize) {
    let mut heard = 0;
    for i in 0..count {
        send(bob, json!({"type": "say", "text": i.to_string()})).await;
        if i + 1 - heard > window {
            let said = json(bob).await;
            assert_eq!(said["text"], heard.to_string(), "in order, once");
            heard += 1;
        }
    }
    while heard < count {
        let said = json(bob).await;
        assert_eq!(said["text"], heard.to_string(), "in order, once");
        heard += 1;
    }
}

#[tokio::test]
async fn a_client_that_vanishes_mid_frame_or_mid_broadcast_leaves_nothing_behind() {
    let server = Server::start_default().await;
    let mut bob = login(&server, "bob").await;

    // Ann vanishes in the middle of writing a frame: half a header, then the TCP
    // connection is gone, no Close.
    let mut ann = raw_login(&server, "ann").await;
    let frame = Raw::frame(
        support::raw::TEXT,
        br#"{"type":"say","text":"never finished"}"#,
    );
    assert!(ann.write_raw(&frame[..5]).await);
    drop(ann);

    // Cid vanishes while we broadcast to him: he reads a few, then drops the socket
    // with unread messages in flight.
    let mut cid = raw_login(&server, "cid").await;
    let talker = async {
        say_and_hear(&mut bob, 300, 8).await;
        bob
    };
    let vanisher = async {
        let mut seen = 0;
        while seen < 10 {
            match cid.read().await {
                Some(RawFrame::Text(_)) => seen += 1,
                other => panic!("cid expected broadcasts, got {other:?}"),
            }
        }
        drop(cid);
    };
    let (mut bob, ()) = tokio::join!(talker, vanisher);

    // Only bob is left, and the server still serves him.
    let stats = server.until_open(1).await;
    assert_eq!(stats["open"], 1, "ann and cid were unlisted: {stats}");
    assert_eq!(stats["by_phase"]["ready"], 1, "{stats}");
    assert_eq!(stats["users"], 1, "no stale user entry (G7): {stats}");
    assert!(
        stats["totals"]["closed_by_cause"]["transport_lost"]
            .as_u64()
            .unwrap_or(0)
            >= 2,
        "both ended as lost transports: {stats}"
    );
    send(&mut bob, json!({"type": "say", "text": "still here"})).await;
    assert_eq!(json(&mut bob).await["text"], "still here");
    drop(bob);
    let stats = server.until_empty().await;
    assert_eq!(stats["open"], 0, "{stats}");
    assert_eq!(stats["users"], 0, "{stats}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_that_never_answers_our_close_is_cut_off_after_the_close_timeout() {
    // Our Close is 1008 for a client that never authenticates; this one never
    // reads either, so it never answers. The driver waits the close timeout (5 s by
    // default), then ends the transport.
    let server = Server::start(support::args(300)).await;
    let started = Instant::now();
    let mut mute = Raw::connect(server.addr).await;
    let stats = server.until_open(1).await;
    assert_eq!(stats["open"], 1, "{stats}");
    let stats = server.until_empty().await;
    let elapsed = started.elapsed();
    assert_eq!(
        stats["open"], 0,
        "unlisted after the close timeout: {stats}"
    );
    assert!(
        elapsed >= Duration::from_millis(300 + 5_000),
        "not before the close timeout: {elapsed:?}"
    );
    assert_eq!(
        stats["totals"]["closed_by_cause"]["readiness_deadline"], 1,
        "{stats}"
    );
    // What it would have read: our Close, then the end of the stream.
    let frames = mute.read_to_end().await;
    assert_eq!(one_close_and_nothing_after(&frames), Some(1008));
    assert_eq!(frames, [RawFrame::Close(Some(1008))]);
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_that_never_answers_the_drain_does_not_hold_up_shutdown() {
    let server = Server::start_default().await;
    let mut mute = raw_login(&server, "mute").await;
    let started = Instant::now();
    let report = server.shutdown().await; // bounded by support::WAIT
    let elapsed = started.elapsed();
    assert_eq!(report.closing, 1, "{report:?}");
    assert_eq!(report.closed + report.dropped, 1, "{report:?}");
    assert!(
        elapsed < support::chat::DRAIN_TIMEOUT + Duration::from_secs(2),
        "the drain is bounded: {elapsed:?}"
    );
    let frames = mute.read_to_end().await;
    assert_eq!(one_close_and_nothing_after(&frames), Some(1001));
}

#[tokio::test]
async fn a_client_that_sends_close_while_we_broadcast_to_it() {
    let server = Server::start_default().await;
    let mut bob = login(&server, "bob").await;
    let mut eve = raw_login(&server, "eve").await;
    let talker = async {
        say_and_hear(&mut bob, 300, 8).await;
        bob
    };
    let closer = async {
        let mut frames = Vec::new();
        while said(&frames).len() < 20 {
            frames.push(eve.read().await.expect("broadcasts"));
        }
        assert!(eve.close(1000).await, "the server is still reading");
        frames.extend(eve.read_to_end().await);
        frames
    };
    let (mut bob, frames) = tokio::join!(talker, closer);
    // Eve got a prefix of bob's messages, in order, each once, then one Close.
    let got = said(&frames);
    let expected: Vec<String> = (0..got.len()).map(|i| i.to_string()).collect();
    assert_eq!(got, expected, "a prefix, in order, once");
    assert_eq!(one_close_and_nothing_after(&frames), Some(1000));
    let stats = server.until_open(1).await;
    assert_eq!(stats["open"], 1, "eve was unlisted: {stats}");
    send(&mut bob, json!({"type": "say", "text": "after eve"})).await;
    assert_eq!(json(&mut bob).await["text"], "after eve");
    drop(bob);
    assert_eq!(server.until_empty().await["open"], 0);
    server.shutdown().await;
}

/// Bob's messages in the slow-consumer tests are this long, so the socket buffers
/// between the server and a client that does not read fill in a few thousand.
const PADDED: usize = 1_000;

/// Bob's `i`th message in the slow-consumer tests.
fn padded(i: usize) -> String {
    format!("{i:0>PADDED$}")
}

/// Bob talks (at most 8 unanswered) until `/stats` shows a connection closing — the
/// one that does not read, whose outbox overflowed — and fails after 40 000
/// messages. Returns how many he said and how many echoes he heard.
async fn talk_until_one_is_closing(server: &Server, bob: &mut support::Ws) -> (usize, usize) {
    const LIMIT: usize = 40_000;
    let (mut said, mut heard) = (0, 0);
    loop {
        if said >= LIMIT {
            panic!(
                "no slow-consumer close after {said} messages: {}",
                server.stats().await
            );
        }
        send(bob, json!({"type": "say", "text": padded(said)})).await;
        said += 1;
        if said - heard > 8 {
            assert_eq!(json(bob).await["text"], padded(heard), "in order, once");
            heard += 1;
        }
        if said % 100 == 0 {
            let stats = server.stats().await;
            if stats["by_phase"]["closing"] == 1 {
                return (said, heard);
            }
            assert_eq!(stats["by_phase"]["ready"], 2, "{stats}");
        }
    }
}

/// Bob hears the rest of his echoes, from `heard` up to `said`.
async fn hear_the_rest(bob: &mut support::Ws, heard: usize, said: usize) {
    for i in heard..said {
        assert_eq!(json(bob).await["text"], padded(i), "in order, once");
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_as_a_slow_consumer_after_all_it_was_sent() {
    let server = Server::start_default().await;
    let mut bob = login(&server, "bob").await;
    let mut slow = raw_login(&server, "slow").await;
    // The sluggard reads nothing while bob talks: the socket buffers fill, then its
    // outbox (1 024 messages), and the next broadcast closes it with 1013 — while
    // the server's write to it is still pending.
    let (bob_said, heard) = talk_until_one_is_closing(&server, &mut bob).await;
    // Now it reads — within the close timeout (5 s) that started with the overflow:
    // a prefix of bob's messages, in order and each once, then our Close 1013, then
    // nothing (G3, G4).
    let reading = Instant::now();
    let mut frames = Vec::new();
    loop {
        let frame = slow.read().await.expect("the queue, then our Close");
        let closed = matches!(frame, RawFrame::Close(_));
        frames.push(frame);
        if closed {
            break;
        }
    }
    let read_for = reading.elapsed();
    assert!(slow.close(1000).await, "the server waits for our answer");
    frames.extend(slow.read_to_end().await);
    assert_eq!(one_close_and_nothing_after(&frames), Some(1013));
    let got = said(&frames);
    let expected: Vec<String> = (0..got.len()).map(padded).collect();
    assert!(
        got == expected,
        "a prefix of bob's messages, in order, once"
    );
    assert!(
        got.len() >= 1_024 && got.len() < bob_said,
        "its whole outbox and what the sockets held: {} of {bob_said}",
        got.len()
    );
    eprintln!(
        "the sluggard was closing after bob said {bob_said}; it was sent {} of them, \
         read in {read_for:?}",
        got.len()
    );
    // Bob is still served, and the sluggard left with the cause recorded.
    let stats = server.until_open(1).await;
    assert_eq!(stats["open"], 1, "{stats}");
    assert_eq!(
        stats["totals"]["closed_by_cause"]["slow_consumer"], 1,
        "{stats}"
    );
    hear_the_rest(&mut bob, heard, bob_said).await;
    drop(bob);
    assert_eq!(server.until_empty().await["open"], 0);
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_that_never_reads_again_is_cut_off_after_the_close_timeout() {
    // As above, but the sluggard never reads again: the server's write to it never
    // completes, and still the connection's clock runs — the slow-consumer close's
    // handshake times out after the close timeout (5 s by default) and the
    // connection is Closed and unlisted (G5, G7).
    let server = Server::start_default().await;
    let mut bob = login(&server, "bob").await;
    let slow = raw_login(&server, "slow").await;
    let (said, heard) = talk_until_one_is_closing(&server, &mut bob).await;
    let closing = Instant::now();
    let stats = server.until_open(1).await;
    let elapsed = closing.elapsed();
    assert_eq!(stats["open"], 1, "the sluggard was unlisted: {stats}");
    assert_eq!(
        stats["totals"]["closed_by_cause"]["slow_consumer"], 1,
        "{stats}"
    );
    assert!(
        elapsed <= Duration::from_secs(5 + 2),
        "within the close timeout and a margin: {elapsed:?}"
    );
    eprintln!("the sluggard that never read again was unlisted {elapsed:?} after closing");
    hear_the_rest(&mut bob, heard, said).await;
    drop((bob, slow));
    assert_eq!(server.until_empty().await["open"], 0);
    server.shutdown().await;
}
