//! G9 wire stability: the serialized form of every public serde type is pinned by a
//! snapshot in `tests/snapshots/`. A change to any of them is a deliberate, visible
//! diff there (review with `cargo insta review`, or accept with
//! `INSTA_UPDATE=always cargo test --test wire`).

use std::time::Instant;

use insta::assert_snapshot;
use serde::Serialize;
use serde::de::DeserializeOwned;
use ws_lifecycle::core::{
    CloseCause, CloseClass, CloseEnd, CrateClose, InputKind, MachineState, RejectReason,
    TransportLoss, transition_table,
};
use ws_lifecycle::registry::{RegistryError, RegistryState};
use ws_lifecycle::{
    CloseCode, CloseFrame, Config, Connection, ConnectionId, Message, Phase, Registry,
    RegistryConfig,
};

fn json<T: Serialize>(values: &[T]) -> String {
    values
        .iter()
        .map(|v| serde_json::to_string(v).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

fn round_trips<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(values: &[T]) {
    for v in values {
        let text = serde_json::to_string(v).unwrap();
        let back: T = serde_json::from_str(&text).unwrap();
        assert_eq!(&back, v, "{text}");
    }
}

/// G9: `Phase` serializes as its lower-case name; its numeric codes are pinned too.
#[test]
fn phase_wire_form_g9() {
    round_trips(&Phase::ALL);
    assert_snapshot!("phase", json(&Phase::ALL));
    let codes: Vec<String> = Phase::ALL
        .iter()
        .map(|p| format!("{p}={}", p.code()))
        .collect();
    assert_snapshot!("phase_codes", codes.join("\n"));
}

/// G9: close codes are bare numbers; classes snake-case names; frames objects.
#[test]
fn close_wire_forms_g9() {
    let codes = [
        CloseCode::NORMAL,
        CloseCode::POLICY_VIOLATION,
        CloseCode::application(4001).unwrap(),
    ];
    round_trips(&codes);
    assert_snapshot!("close_code", json(&codes));
    let classes = [
        CloseClass::Normal,
        CloseClass::Retryable,
        CloseClass::Terminal,
        CloseClass::Application,
    ];
    round_trips(&classes);
    assert_snapshot!("close_class", json(&classes));
    let frames = [
        CloseFrame::normal(),
        CloseFrame::new(CloseCode::GOING_AWAY, "shutting down").unwrap(),
    ];
    round_trips(&frames);
    assert_snapshot!("close_frame", json(&frames));
}

/// G9: deserializing a Close frame runs the same validation as `CloseFrame::new`, so
/// a reserved code or an oversized reason cannot sneak in through serde.
#[test]
fn close_frame_deserialization_validates_g9() {
    assert!(serde_json::from_str::<CloseFrame>(r#"{"code":1006,"reason":""}"#).is_err());
    assert!(serde_json::from_str::<CloseFrame>(r#"{"code":999}"#).is_err());
    let long = format!(r#"{{"code":1000,"reason":"{}"}}"#, "x".repeat(124));
    assert!(serde_json::from_str::<CloseFrame>(&long).is_err());
    let frame: CloseFrame = serde_json::from_str(r#"{"code":1000}"#).unwrap();
    assert_eq!(frame, CloseFrame::normal());
}

/// G9: ids, machine states, input kinds, reject reasons and transport losses.
#[test]
fn identifier_wire_forms_g9() {
    round_trips(&[ConnectionId::new(42)]);
    assert_snapshot!("connection_id", json(&[ConnectionId::new(42)]));
    round_trips(&MachineState::ALL);
    assert_snapshot!("machine_state", json(&MachineState::ALL));
    round_trips(&InputKind::ALL);
    assert_snapshot!("input_kind", json(&InputKind::ALL));
    let reasons = [
        RejectReason::NotYet,
        RejectReason::AlreadyDone,
        RejectReason::NotOpen,
        RejectReason::NoCloseOwed,
        RejectReason::Closing,
        RejectReason::Closed,
        RejectReason::Unhandled,
    ];
    round_trips(&reasons);
    assert_snapshot!("reject_reason", json(&reasons));
    round_trips(&[
        TransportLoss::Eof,
        TransportLoss::Error,
        TransportLoss::Dropped,
    ]);
    assert_snapshot!(
        "transport_loss",
        json(&[
            TransportLoss::Eof,
            TransportLoss::Error,
            TransportLoss::Dropped
        ])
    );
}

/// G9: the transition table itself (rows, outcomes) has a stable serialized form, so
/// tooling that reads it (the formal model's generator) sees every change.
#[test]
fn transition_table_wire_form_g9() {
    let table = transition_table();
    round_trips(&table);
    assert_snapshot!("transition_table", json(&table));
}

/// G9: close records — cause, frames, how it ended — as an operator's tooling sees them.
#[test]
fn close_record_wire_form_g9() {
    let now = Instant::now();
    let mut records = Vec::new();

    // A clean local close.
    let conn = Connection::new(ConnectionId::new(1), Config::default())
        .accept(now)
        .unwrap();
    let mut closing = conn.close(CloseFrame::new(CloseCode::GOING_AWAY, "bye").unwrap(), now);
    closing.poll_transmit(now);
    closing
        .handle_peer_close(
            Some(CloseFrame::new(CloseCode::GOING_AWAY, "").unwrap()),
            now,
        )
        .unwrap();
    records.push(closing.close_record().unwrap().clone());

    // A readiness deadline whose close handshake timed out.
    let mut conn = Connection::new(ConnectionId::new(2), Config::default())
        .accept(now)
        .unwrap();
    let deadline = conn.poll_timeout().unwrap();
    conn.handle_timeout(deadline);
    conn.poll_transmit(deadline);
    conn.handle_timeout(conn.poll_timeout().unwrap());
    records.push(conn.close_record().unwrap().clone());

    // A transport lost mid-session.
    let mut conn = Connection::new(ConnectionId::new(3), Config::default())
        .accept(now)
        .unwrap();
    conn.handle_transport_lost(TransportLoss::Error, now)
        .unwrap();
    records.push(conn.close_record().unwrap().clone());

    // A refused upgrade.
    let closed =
        Connection::new(ConnectionId::new(4), Config::default()).close(CloseFrame::normal(), now);
    records.push(closed.close_record().unwrap().clone());

    round_trips(&records);
    assert_snapshot!("close_record", json(&records));
}

/// G9: every close cause and every way a close ends.
#[test]
fn close_cause_and_end_wire_forms_g9() {
    let causes = [
        CloseCause::Local,
        CloseCause::SlowConsumer,
        CloseCause::InboundOverflow,
        CloseCause::Peer,
        CloseCause::AuthFailed,
        CloseCause::ReadinessDeadline,
        CloseCause::CredentialExpired,
        CloseCause::TransportLost(TransportLoss::Eof),
        CloseCause::TransportLost(TransportLoss::Error),
        CloseCause::Refused,
        CloseCause::NotAdmitted,
        CloseCause::Shutdown,
        CloseCause::TransportLost(TransportLoss::Dropped),
        // New with the one table of the crate's own closes (deliberate, additive).
        CloseCause::IdleTimeout,
        CloseCause::PreAuthLimit,
        CloseCause::HandlerPanic,
        // New with the RFC 6455 §7.4.1 close codes (deliberate, additive).
        CloseCause::ProtocolError,
        CloseCause::InvalidPayload,
        CloseCause::MessageTooBig,
    ];
    round_trips(&causes);
    assert_snapshot!("close_cause", json(&causes));
    // One source for names: `as_str` is the serde form's tag (G9).
    for cause in causes {
        let serde = serde_json::to_value(cause).unwrap();
        let tag = match &serde {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Object(map) => map.keys().next().unwrap().clone(),
            other => panic!("unexpected serde form {other}"),
        };
        assert_eq!(cause.as_str(), tag, "G9: {cause:?}'s name is its serde tag");
    }
    let ends = [
        CloseEnd::Clean,
        CloseEnd::TimedOut,
        CloseEnd::TransportLost(TransportLoss::Eof),
        CloseEnd::NeverOpened,
    ];
    round_trips(&ends);
    assert_snapshot!("close_end", json(&ends));
}

/// G9: the registry's errors, states, reports and snapshot.
#[test]
fn registry_wire_forms_g9() {
    let errors = [
        RegistryError::NotOpen,
        RegistryError::HoldFull,
        RegistryError::AtCapacity,
        RegistryError::UserLimit,
        RegistryError::ShuttingDown,
        RegistryError::Closed,
        RegistryError::AlreadyRegistered,
        RegistryError::DuplicateId,
        RegistryError::NotRegistered,
    ];
    round_trips(&errors);
    for e in errors {
        assert_eq!(
            serde_json::to_value(e).unwrap(),
            e.as_str(),
            "name() is the serde form"
        );
    }
    assert_snapshot!("registry_error", json(&errors));
    let states = [
        RegistryState::Starting,
        RegistryState::Open,
        RegistryState::Draining,
    ];
    round_trips(&states);
    assert_snapshot!("registry_state", json(&states));

    // A snapshot with every field non-trivial.
    let now = Instant::now();
    let registry = Registry::new(RegistryConfig::default());
    registry.open();
    let ready = Connection::new(ConnectionId::new(1), Config::default())
        .accept(now)
        .unwrap();
    let r1 = registry.register(&ready, now).unwrap();
    let ready = ready.authenticate(None, now).unwrap();
    registry.identify(&ready, "ada").unwrap();
    let ready = ready.ready(now).unwrap();
    registry.join(ready.id(), "room").unwrap();
    let waiting = Connection::new(ConnectionId::new(2), Config::default())
        .accept(now)
        .unwrap();
    let r2 = registry.register(&waiting, now).unwrap();
    let gone = Connection::new(ConnectionId::new(3), Config::default())
        .accept(now)
        .unwrap();
    let r3 = registry.register(&gone, now).unwrap();
    gone.transport()
        .handle_transport_lost(TransportLoss::Eof, now)
        .unwrap();
    // A registration that fails closing nothing: counted apart from the refusals
    // (`totals.rejected`, deliberate and additive).
    let twin = Connection::new(ConnectionId::new(1), Config::default())
        .accept(now)
        .unwrap();
    assert_eq!(
        registry.register(&twin, now).unwrap_err(),
        RegistryError::DuplicateId
    );
    let report = registry.broadcast(Message::text("hi"));
    let snapshot = registry.snapshot();
    let back: ws_lifecycle::registry::RegistrySnapshot =
        serde_json::from_str(&serde_json::to_string(&snapshot).unwrap()).unwrap();
    assert_eq!(back, snapshot);
    assert_snapshot!("broadcast_report", serde_json::to_string(&report).unwrap());
    assert_snapshot!(
        "registry_snapshot",
        serde_json::to_string_pretty(&snapshot).unwrap()
    );
    let drain = registry.finish_drain_at(now);
    assert_snapshot!("drain_report", serde_json::to_string(&drain).unwrap());
    drop((r1, r2, r3, ready, waiting, gone));
}

/// G9: the one table of the closes the crate raises itself — every row's cause, code
/// and reason, as a snapshot, and the table in `CrateClose`'s documentation agrees
/// with it row by row.
#[test]
fn crate_closes_table_g9() {
    let rows: Vec<String> = CrateClose::ALL
        .iter()
        .map(|close| {
            format!(
                "| `{close:?}` | `{}` | {} | {} | {} |",
                close.cause().as_str(),
                close.code().as_u16(),
                close.reason(),
                if close.cause().flushes_queue() {
                    "yes"
                } else {
                    "no"
                }
            )
        })
        .collect();
    assert_snapshot!("crate_closes", rows.join("\n"));
    let doc = include_str!("../src/core/closes.rs");
    for row in &rows {
        assert!(
            doc.contains(&format!("/// {row}")),
            "the documented table of src/core/closes.rs lacks the row {row}"
        );
    }
    for close in CrateClose::ALL {
        assert_eq!(close.frame().code(), close.code());
        assert_eq!(close.frame().reason(), close.reason());
    }
}
