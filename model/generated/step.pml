/* Generated from ws_lifecycle::core::transition_table() by tests/model_table.rs: do not edit.
 * Regenerate with `UPDATE_MODEL=1 cargo test --test model_table`.
 * 8 states x 11 inputs = 88 cells, 31 of them transitions.
 * The numbering below is pinned: state n is MachineState::ALL[n], input n is
 * InputKind::ALL[n]; tests/model_traces.rs reads the same names. */

/* Machine states (ws_lifecycle::core::MachineState), in MachineState::ALL order. */
#define S_CONNECTING           0  /* MachineState::Connecting = "connecting", phase connecting */
#define S_ACCEPTED             1  /* MachineState::Accepted = "accepted", phase accepted */
#define S_AUTHENTICATED        2  /* MachineState::Authenticated = "authenticated", phase authenticated */
#define S_READY                3  /* MachineState::Ready = "ready", phase ready */
#define S_SENDING_CLOSE        4  /* MachineState::SendingClose = "sending_close", phase closing */
#define S_AWAITING_PEER_CLOSE  5  /* MachineState::AwaitingPeerClose = "awaiting_peer_close", phase closing */
#define S_REPLYING_CLOSE       6  /* MachineState::ReplyingClose = "replying_close", phase closing */
#define S_CLOSED               7  /* MachineState::Closed = "closed", phase closed */
#define N_STATES 8

/* Inputs (ws_lifecycle::core::InputKind), in InputKind::ALL order. */
#define I_ACCEPT               0  /* InputKind::Accept = "accept" */
#define I_AUTH_SUCCEEDED       1  /* InputKind::AuthSucceeded = "auth_succeeded" */
#define I_AUTH_FAILED          2  /* InputKind::AuthFailed = "auth_failed" */
#define I_SERVICES_READY       3  /* InputKind::ServicesReady = "services_ready" */
#define I_CLOSE                4  /* InputKind::Close = "close" */
#define I_PEER_CLOSE           5  /* InputKind::PeerClose = "peer_close" */
#define I_CLOSE_SENT           6  /* InputKind::CloseSent = "close_sent" */
#define I_CLOSE_TIMEOUT        7  /* InputKind::CloseTimeout = "close_timeout" */
#define I_READINESS_DEADLINE   8  /* InputKind::ReadinessDeadline = "readiness_deadline" */
#define I_CREDENTIAL_EXPIRED   9  /* InputKind::CredentialExpired = "credential_expired" */
#define I_TRANSPORT_LOST       10  /* InputKind::TransportLost = "transport_lost" */
#define N_INPUTS 11

/* Outcomes (ws_lifecycle::core::Outcome) and reject reasons (RejectReason). */
#define O_TRANSITION 0  /* Outcome::Transition */
#define O_UNCHANGED  1  /* Outcome::Unchanged */
#define O_REJECTED   2  /* Outcome::Rejected */
#define R_NONE 0
#define R_NOT_YET        1  /* RejectReason::NotYet = "not_yet" */
#define R_ALREADY_DONE   2  /* RejectReason::AlreadyDone = "already_done" */
#define R_NOT_OPEN       3  /* RejectReason::NotOpen = "not_open" */
#define R_NO_CLOSE_OWED  4  /* RejectReason::NoCloseOwed = "no_close_owed" */
#define R_CLOSING        5  /* RejectReason::Closing = "closing" */
#define R_CLOSED         6  /* RejectReason::Closed = "closed" */
#define R_UNHANDLED      7  /* RejectReason::Unhandled = "unhandled" */

/* Phases (ws_lifecycle::Phase codes); IN_P_x(s): MachineState::phase() of s is x. */
#define P_CONNECTING     0  /* Phase::Connecting */
#define P_ACCEPTED       1  /* Phase::Accepted */
#define P_AUTHENTICATED  2  /* Phase::Authenticated */
#define P_READY          3  /* Phase::Ready */
#define P_CLOSING        4  /* Phase::Closing */
#define P_CLOSED         5  /* Phase::Closed */
#define IN_P_CONNECTING(s) ((s) == S_CONNECTING)
#define IN_P_ACCEPTED(s) ((s) == S_ACCEPTED)
#define IN_P_AUTHENTICATED(s) ((s) == S_AUTHENTICATED)
#define IN_P_READY(s) ((s) == S_READY)
#define IN_P_CLOSING(s) ((s) == S_SENDING_CLOSE || (s) == S_AWAITING_PEER_CLOSE || (s) == S_REPLYING_CLOSE)
#define IN_P_CLOSED(s) ((s) == S_CLOSED)

/* The transition relation: (state s, input i) -> outcome. Updates s on a
 * transition; sets outcome (O_*) and reason (R_*, R_NONE unless rejected). */
inline step(s, i, outcome, reason) {
    if
    :: s == S_CONNECTING ->
        if
        :: i == I_ACCEPT               -> s = S_ACCEPTED; outcome = O_TRANSITION; reason = R_NONE
        :: i == I_AUTH_SUCCEEDED       -> outcome = O_REJECTED; reason = R_NOT_YET
        :: i == I_AUTH_FAILED          -> outcome = O_REJECTED; reason = R_NOT_YET
        :: i == I_SERVICES_READY       -> outcome = O_REJECTED; reason = R_NOT_YET
        :: i == I_CLOSE                -> s = S_CLOSED; outcome = O_TRANSITION; reason = R_NONE
        :: i == I_PEER_CLOSE           -> outcome = O_REJECTED; reason = R_NOT_OPEN
        :: i == I_CLOSE_SENT           -> outcome = O_REJECTED; reason = R_NOT_OPEN
        :: i == I_CLOSE_TIMEOUT        -> outcome = O_UNCHANGED; reason = R_NONE
        :: i == I_READINESS_DEADLINE   -> outcome = O_UNCHANGED; reason = R_NONE
        :: i == I_CREDENTIAL_EXPIRED   -> outcome = O_UNCHANGED; reason = R_NONE
        :: i == I_TRANSPORT_LOST       -> s = S_CLOSED; outcome = O_TRANSITION; reason = R_NONE
        fi
    :: s == S_ACCEPTED ->
        if
        :: i == I_ACCEPT               -> outcome = O_REJECTED; reason = R_ALREADY_DONE
        :: i == I_AUTH_SUCCEEDED       -> s = S_AUTHENTICATED; outcome = O_TRANSITION; reason = R_NONE
        :: i == I_AUTH_FAILED          -> s = S_SENDING_CLOSE; outcome = O_TRANSITION; reason = R_NONE
        :: i == I_SERVICES_READY       -> outcome = O_REJECTED; reason = R_NOT_YET
        :: i == I_CLOSE                -> s = S_SENDING_CLOSE; outcome = O_TRANSITION; reason = R_NONE
        :: i == I_PEER_CLOSE           -> s = S_REPLYING_CLOSE; outcome = O_TRANSITION; reason = R_NONE
        :: i == I_CLOSE_SENT           -> outcome = O_REJECTED; reason = R_NO_CLOSE_OWED
        :: i == I_CLOSE_TIMEOUT        -> outcome = O_UNCHANGED; reason = R_NONE
        :: i == I_READINESS_DEADLINE   -> s = S_SENDING_CLOSE; outcome = O_TRANSITION; reason = R_NONE
        :: i == I_CREDENTIAL_EXPIRED   -> outcome = O_UNCHANGED; reason = R_NONE
        :: i == I_TRANSPORT_LOST       -> s = S_CLOSED; outcome = O_TRANSITION; reason = R_NONE
        fi
    :: s == S_AUTHENTICATED ->
        if
        :: i == I_ACCEPT               -> outcome = O_REJECTED; reason = R_ALREADY_DONE
        :: i == I_AUTH_SUCCEEDED       -> outcome = O_UNCHANGED; reason = R_NONE
        :: i == I_AUTH_FAILED          -> s = S_SENDING_CLOSE; outcome = O_TRANSITION; reason = R_NONE
        :: i == I_SERVICES_READY       -> s = S_READY; outcome = O_TRANSITION; reason = R_NONE
        :: i == I_CLOSE                -> s = S_SENDING_CLOSE; outcome = O_TRANSITION; reason = R_NONE
        :: i == I_PEER_CLOSE           -> s = S_REPLYING_CLOSE; outcome = O_TRANSITION; reason = R_NONE
        :: i == I_CLOSE_SENT           -> outcome = O_REJECTED; reason = R_NO_CLOSE_OWED
        :: i == I_CLOSE_TIMEOUT        -> outcome = O_UNCHANGED; reason = R_NONE
        :: i == I_READINESS_DEADLINE   -> s = S_SENDING_CLOSE; outcome = O_TRANSITION; reason = R_NONE
        :: i == I_CREDENTIAL_EXPIRED   -> s = S_SENDING_CLOSE; outcome = O_TRANSITION; reason = R_NONE
        :: i == I_TRANSPORT_LOST       -> s = S_CLOSED; outcome = O_TRANSITION; reason = R_NONE
        fi
    :: s == S_READY ->
        if
        :: i == I_ACCEPT               -> outcome = O_REJECTED; reason = R_ALREADY_DONE
        :: i == I_AUTH_SUCCEEDED       -> outcome = O_UNCHANGED; reason = R_NONE
        :: i == I_AUTH_FAILED          -> s = S_SENDING_CLOSE; outcome = O_TRANSITION; reason = R_NONE
        :: i == I_SERVICES_READY       -> outcome = O_REJECTED; reason = R_ALREADY_DONE
        :: i == I_CLOSE                -> s = S_SENDING_CLOSE; outcome = O_TRANSITION; reason = R_NONE
        :: i == I_PEER_CLOSE           -> s = S_REPLYING_CLOSE; outcome = O_TRANSITION; reason = R_NONE
        :: i == I_CLOSE_SENT           -> outcome = O_REJECTED; reason = R_NO_CLOSE_OWED
        :: i == I_CLOSE_TIMEOUT        -> outcome = O_UNCHANGED; reason = R_NONE
        :: i == I_READINESS_DEADLINE   -> outcome = O_UNCHANGED; reason = R_NONE
        :: i == I_CREDENTIAL_EXPIRED   -> s = S_SENDING_CLOSE; outcome = O_TRANSITION; reason = R_NONE
        :: i == I_TRANSPORT_LOST       -> s = S_CLOSED; outcome = O_TRANSITION; reason = R_NONE
        fi
    :: s == S_SENDING_CLOSE ->
        if
        :: i == I_ACCEPT               -> outcome = O_REJECTED; reason = R_CLOSING
        :: i == I_AUTH_SUCCEEDED       -> outcome = O_REJECTED; reason = R_CLOSING
        :: i == I_AUTH_FAILED          -> outcome = O_UNCHANGED; reason = R_NONE
        :: i == I_SERVICES_READY       -> outcome = O_REJECTED; reason = R_CLOSING
        :: i == I_CLOSE                -> outcome = O_UNCHANGED; reason = R_NONE
        :: i == I_PEER_CLOSE           -> s = S_REPLYING_CLOSE; outcome = O_TRANSITION; reason = R_NONE
        :: i == I_CLOSE_SENT           -> s = S_AWAITING_PEER_CLOSE; outcome = O_TRANSITION; reason = R_NONE
        :: i == I_CLOSE_TIMEOUT        -> s = S_CLOSED; outcome = O_TRANSITION; reason = R_NONE
        :: i == I_READINESS_DEADLINE   -> outcome = O_UNCHANGED; reason = R_NONE
        :: i == I_CREDENTIAL_EXPIRED   -> outcome = O_UNCHANGED; reason = R_NONE
        :: i == I_TRANSPORT_LOST       -> s = S_CLOSED; outcome = O_TRANSITION; reason = R_NONE
        fi
    :: s == S_AWAITING_PEER_CLOSE ->
        if
        :: i == I_ACCEPT               -> outcome = O_REJECTED; reason = R_CLOSING
        :: i == I_AUTH_SUCCEEDED       -> outcome = O_REJECTED; reason = R_CLOSING
        :: i == I_AUTH_FAILED          -> outcome = O_UNCHANGED; reason = R_NONE
        :: i == I_SERVICES_READY       -> outcome = O_REJECTED; reason = R_CLOSING
        :: i == I_CLOSE                -> outcome = O_UNCHANGED; reason = R_NONE
        :: i == I_PEER_CLOSE           -> s = S_CLOSED; outcome = O_TRANSITION; reason = R_NONE
        :: i == I_CLOSE_SENT           -> outcome = O_REJECTED; reason = R_NO_CLOSE_OWED
        :: i == I_CLOSE_TIMEOUT        -> s = S_CLOSED; outcome = O_TRANSITION; reason = R_NONE
        :: i == I_READINESS_DEADLINE   -> outcome = O_UNCHANGED; reason = R_NONE
        :: i == I_CREDENTIAL_EXPIRED   -> outcome = O_UNCHANGED; reason = R_NONE
        :: i == I_TRANSPORT_LOST       -> s = S_CLOSED; outcome = O_TRANSITION; reason = R_NONE
        fi
    :: s == S_REPLYING_CLOSE ->
        if
        :: i == I_ACCEPT               -> outcome = O_REJECTED; reason = R_CLOSING
        :: i == I_AUTH_SUCCEEDED       -> outcome = O_REJECTED; reason = R_CLOSING
        :: i == I_AUTH_FAILED          -> outcome = O_UNCHANGED; reason = R_NONE
        :: i == I_SERVICES_READY       -> outcome = O_REJECTED; reason = R_CLOSING
        :: i == I_CLOSE                -> outcome = O_UNCHANGED; reason = R_NONE
        :: i == I_PEER_CLOSE           -> outcome = O_UNCHANGED; reason = R_NONE
        :: i == I_CLOSE_SENT           -> s = S_CLOSED; outcome = O_TRANSITION; reason = R_NONE
        :: i == I_CLOSE_TIMEOUT        -> s = S_CLOSED; outcome = O_TRANSITION; reason = R_NONE
        :: i == I_READINESS_DEADLINE   -> outcome = O_UNCHANGED; reason = R_NONE
        :: i == I_CREDENTIAL_EXPIRED   -> outcome = O_UNCHANGED; reason = R_NONE
        :: i == I_TRANSPORT_LOST       -> s = S_CLOSED; outcome = O_TRANSITION; reason = R_NONE
        fi
    :: s == S_CLOSED ->
        if
        :: i == I_ACCEPT               -> outcome = O_REJECTED; reason = R_CLOSED
        :: i == I_AUTH_SUCCEEDED       -> outcome = O_REJECTED; reason = R_CLOSED
        :: i == I_AUTH_FAILED          -> outcome = O_UNCHANGED; reason = R_NONE
        :: i == I_SERVICES_READY       -> outcome = O_REJECTED; reason = R_CLOSED
        :: i == I_CLOSE                -> outcome = O_UNCHANGED; reason = R_NONE
        :: i == I_PEER_CLOSE           -> outcome = O_UNCHANGED; reason = R_NONE
        :: i == I_CLOSE_SENT           -> outcome = O_REJECTED; reason = R_NO_CLOSE_OWED
        :: i == I_CLOSE_TIMEOUT        -> outcome = O_UNCHANGED; reason = R_NONE
        :: i == I_READINESS_DEADLINE   -> outcome = O_UNCHANGED; reason = R_NONE
        :: i == I_CREDENTIAL_EXPIRED   -> outcome = O_UNCHANGED; reason = R_NONE
        :: i == I_TRANSPORT_LOST       -> outcome = O_UNCHANGED; reason = R_NONE
        fi
    fi
}

/* Names, for the witness traces (printf; silent during verification). */
inline print_state(x) {
    if
    :: x == S_CONNECTING -> printf("connecting")
    :: x == S_ACCEPTED -> printf("accepted")
    :: x == S_AUTHENTICATED -> printf("authenticated")
    :: x == S_READY -> printf("ready")
    :: x == S_SENDING_CLOSE -> printf("sending_close")
    :: x == S_AWAITING_PEER_CLOSE -> printf("awaiting_peer_close")
    :: x == S_REPLYING_CLOSE -> printf("replying_close")
    :: x == S_CLOSED -> printf("closed")
    fi
}
inline print_input(x) {
    if
    :: x == I_ACCEPT -> printf("accept")
    :: x == I_AUTH_SUCCEEDED -> printf("auth_succeeded")
    :: x == I_AUTH_FAILED -> printf("auth_failed")
    :: x == I_SERVICES_READY -> printf("services_ready")
    :: x == I_CLOSE -> printf("close")
    :: x == I_PEER_CLOSE -> printf("peer_close")
    :: x == I_CLOSE_SENT -> printf("close_sent")
    :: x == I_CLOSE_TIMEOUT -> printf("close_timeout")
    :: x == I_READINESS_DEADLINE -> printf("readiness_deadline")
    :: x == I_CREDENTIAL_EXPIRED -> printf("credential_expired")
    :: x == I_TRANSPORT_LOST -> printf("transport_lost")
    fi
}
inline print_reason(x) {
    if
    :: x == R_NOT_YET -> printf("not_yet")
    :: x == R_ALREADY_DONE -> printf("already_done")
    :: x == R_NOT_OPEN -> printf("not_open")
    :: x == R_NO_CLOSE_OWED -> printf("no_close_owed")
    :: x == R_CLOSING -> printf("closing")
    :: x == R_CLOSED -> printf("closed")
    :: x == R_UNHANDLED -> printf("unhandled")
    fi
}
