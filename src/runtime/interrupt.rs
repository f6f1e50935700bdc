//! Ctrl-C during training: the first SIGINT asks the run to stop after the
//! current epoch (the training loop polls [`requested`]) and still write
//! its outputs; a second one exits at once with status 130, first removing
//! any output file still being written under its temporary name, so no
//! half-written file is left behind.
//!
//! Everything the signal handler touches is async-signal-safe: atomics,
//! `write(2)`, `unlink(2)` and `_exit(2)`. Temporary paths are registered
//! as C strings in a fixed table of atomic pointers; they are never freed
//! (a few bytes per output file), so the handler can never read a freed one.

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static INSTALLED: AtomicBool = AtomicBool::new(false);
static QUIET: AtomicBool = AtomicBool::new(false);
/// The note the first Ctrl-C prints: a `&'static [u8]` as pointer and length.
static NOTE: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static NOTE_LEN: AtomicUsize = AtomicUsize::new(0);
/// What a run does after its epoch.
const RUN_NOTE: &[u8] =
    b"\ninterrupted: stopping after this epoch and writing the outputs (Ctrl-C again quits at once)\n";
/// Temporary files being written right now.
static TEMP_FILES: [AtomicPtr<libc::c_char>; 8] = [const { AtomicPtr::new(std::ptr::null_mut()) }; 8];

/// The exit status of an interrupted run, as shells report SIGINT.
pub const EXIT_CODE: u8 = 130;

extern "C" fn on_sigint(_: libc::c_int) {
    if INTERRUPTED.swap(true, Ordering::SeqCst) {
        for slot in &TEMP_FILES {
            let path = slot.load(Ordering::SeqCst);
            if !path.is_null() {
                // SAFETY: a NUL-terminated string that is never freed.
                unsafe { libc::unlink(path) };
            }
        }
        // SAFETY: ends the process without running anything else.
        unsafe { libc::_exit(EXIT_CODE as libc::c_int) };
    }
    let note = NOTE.load(Ordering::SeqCst);
    if !QUIET.load(Ordering::SeqCst) && !note.is_null() {
        // SAFETY: writes a static buffer (`install_with_note`) to stderr.
        unsafe { libc::write(2, note.cast(), NOTE_LEN.load(Ordering::SeqCst)) };
    }
}

/// Catch SIGINT from now on (for the training loop); `quiet` silences the
/// handler's note.
pub fn install(quiet: bool) {
    install_with_note(quiet, RUN_NOTE);
}

/// [`install`], with the note the first Ctrl-C prints (what happens next).
pub fn install_with_note(quiet: bool, note: &'static [u8]) {
    // The length first: the handler reads the pointer, then the length.
    NOTE.store(std::ptr::null_mut(), Ordering::SeqCst);
    NOTE_LEN.store(note.len(), Ordering::SeqCst);
    NOTE.store(note.as_ptr().cast_mut(), Ordering::SeqCst);
    QUIET.store(quiet, Ordering::SeqCst);
    if !INSTALLED.swap(true, Ordering::SeqCst) {
        let handler: extern "C" fn(libc::c_int) = on_sigint;
        // SAFETY: installs a handler that only does async-signal-safe work.
        unsafe { libc::signal(libc::SIGINT, handler as libc::sighandler_t) };
    }
}

/// Whether Ctrl-C was pressed since [`install`].
pub fn requested() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// A temporary output file, removed by a second Ctrl-C while it exists.
pub struct TempFile {
    slot: Option<usize>,
}

/// Register `path` until the returned guard is dropped (after the rename).
pub fn track(path: &std::path::Path) -> TempFile {
    use std::os::unix::ffi::OsStrExt;
    let Ok(text) = std::ffi::CString::new(path.as_os_str().as_bytes()) else { return TempFile { slot: None } };
    let raw = text.into_raw();
    for (i, slot) in TEMP_FILES.iter().enumerate() {
        if slot.compare_exchange(std::ptr::null_mut(), raw, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
            return TempFile { slot: Some(i) };
        }
    }
    TempFile { slot: None }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            // The string stays allocated: the handler may be reading it.
            TEMP_FILES[i].store(std::ptr::null_mut(), Ordering::SeqCst);
        }
    }
}
