//! A data file read through a memory map (CSV and Parquet files that can
//! be mapped) and cut short by another program while nnc reads it faults
//! (`SIGBUS`) on its pages past the new end. Without a handler the process
//! dies with "Bus error" and no word of which file or why; with
//! [`guard`], a fault in the map prints `error: FILE: ...` and exits with
//! status 1 (nothing has been written while data is read). A `SIGBUS`
//! anywhere else goes to the handler that was there before (Rust's own,
//! which reports stack overflows), as if this one had never been set.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

/// A mapped data file: its name and the addresses of its map.
struct Mapping {
    name: Box<[u8]>,
    start: usize,
    len: usize,
}

/// The map being read. Each is leaked (a few bytes per file read): the
/// handler may read one at any moment, so none is ever freed.
static CURRENT: AtomicPtr<Mapping> = AtomicPtr::new(std::ptr::null_mut());

/// The `SIGBUS` handler before [`guard`] set its own.
#[cfg(unix)]
static PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();

/// One thread reports; others that fault meanwhile wait for its exit.
static REPORTING: AtomicBool = AtomicBool::new(false);

/// Report a fault in `map` (the bytes of a mapping of `file`) as the file
/// cut short, from now on.
pub fn guard(file: &str, map: &[u8]) {
    let mapping = Mapping { name: file.as_bytes().into(), start: map.as_ptr() as usize, len: map.len() };
    CURRENT.store(Box::into_raw(Box::new(mapping)), Ordering::SeqCst);
    #[cfg(unix)]
    install();
}

#[cfg(unix)]
fn install() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        // SAFETY: a zeroed `sigaction` is a valid empty one; the handler
        // only calls async-signal-safe functions (`write`, `sigaction`,
        // `raise`, `pause`, `_exit`) and reads atomics and leaked memory.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction =
                on_bus_error as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            let mut previous: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGBUS, &action, &mut previous) == 0 {
                let _ = PREVIOUS.set(previous);
            }
        }
    });
}

#[cfg(unix)]
extern "C" fn on_bus_error(signal: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid `siginfo_t` to an `SA_SIGINFO`
    // handler; `CURRENT` is null or a leaked `Mapping`.
    let (address, mapping) = unsafe { ((*info).si_addr() as usize, CURRENT.load(Ordering::SeqCst).as_ref()) };
    let Some(mapping) = mapping.filter(|m| address.wrapping_sub(m.start) < m.len) else {
        // Not a page of the data file: the handler before this one takes
        // it (the fault happens again when this returns; a signal sent
        // is sent again).
        // SAFETY: async-signal-safe calls with a saved, valid action.
        unsafe {
            match PREVIOUS.get() {
                Some(previous) => libc::sigaction(signal, previous, std::ptr::null_mut()),
                None => libc::sigaction(signal, &default_action(), std::ptr::null_mut()),
            };
            libc::raise(signal);
        }
        return;
    };
    if REPORTING.swap(true, Ordering::SeqCst) {
        loop {
            // SAFETY: `pause` is async-signal-safe; the reporting thread
            // ends the process.
            unsafe { libc::pause() };
        }
    }
    let say = |bytes: &[u8]| {
        // SAFETY: `write` is async-signal-safe; a short write is harmless.
        unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
    };
    say(b"error: ");
    say(&mapping.name);
    say(b": the data file was cut short while nnc read it (is another program rewriting it?)\n");
    // SAFETY: `_exit` is async-signal-safe and ends the process at once.
    unsafe { libc::_exit(1) };
}

/// `SIG_DFL`, for when no handler was saved.
#[cfg(unix)]
fn default_action() -> libc::sigaction {
    // SAFETY: a zeroed `sigaction` is `SIG_DFL` with no flags.
    unsafe { std::mem::zeroed() }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    /// Set in the child process these tests start: what it does.
    const CHILD: &str = "NNC_BUS_ERROR_CHILD";

    /// Map `path`, guard the map (or not), cut the file to nothing and
    /// read its last byte: the fault.
    fn fault(path: &std::ffi::OsStr, guarded: bool) -> ! {
        let file = std::fs::File::open(path).expect("opens");
        // SAFETY: the map is read once, after the cut, to fault.
        let map = unsafe { memmap2::Mmap::map(&file) }.expect("maps");
        if guarded {
            guard("cut.csv", &map);
        } else {
            // Another map is guarded; this one is not.
            let other = vec![0u8; 4096];
            guard("other.csv", &other);
            std::mem::forget(other);
        }
        std::fs::File::options().write(true).open(path).expect("opens").set_len(0).expect("cuts");
        let _ = std::hint::black_box(map[map.len() - 1]);
        unreachable!("reading past the end of the cut file faults");
    }

    /// Whether this is the child process [`child`] started; if it is the
    /// one for `what`, it faults (and never returns).
    fn in_child(what: &str, guarded: bool) -> bool {
        let Some(task) = std::env::var_os(CHILD) else { return false };
        let task = task.to_str().expect("UTF-8").to_string();
        if let Some(path) = task.strip_prefix(&format!("{what}:")) {
            fault(path.as_ref(), guarded);
        }
        true
    }

    /// Run the test `name` in a child process with [`CHILD`] set to `what`
    /// and a 64 KB file: its status and stderr.
    fn child(name: &str, what: &str) -> (std::process::ExitStatus, String) {
        let dir = std::env::temp_dir().join(format!("nnc-bus-error-{}-{what}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        let path = dir.join("cut.csv");
        std::fs::write(&path, vec![b'1'; 64 << 10]).expect("writes");
        let output = std::process::Command::new(std::env::current_exe().expect("the test binary"))
            .args(["--exact", &format!("runtime::data::bus_error::tests::{name}"), "--nocapture"])
            .env(CHILD, format!("{what}:{}", path.display()))
            .output()
            .expect("the child runs");
        let _ = std::fs::remove_dir_all(&dir);
        (output.status, String::from_utf8_lossy(&output.stderr).to_string())
    }

    #[test]
    fn a_fault_in_the_guarded_map_is_an_error_naming_the_file() {
        if in_child("guarded", true) {
            return;
        }
        let (status, stderr) = child("a_fault_in_the_guarded_map_is_an_error_naming_the_file", "guarded");
        assert_eq!(status.code(), Some(1), "{status:?}: {stderr}");
        assert!(stderr.contains("error: cut.csv: the data file was cut short while nnc read it"), "{stderr}");
    }

    #[test]
    fn a_fault_elsewhere_is_left_to_the_handler_before() {
        if in_child("elsewhere", false) {
            return;
        }
        let (status, stderr) = child("a_fault_elsewhere_is_left_to_the_handler_before", "elsewhere");
        assert_eq!(status.signal(), Some(libc::SIGBUS), "{status:?}: {stderr}");
        assert!(!stderr.contains("cut short"), "{stderr}");
    }
}
