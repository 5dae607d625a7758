//! Clean exits on SIGINT, SIGTERM and SIGHUP: the temporary files (and folders) registered
//! here are removed before the process dies, and a [`critical`] section (a rename of a
//! finished output, one appended results line) is never cut in the middle.
//!
//! [`install`] (the CLI calls it first thing) points those signals at a handler that only
//! writes the signal's number to a pipe (async-signal-safe); a watcher thread reads it, waits
//! for any critical section to end, removes what is registered, and re-raises the signal
//! with its default action, so the exit status still says "killed by SIGINT". A library user
//! who does not call [`install`] keeps the default behaviour (registration is then a no-op
//! bookkeeping). SIGKILL cannot be caught: what it interrupts is handled by resuming (the
//! eval harness) or is a stray temporary file, never a truncated output under the output's
//! name (outputs are written to a temporary file and renamed).
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Paths to remove on a signal, by registration id.
static REGISTERED: Mutex<Vec<(u64, PathBuf)>> = Mutex::new(Vec::new());
/// Held by critical sections; the watcher takes it before [`REGISTERED`] (always this order).
static CRITICAL: Mutex<()> = Mutex::new(());
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A registered path: removed if a signal ends the process while this lives; dropping it
/// unregisters the path (it does not remove it).
#[must_use = "the path is unregistered when this is dropped"]
pub struct Registration {
    id: u64,
}

/// Registers `path` (a file or a folder) for removal if a signal ends the process.
pub fn register(path: &Path) -> Registration {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    lock(&REGISTERED).push((id, path.to_path_buf()));
    Registration { id }
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&REGISTERED).retain(|(i, _)| *i != self.id);
    }
}

/// Runs `f` so that a signal arriving meanwhile takes effect only after it returns (creating
/// and registering a temporary file; renaming it to the output and unregistering it).
pub fn critical<R>(f: impl FnOnce() -> R) -> R {
    let _g = lock(&CRITICAL);
    f()
}

/// The paths registered now (for tests).
pub fn registered() -> Vec<PathBuf> {
    lock(&REGISTERED).iter().map(|(_, p)| p.clone()).collect()
}

/// Removes every registered path (after any critical section), then returns the lock guards
/// so that no further critical section starts before the process ends.
fn clean_up() -> (
    MutexGuard<'static, ()>,
    MutexGuard<'static, Vec<(u64, PathBuf)>>,
) {
    let c = lock(&CRITICAL);
    let r = lock(&REGISTERED);
    for (_, p) in r.iter() {
        if p.is_dir() {
            let _ = std::fs::remove_dir_all(p);
        } else {
            let _ = std::fs::remove_file(p);
        }
    }
    (c, r)
}

#[cfg(unix)]
mod imp {
    use std::sync::atomic::{AtomicI32, Ordering};

    static PIPE_W: AtomicI32 = AtomicI32::new(-1);
    pub const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

    extern "C" fn on_signal(sig: libc::c_int) {
        let fd = PIPE_W.load(Ordering::Relaxed);
        let b = sig as u8;
        // SAFETY: write(2) is async-signal-safe; a full pipe just drops the byte.
        unsafe {
            libc::write(fd, (&b as *const u8).cast(), 1);
        }
    }

    fn watch(rd: libc::c_int) {
        let mut b = 0u8;
        loop {
            // SAFETY: reads one byte into `b` from our own pipe.
            let n = unsafe { libc::read(rd, (&mut b as *mut u8).cast(), 1) };
            if n == 1 {
                break;
            }
            if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        let sig = b as libc::c_int;
        let _held = super::clean_up();
        // SAFETY: restores the default action and re-raises, so the process ends as the signal
        // would have ended it; `_exit` is the fallback.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
            libc::_exit(128 + sig);
        }
    }

    pub fn install() {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: plain libc calls on our own file descriptors and signal actions.
        unsafe {
            if libc::pipe(fds.as_mut_ptr()) != 0 {
                return;
            }
            for fd in fds {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
            libc::fcntl(fds[1], libc::F_SETFL, libc::O_NONBLOCK);
        }
        PIPE_W.store(fds[1], Ordering::Relaxed);
        let rd = fds[0];
        if std::thread::Builder::new()
            .name("diffc-signals".into())
            .spawn(move || watch(rd))
            .is_err()
        {
            return;
        }
        for sig in SIGNALS {
            // SAFETY: a zeroed sigaction with our handler; the handler is async-signal-safe.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
                sa.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut sa.sa_mask);
                libc::sigaction(sig, &sa, std::ptr::null_mut());
            }
        }
    }
}

/// Installs the signal handling (once; later calls do nothing). Unix only; elsewhere a no-op.
pub fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[cfg(unix)]
        imp::install();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrations_come_and_go() {
        let p = std::env::temp_dir().join(format!("diffc-reg-{}", std::process::id()));
        let r = register(&p);
        assert!(registered().contains(&p));
        let q = critical(|| register(&p.with_extension("b")));
        drop(r);
        assert!(!registered().contains(&p));
        assert!(registered().contains(&p.with_extension("b")));
        drop(q);
        assert!(!registered().contains(&p.with_extension("b")));
    }
}
