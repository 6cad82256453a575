//! The process groups of live environment processes (each process leads
//! its own group: its id is the group's).

use std::collections::BTreeSet;
use std::sync::Mutex;

static LIVE: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

pub(super) fn register(pid: u32) {
    if let Ok(mut live) = LIVE.lock() {
        live.insert(pid);
    }
}

/// Kills group `pid` (once: a group id may be reused after its end).
pub(super) fn kill(pid: u32) {
    let removed = LIVE.lock().map(|mut l| l.remove(&pid)).unwrap_or(false);
    if removed {
        signal_group(pid);
    }
}

pub(super) fn kill_all() {
    // Not `lock().expect`: this runs in a signal handler's thread and
    // must not panic.
    let all: Vec<u32> = match LIVE.lock() {
        Ok(mut l) => std::mem::take(&mut *l).into_iter().collect(),
        Err(p) => std::mem::take(&mut *p.into_inner()).into_iter().collect(),
    };
    for pid in all {
        signal_group(pid);
    }
}

#[cfg(unix)]
fn signal_group(pid: u32) {
    if let Ok(pgid) = libc::pid_t::try_from(pid) {
        // SAFETY: killpg only sends a signal; a group that is gone
        // answers ESRCH, which is ignored.
        unsafe {
            libc::killpg(pgid, libc::SIGKILL);
        }
    }
}

#[cfg(not(unix))]
fn signal_group(_pid: u32) {}
