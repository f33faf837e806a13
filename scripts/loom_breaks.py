#!/usr/bin/env python3
"""Shows that each loom model can fail: applies one deliberate break to src/, runs
the model that should catch it, prints what it reported, and restores the files.

    scripts/loom_breaks.py NAME      # one break
    scripts/loom_breaks.py all       # every break in turn

Works on a copy of the crate under the temp directory (with its own target
directory), so an interrupted run never leaves src/ broken. Not part of the suite
(each break rebuilds the loom target); see docs/loom.md.
"""
import os, shutil, subprocess, sys, tempfile
repo = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
root = os.path.join(tempfile.gettempdir(), 'ws-lifecycle-loom-breaks') + '/'
if os.path.exists(root):
    shutil.rmtree(root)
shutil.copytree(repo, root, ignore=shutil.ignore_patterns('target*', '.git'))
breaks = {
 'model12_reauthentication_keeps_old_expiry': ('src/core/machine.rs', '                // Re-authentication: the new credential\'s expiry replaces the old one.\n                self.credential_expiry = *expires_at;', '                let _ = expires_at;', 'ready::g5_reauthentication_races_credential_expiry', None),
 'model9_close_does_not_wake_async_senders': ('src/shared/mod.rs', '            self.waiters.wake_all(wakeups);\n', '', 'send::g6_send_async_races_close', None),
 'model11_arrival_does_not_wake_receivers': ('src/core/conn.rs', '            self.effects |= Effects::INBOUND;\n', '', 'send::g6_recv_races_inbound_message', None),
 'model3_close_while_awaiting_reopens': ('src/core/machine.rs', '            Input::CloseSent => Self::reject(d, RejectReason::NoCloseOwed),\n            _ => Super,', '            Input::CloseSent => Self::reject(d, RejectReason::NoCloseOwed),\n            Input::Close(_) => Self::go(d, State::sending_close()),\n            _ => Super,', 'close::g4_two_closes_race', None),
 'model1_2_send_gate_open_while_closing': ('src/core/conn.rs', 'if self.check_send().is_err() || !self.has_room() {', 'if self.lifecycle.phase() == Phase::Closed || !self.has_room() {', 'send::g3_send_races', None),
 'model3_first_close_overwritten': ('src/core/machine.rs', '            Input::AuthFailed\n            | Input::Close(_)\n            | Input::ReadinessDeadline', '            Input::Close(frame) => { self.record().frame = Some(frame.clone()); Self::handled(d) }\n            Input::AuthFailed\n            | Input::ReadinessDeadline', 'close::g4_two_closes_race', None),
 'model4_emit_decides_outside_lock': ('src/handle/emitter.rs', 'self.shared.run(|inner, _| inner.conn.emit(event))', 'if self.shared.phase() == crate::core::Phase::Ready { self.shared.run(|inner, _| inner.conn.send(event)) } else { self.shared.run(|inner, _| inner.conn.push_pending(event)) }', 'ready::g2_emit_races_transition_to_ready', None),
 'model5_deadline_survives_ready': ('src/core/machine.rs', '        self.readiness_deadline = None;\n    }', '    }', 'ready::g5_auth_success_races_readiness_deadline', None),
 'model6_no_wake_on_transition': ('src/shared/mod.rs', '            self.waiters.wake_all(wakeups);\n', '', 'ready::g6_wait', None),
 'model7_emit_skips_buffer': ('src/core/conn.rs', '            _ => {\n                self.pending.push_back(message);\n                Ok(())', '            _ => {\n                self.outbox.push_back(message);\n                Ok(())', 'close::g1_accept_races_close', 'may_write'),
 'model13_broadcast_skips_send_gate': ('src/shared/mod.rs', 'inner.try_enqueue(message.clone())', '{ inner.conn.force(message.clone()); Ok::<Option<Waker>, Message>(None) }', 'registry::g7_broadcast_races_close_of_target', None),
 'model14_register_reads_state_outside_lock': ('src/registry/mod.rs', '            let mut index = core.lock();\n            if index.entries.contains_key(&id) {\n                return Err(RegistryError::DuplicateId);\n            }\n            let state = core.state();', '            let state = core.state();\n            let mut index = core.lock();\n            if index.entries.contains_key(&id) {\n                return Err(RegistryError::DuplicateId);\n            }', 'registry::g8_register_races_shutdown', None),
 'model15_identify_indexes_outside_lock': ('src/registry/mod.rs', '                index.set_user(id, Name::from(user));', '                drop(index);\n                self.core.lock().users.entry(Name::from(user)).or_default().push(id);', 'registry::g7_identify_races_close', None),
 'model16_broadcast_decides_by_phase_at_visit': ('src/shared/membership.rs', 'if self.ready_at >= epoch {', 'if false {', 'registry::g7_broadcast_reaches_exactly', None),
 'model17_gate_reads_the_state': ('src/registry/mod.rs', '    fn opened(&self) -> bool {\n        self.0.opened()\n    }', '    fn opened(&self) -> bool {\n        self.0.state() != RegistryState::Starting\n    }', 'registry::g8_drain_before_open', None),
 'model18_batch_parks_only_when_empty_handed': ('src/shared/mod.rs', 'Some(cx) if taken < max => inner.replace_transmit(cx.waker()),', 'Some(cx) if taken == 0 => inner.replace_transmit(cx.waker()),', 'send::g6_batch_driver_parks_without_polling_again', None),
 'model21_busy_driver_not_registered': ('src/shared/mod.rs', '            inner.park_transmit(cx, wakeups);\n            Poll::Pending', '            let _ = cx;\n            Poll::Pending', 'send::g5_busy_driver_still_starts_the_slow_consumer_close', None),
 'model21_busy_driver_gets_no_time': ('src/shared/mod.rs', '            inner.tick(now, wakeups);\n            if inner.conn.phase() == Phase::Closed {', '            if inner.conn.phase() == Phase::Closed {', 'send::g5_busy_driver_still_starts_the_slow_consumer_close', None),
 'model8_no_wake_on_pop': ('src/core/conn.rs', '                    self.effects |= Effects::ROOM;\n', '', 'send::g6_full_outbox_drain_and_async_send', None),
}
extra = {
 'model5_deadline_survives_ready': ('src/core/machine.rs', 'Input::ReadinessDeadline => Self::handled(d), // stale: readiness won (G5)', 'Input::ReadinessDeadline => self.start_close(d, CrateClose::ReadinessDeadline),'),
 'model4_emit_decides_outside_lock': ('src/core/conn.rs', '    // --- outputs', '    pub(crate) fn push_pending(&mut self, m: Message) -> Result<(), SendError> { self.pending.push_back(m); Ok(()) }\n\n    // --- outputs'),
 'model13_broadcast_skips_send_gate': ('src/core/conn.rs', '    // --- outputs', '    pub(crate) fn force(&mut self, m: Message) { self.outbox.push_back(m) }\n\n    // --- outputs'),
 'model7_emit_skips_buffer': ('src/core/lifecycle.rs', '            MachineState::Ready => true,', '            MachineState::Ready | MachineState::Accepted => true,'),
}
files = {}
def patch(path, old, new):
    p = root+path
    if p not in files:
        files[p] = open(p).read()
    s = open(p).read()
    assert old in s, (path, old[:60])
    open(p,'w').write(s.replace(old, new, 1))
def run(name):
  files.clear()
  path, old, new, test, _ = breaks[name]
  try:
    patch(path, old, new)
    if name in extra:
        patch(*extra[name])
    r = subprocess.run(f'RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 CARGO_TARGET_DIR=target-loom cargo test --release --no-default-features --test loom {test} 2>&1', shell=True, cwd=root, capture_output=True, text=True)
    lines = [l for l in r.stdout.splitlines() if 'panicked at loom_tests' in l or 'G1' in l or 'G2' in l or 'G3' in l or 'G4' in l or 'G5' in l or 'G6' in l or 'G7' in l or 'G8' in l or 'deadlock' in l or 'test result' in l]
    print(name, '->', '\n  '.join(lines[:6]))
    # Caught means a model failed (an assertion, or a deadlock loom reports, which
    # aborts the test binary): a break that does not compile proves nothing.
    failed = 'test result: FAILED' in r.stdout or 'deadlock' in r.stdout
    return r.returncode != 0 and failed and 'could not compile' not in r.stdout
  finally:
    for p, s in files.items():
        open(p,'w').write(s)

if __name__ == '__main__':
    names = list(breaks) if sys.argv[1:] == ['all'] else sys.argv[1:]
    missed = [n for n in names if not run(n)]
    if missed:
        sys.exit('NOT caught: ' + ', '.join(missed))
