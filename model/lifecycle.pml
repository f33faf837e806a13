/*
 * model/lifecycle.pml: the ws-lifecycle connection protocol, for SPIN.
 *
 * One connection as the crate runs it (src/core/, src/shared/), the
 * application's concurrent handles, the deadlines, and a peer across a bounded wire
 * in both directions. The connection's transition relation is NOT written here: it is
 * generated from the Rust table (ws_lifecycle::transition_table) into
 * generated/step.pml by tests/model_table.rs. What is written here is what the table
 * does not show: the record of the first close (G4), the deadlines each state arms
 * (G5), the outbox, the pre-ready buffer and their gates (G2, G3), and the
 * environment. docs/model.md explains every choice.
 *
 *   model/check.sh           every property (CI)
 *   model/check.sh --broken  each property against the variant built to break it
 *   model/traces.sh          regenerate the witness traces in model/traces/
 *
 * Processes. They share the connection's state the way the crate's handles share
 * one lock: every access to the connection is one d_step (one critical section).
 *   owner            the application task holding the type-state Connection<S>: it
 *                    may do what the typed API allows in each state (accept or refuse;
 *                    authenticate, with or without an expiring credential, reject or
 *                    close; ready or close; re-authenticate, fail re-authentication or
 *                    close), or stop calling at any point; a refused transition
 *                    (Gone) ends it
 *   handle(h1), handle(h2)
 *                    two application handles: an Emitter from accept on, a Sender
 *                    from Ready on; h1 sends H1_MSGS messages, h2 H2_MSGS, and once
 *                    it has a Sender each may close; in any order, stopping any time
 *   driver           the transport task (Transport): writes what next_frame yields
 *                    while the wire has room, feeds the peer's Close and the loss of
 *                    the transport, and once Closed takes back what was never
 *                    written (take_unsent)
 *   readiness_timer, credential_timer, close_timer
 *                    fire their deadline at any moment while it is armed: time is
 *                    abstracted away, so every order of deadlines and inputs is
 *                    possible
 *   peer             reads our frames (or stops reading), may send Close at any time
 *                    once the upgrade is accepted (first, crossing ours, late, or
 *                    never), may vanish
 *   monitor          when nothing else can move, checks the system rests in a good
 *                    state (no invalid end state)
 *
 * Trace lines: every step of the connection prints one line starting with "@ "
 * (printf is silent during verification). model/traces.sh keeps them; the format is
 * in docs/model.md and tests/model_traces.rs reads it.
 */

#include "generated/step.pml"

/* ---- bounds ------------------------------------------------------------------ */
#ifndef H1_MSGS
#define H1_MSGS 2          /* messages h1 sends: h1.0, h1.1 (ids 0, 1) */
#endif
#ifndef H2_MSGS
#define H2_MSGS 1          /* messages h2 sends: h2.0 (id H1_MSGS) */
#endif
#define N_MSGS (H1_MSGS + H2_MSGS)
#define msgs_of(h) ((h) == A_H1 -> H1_MSGS : H2_MSGS)
#define msg_id(h, n) ((h) == A_H1 -> (n) : H1_MSGS + (n))
#define sender_of(m) ((m) < H1_MSGS -> A_H1 : A_H2)
#define seq_of(m) ((m) < H1_MSGS -> (m) : (m) - H1_MSGS)
#ifndef OUTBOX_CAP
#define OUTBOX_CAP 2       /* Config::outbox_capacity (OverflowPolicy::Reject) */
#endif
#ifndef PENDING_CAP
#define PENDING_CAP 2      /* Config::pending_capacity */
#endif
#ifndef WIRE_CAP
#define WIRE_CAP 2         /* frames in flight towards the peer */
#endif

/* ---- actors and close causes ------------------------------------------------- */
#define A_OWNER 0
#define A_H1 1
#define A_H2 2
#define A_DRIVER 3
#define A_TIMER 4

/* The close record's cause (CloseRecord::cause): who or what closed first (G4).
 * Our Close frame carries the owner's code, a handle's own code, 1008 for an auth
 * failure, the readiness deadline or credential expiry, or the echo of the peer's. */
#define C_NONE 0
#define C_OWNER 1
#define C_H1 2
#define C_H2 3
#define C_AUTH_FAILED 4
#define C_READINESS 5
#define C_CREDENTIAL 6
#define C_PEER 7
#define C_LOST 8
#define C_REFUSED 9

/* Frames on the wire towards the peer. */
#define F_NONE 0
#define F_DATA 1
#define F_CLOSE 2

/* Results of a send (Emitter::emit before Ready; Sender::send from Ready on). */
#define SEND_PENDING 0
#define SEND_QUEUED 1
#define SEND_FULL 2
#define SEND_CLOSED 3

/* ---- superstates, from the generated phase map ----------------------------- */
#define in_handshake(s) (IN_P_ACCEPTED(s) || IN_P_AUTHENTICATED(s))
#define in_open(s)      (in_handshake(s) || IN_P_READY(s))
#define in_closing(s)   (IN_P_CLOSING(s))
#define ending(s)       (IN_P_CLOSING(s) || IN_P_CLOSED(s))

/* Lifecycle::poll_transmit: our Close is owed in these two states (G4). */
#ifdef BREAK_G4_SECOND_CLOSE
/* BROKEN: "closing, so our Close is owed", forgetting that it went out already. */
#define owes_close(s) (in_closing(s))
#else
#define owes_close(s) ((s) == S_SENDING_CLOSE || (s) == S_REPLYING_CLOSE)
#endif

/* Lifecycle::may_write_messages: queued messages are written while Ready, and while
 * sending the Close of a close our side asked for (G3; CloseCause::flushes_queue —
 * the application's handles here; the driver's idle timeout and a handler's panic
 * are such closes too). */
#define local_cause(c) ((c) == C_OWNER || (c) == C_H1 || (c) == C_H2)
#ifdef BREAK_G3_SEND_WHILE_CLOSING
/* BROKEN: whatever is queued is written until the connection is closed. */
#define may_write (st != S_CLOSED)
#else
#define may_write (st == S_READY || (st == S_SENDING_CLOSE && local_cause(rec_cause)))
#endif

/* Lifecycle::check_send: send is allowed in Ready only (G1, G3). */
#ifdef BREAK_G3_SEND_WHILE_CLOSING
/* BROKEN: the send gate also lets messages in while the connection is closing. */
#define send_gate (st == S_READY || in_closing(st))
#else
#define send_gate (st == S_READY)
#endif

/* ---- the connection's state (what the lock guards) ------------------------- */
byte st = S_CONNECTING;      /* the machine state (MachineState) */
bool cred_armed;             /* an expiring credential is on record (G5) */
byte rec_cause;              /* CloseRecord::cause: set once, by the first close (G4) */
chan outbox = [OUTBOX_CAP] of { byte };    /* messages for the peer (G3) */
chan pending = [PENDING_CAP] of { byte };  /* events emitted before Ready (G2) */

/* ---- the wire ----------------------------------------------------------------- */
chan to_peer = [WIRE_CAP] of { byte, byte };  /* frame kind, message id or cause */
chan to_conn = [1] of { byte };               /* the peer's Close */
bool vanished;                                /* the peer is gone: the transport fails */

/* ---- observers (ghost state the properties read; no influence on behaviour) -- */
byte handed;        /* messages handed to send or emit (G3) */
byte written;       /* data frames written by the driver */
byte returned;      /* messages handed back: refused by send, or by take_unsent */
byte last_out;      /* the kind of the last frame written (G3) */
byte closes_out;    /* Close frames written by us, saturating at 2 (G4) */
byte out_cause;     /* the cause our Close carried (G4) */
byte first_close;   /* the cause of the input that started the close (G4) */
bool asked_close;   /* the application asked to close (G3/G5) */
bool was_accepted;  /* the handshake was accepted: emitters exist (G1) */
bool was_ready;     /* the connection became Ready: senders exist (G2) */
bool wrote_early;   /* a data frame was written before Ready (G2) */
byte pre_count;     /* events buffered before Ready so far, their emission order */
byte pre_flushed;   /* events moved to the outbox at Ready (G2) */
byte pre_idx[N_MSGS];  /* 1 + emission index of a buffered event, 0 for a later send */
byte rcv_kind;      /* the last data frame the peer received: 1 pre-ready event, 2 later */
byte rcv_idx;       /* ... its emission index, for a pre-ready event */
byte rcv_pre;       /* pre-ready events the peer received (G2) */
bool rd_fired;      /* the readiness deadline closed the connection (G5) */
bool finished;      /* the driver is done and took the unsent messages back */
byte handles_done;  /* handle processes that finished */

/* Scratch for one step (reset at the end of every d_step: not part of the state). */
byte t_from, t_out, t_reason, t_m;

#ifdef TRAPS
/* The (state, input) pair of the last input, for the trap properties (traces.sh). */
byte fired_s = 255, fired_i = 255;
#define TRAP_RECORD(s, i) fired_s = s; fired_i = i
#else
#define TRAP_RECORD(s, i) skip
#endif

/* ---- trace lines (model/traces.sh; printf is silent while verifying) -------- */
inline print_actor(a) {
    if
    :: a == A_OWNER -> printf("owner")
    :: a == A_H1 -> printf("h1")
    :: a == A_H2 -> printf("h2")
    :: a == A_DRIVER -> printf("driver")
    :: a == A_TIMER -> printf("timer")
    fi
}
inline print_cause(c) {
    if
    :: c == C_OWNER -> printf("owner")
    :: c == C_H1 -> printf("h1")
    :: c == C_H2 -> printf("h2")
    :: c == C_AUTH_FAILED -> printf("auth_failed")
    :: c == C_READINESS -> printf("readiness_deadline")
    :: c == C_CREDENTIAL -> printf("credential_expired")
    :: c == C_PEER -> printf("peer")
    :: c == C_LOST -> printf("transport_lost")
    :: c == C_REFUSED -> printf("refused")
    :: else -> printf("none")
    fi
}
inline print_msg(m) {
    printf("h%d.%d", sender_of(m), seq_of(m))
}

/* ---- one input to the connection (inside the caller's d_step) -------------- */
/* feed(actor, input, arg): arg is the expiry flag for auth_succeeded, else 0. */
inline feed(actor, input, arg) {
    t_from = st;
    TRAP_RECORD(st, input);
    step(st, input, t_out, t_reason);
    /* The credential: set (or replaced) by an accepted auth success, forgotten when
     * the connection leaves the open superstate (G5). */
    if
    :: input == I_AUTH_SUCCEEDED && t_out != O_REJECTED -> cred_armed = arg
    :: else -> skip
    fi;
    if
    :: !in_open(st) -> cred_armed = false
    :: else -> skip
    fi;
    /* The first close of any kind is recorded once, and stands (G4). */
    if
    :: !ending(t_from) && ending(st) ->
        if
        :: input == I_CLOSE && st == S_CLOSED -> rec_cause = C_REFUSED
        :: input == I_CLOSE && actor == A_OWNER -> rec_cause = C_OWNER
        :: input == I_CLOSE && actor == A_H1 -> rec_cause = C_H1
        :: input == I_CLOSE && actor == A_H2 -> rec_cause = C_H2
        :: input == I_AUTH_FAILED -> rec_cause = C_AUTH_FAILED
        :: input == I_READINESS_DEADLINE -> rec_cause = C_READINESS
        :: input == I_CREDENTIAL_EXPIRED -> rec_cause = C_CREDENTIAL
        :: input == I_PEER_CLOSE -> rec_cause = C_PEER
        :: input == I_TRANSPORT_LOST -> rec_cause = C_LOST
        fi;
        first_close = rec_cause
#ifdef BREAK_G4_OVERWRITE
    /* BROKEN: a later close request overwrites the recorded one. */
    :: ending(t_from) && in_closing(st) && input == I_CLOSE && actor != A_OWNER ->
        rec_cause = actor + 1    /* C_H1 or C_H2 */
#endif
    :: else -> skip
    fi;
    if
    :: t_from == S_CONNECTING && st == S_ACCEPTED -> was_accepted = true
    :: else -> skip
    fi;
    /* Ready: the buffered events move to the outbox under the same lock, ahead of
     * anything sent later (G2; Inner::settle). */
    if
    :: t_from != S_READY && st == S_READY ->
        was_ready = true;
        pre_flushed = len(pending);
#ifndef BREAK_G2_LATE_FLUSH
        do
        :: pending?t_m -> outbox!t_m
        :: empty(pending) -> break
        od;
#endif
        t_m = 0
    :: else -> skip
    fi;
    printf("@ "); print_actor(actor); printf(" "); print_input(input);
    if
    :: input == I_AUTH_SUCCEEDED && arg -> printf(" expiring")
    :: input == I_AUTH_SUCCEEDED && !arg -> printf(" lasting")
    :: input == I_CLOSE_SENT -> printf(" "); print_cause(rec_cause)
    :: else -> skip
    fi;
    if
    :: t_out == O_TRANSITION -> printf(" => transition ")
    :: t_out == O_UNCHANGED -> printf(" => unchanged ")
    :: t_out == O_REJECTED -> printf(" => rejected:"); print_reason(t_reason); printf(" ")
    fi;
    print_state(st); printf("\n");
    t_from = 0; t_out = 0; t_reason = 0
}

/* A handle sends message m: Emitter::emit, which is Sender::send once Ready. */
inline emit(m) {
    handed++;
    if
    :: send_gate && len(outbox) < OUTBOX_CAP -> outbox!m; t_out = SEND_QUEUED
    :: send_gate && len(outbox) == OUTBOX_CAP -> returned++; t_out = SEND_FULL
    :: in_handshake(st) && len(pending) < PENDING_CAP ->
        pending!m; pre_count++; pre_idx[m] = pre_count; t_out = SEND_PENDING
    :: in_handshake(st) && len(pending) == PENDING_CAP -> returned++; t_out = SEND_FULL
    :: !send_gate && !in_handshake(st) -> returned++; t_out = SEND_CLOSED
    fi;
    printf("@ "); print_actor(sender_of(m)); printf(" send "); print_msg(m);
    if
    :: t_out == SEND_PENDING -> printf(" => pending ")
    :: t_out == SEND_QUEUED -> printf(" => queued ")
    :: t_out == SEND_FULL -> printf(" => full ")
    :: t_out == SEND_CLOSED -> printf(" => closed ")
    fi;
    print_state(st); printf("\n");
    t_out = 0
}

/* ---- processes ------------------------------------------------------------------ */

/* A typed transition: Ok when the input moved the connection to `expected`, else Gone
 * (Connection::transition). */
#define OWNER_STEP(input, arg, expected) \
    d_step { feed(A_OWNER, input, arg); gone = (st != expected) }
/* Connection::close, Connection::reject, reauthentication_failed: consume the handle. */
#define OWNER_LAST(input) d_step { asked_close = asked_close || input == I_CLOSE; feed(A_OWNER, input, 0) }

active proctype owner() {
    bool gone;
    /* Connecting: accept the upgrade or refuse it. */
    if
    :: OWNER_STEP(I_ACCEPT, 0, S_ACCEPTED)
    :: OWNER_LAST(I_CLOSE); goto done
    fi;
    if
    :: gone -> goto done
    :: else -> skip
    fi;
    /* Accepted: the credential checks out (expiring or not), or it does not; or the
     * owner closes, or never gets further (the readiness deadline, G5). */
    if
    :: OWNER_STEP(I_AUTH_SUCCEEDED, 1, S_AUTHENTICATED)
    :: OWNER_STEP(I_AUTH_SUCCEEDED, 0, S_AUTHENTICATED)
    :: OWNER_LAST(I_AUTH_FAILED); goto done
    :: OWNER_LAST(I_CLOSE); goto done
    :: goto done
    fi;
    if
    :: gone -> goto done
    :: else -> skip
    fi;
    /* Authenticated: the services are ready, or close, or never get further. */
    if
#ifdef BREAK_G5_RACE
    /* BROKEN: "authenticated? then ready" checked and applied in two critical
     * sections, the second acting on the state the first one saw: the readiness
     * deadline can fire in between and be overruled. */
    :: st == S_AUTHENTICATED ->
        d_step { st = S_AUTHENTICATED; feed(A_OWNER, I_SERVICES_READY, 0); gone = (st != S_READY) }
#else
    :: OWNER_STEP(I_SERVICES_READY, 0, S_READY)
#endif
    :: OWNER_LAST(I_CLOSE); goto done
    :: goto done
    fi;
    if
    :: gone -> goto done
    :: else -> skip
    fi;
    /* Ready: re-authentication (a new expiring credential), a failed one, close, or
     * nothing more. */
    if
    :: d_step { feed(A_OWNER, I_AUTH_SUCCEEDED, 1) }
    :: OWNER_LAST(I_AUTH_FAILED)
    :: OWNER_LAST(I_CLOSE)
    :: skip
    fi;
done:
    skip
}

proctype handle(byte me) {
    byte next;
    /* An Emitter exists once the handshake is accepted; a refused upgrade has none. */
    was_accepted || st == S_CLOSED;
    if
    :: !was_accepted -> goto fin
    :: else -> skip
    fi;
    do
    :: d_step { next < msgs_of(me) -> t_m = msg_id(me, next); emit(t_m); next++; t_m = 0 }
    /* Sender::close: a Sender exists once the connection was Ready. */
    :: d_step { was_ready -> asked_close = true; feed(me, I_CLOSE, 0) }; break
    :: break
    od;
fin:
    handles_done++
}

active proctype driver() {
    byte k;
end_idle:    /* at rest between frames: a valid end state when the monitor agrees */
    do
    /* next_frame: the next queued message, while messages may be written (G3) */
    :: d_step {
        len(to_peer) < WIRE_CAP && may_write && len(outbox) > 0 ->
        outbox?t_m; to_peer!F_DATA,t_m; written++; last_out = F_DATA;
        if
        :: !was_ready -> wrote_early = true
        :: else -> skip
        fi;
        printf("@ driver data "); print_msg(t_m); printf(" => written "); print_state(st); printf("\n");
        t_m = 0
    }
    /* next_frame: our Close, once owed and no message may be written (G3, G4) */
    :: d_step {
        len(to_peer) < WIRE_CAP && owes_close(st) && !(may_write && len(outbox) > 0) ->
        to_peer!F_CLOSE,rec_cause;
        if
        :: closes_out < 2 -> closes_out++
        :: else -> skip
        fi;
        out_cause = rec_cause; last_out = F_CLOSE;
        feed(A_DRIVER, I_CLOSE_SENT, 0)
    }
    /* the peer's Close arrives */
    :: d_step { to_conn?k -> feed(A_DRIVER, I_PEER_CLOSE, 0); k = 0 }
#ifdef BREAK_DEADLOCK
    /* BROKEN: once our Close is out, the driver blocks reading the peer's answer
     * instead of waiting for it together with the close timer. */
    :: st == S_AWAITING_PEER_CLOSE ->
        to_conn?k; d_step { feed(A_DRIVER, I_PEER_CLOSE, 0); k = 0 }
#endif
#ifdef BREAK_G2_LATE_FLUSH
    /* BROKEN: the buffered events are moved to the outbox by the driver after the
     * transition to Ready, in a critical section of their own. */
    :: d_step {
        was_ready && len(pending) > 0 && len(outbox) < OUTBOX_CAP ->
        do
        :: len(pending) > 0 && len(outbox) < OUTBOX_CAP -> pending?t_m; outbox!t_m
        :: len(pending) == 0 || len(outbox) == OUTBOX_CAP -> break
        od;
        t_m = 0
    }
#endif
    /* the transport fails: the peer is gone */
    :: d_step { vanished && st != S_CLOSED -> feed(A_DRIVER, I_TRANSPORT_LOST, 0) }
    /* Closed: whatever was never written comes back (take_unsent, G3). */
    :: d_step {
        st == S_CLOSED ->
        printf("@ driver take_unsent");
        do
        :: pending?t_m -> returned++; printf(" "); print_msg(t_m)
        :: empty(pending) -> break
        od;
#ifndef BREAK_G3_DROP_UNSENT
        do
        :: outbox?t_m -> returned++; printf(" "); print_msg(t_m)
        :: empty(outbox) -> break
        od;
#endif
        printf(" => returned "); print_state(st); printf("\n");
        t_m = 0;
        finished = true
    };
        break
    od
}

active proctype readiness_timer() {
end:
    do
    :: d_step {
        in_handshake(st) ->
        feed(A_TIMER, I_READINESS_DEADLINE, 0);
        rd_fired = true
    }
#ifdef BREAK_G5_IGNORED_TIMER
    /* BROKEN: a deadline that may be skipped, again and again. */
    :: in_handshake(st) -> skip
#endif
    od
}

active proctype credential_timer() {
end:
    do
    :: d_step { cred_armed -> feed(A_TIMER, I_CREDENTIAL_EXPIRED, 0) }
    od
}

active proctype close_timer() {
end:
    do
    :: d_step { in_closing(st) -> feed(A_TIMER, I_CLOSE_TIMEOUT, 0) }
#ifdef BREAK_G3G5_IGNORED_CLOSE_TIMER
    /* BROKEN: the close timeout may be skipped, again and again. */
    :: in_closing(st) -> skip
#endif
    od
}

active proctype peer() {
    byte k, p;
    bool sent_close, silent;
end:
    do
    /* reads our next frame */
    :: d_step {
        len(to_peer) > 0 && !silent ->
        to_peer?k,p;
        if
        :: k == F_DATA && pre_idx[p] != 0 -> rcv_kind = 1; rcv_idx = pre_idx[p]; rcv_pre++
        :: k == F_DATA && pre_idx[p] == 0 -> rcv_kind = 2; rcv_idx = 0
        :: else -> skip
        fi;
        k = 0; p = 0
    }
    /* sends its Close: first, crossing ours, or as the (late) answer to ours */
    :: d_step { was_accepted && !sent_close && !silent -> to_conn!1; sent_close = true }
    /* goes silent for good: reads nothing more, never answers, stays connected */
    :: d_step { !silent -> silent = true }
    /* vanishes: the transport fails */
    :: !silent -> vanished = true; break
    od
}

/* No invalid end state: when no process can move any more, the connection is
 * either closed with the driver done and every handle finished, or Ready and left
 * alone (an open connection nobody closes, with no credential to expire). */
active proctype monitor() {
    timeout ->
    assert(handles_done == 2 &&
           ((st == S_CLOSED && finished) || (st == S_READY && !cred_armed)))
}

init {
    atomic {
        run handle(A_H1);
        run handle(A_H2)
    }
}

/* ---- properties ------------------------------------------------------------------
 * Each is checked by its own pan run (model/check.sh); docs/model.md states each in
 * plain words. Safety properties run with -DSAFETY, liveness ones with -a -f. */

#ifndef TRAPS
/* G3: no data frame ever follows our Close frame. */
ltl g3_no_data_after_close { [] (last_out == F_CLOSE -> [] (last_out != F_DATA)) }

/* G3 accounting: every message handed to send is, at every moment, in exactly one
 * place (written, handed back, queued or buffered); once the driver is done and the
 * handles have finished, it was written or handed back. */
ltl g3_accounting {
    [] ((handed == written + returned + len(outbox) + len(pending)) &&
        ((finished && handles_done == 2) -> handed == written + returned))
}

/* G4: at most one Close frame from us, carrying the cause of the first close. */
ltl g4_single_close {
    [] (closes_out <= 1 && (closes_out == 1 -> out_cause == first_close))
}

/* G2: no data frame is written before Ready; the events buffered before Ready reach
 * the peer in emission order, all of them before anything sent later. */
ltl g2_ready_gating {
    [] (!wrote_early &&
        (rcv_kind == 1 -> rcv_idx == rcv_pre) &&
        (rcv_kind == 2 -> rcv_pre == pre_flushed))
}

/* G5: the deadline and a success racing it have one winner: a connection the
 * readiness deadline closed never becomes Ready. */
ltl g5_deadline_one_winner { [] (rd_fired -> [] (st != S_READY)) }

/* G3/G5 liveness: a close, asked for or begun, always ends in Closed (weak
 * fairness: the close timer is not ignored for ever). */
ltl g3_g5_close_terminates {
    [] ((asked_close || in_closing(st)) -> <> (st == S_CLOSED))
}

/* G5 liveness: once accepted, the handshake always ends, one way or the other
 * (Ready, or closing because of the deadline or anything else). */
ltl g5_readiness_deadline { [] (in_handshake(st) -> <> !in_handshake(st)) }
#else
#include "traps.pml"
#endif
