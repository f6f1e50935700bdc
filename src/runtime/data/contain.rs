//! Panics of the `parquet` crate on damaged files, turned into errors.
//!
//! The crate trusts some fields of a page header (a data page's header
//! block, for one) and `unwrap`s them: a damaged file makes it panic, found
//! by `parquet::tests::damaged_pages_are_errors_not_panics`. Users never
//! see a panic, so the readers run the crate's code through [`contained`]:
//! the panic is caught, its message becomes the error's, and the default
//! hook does not print it (a hook installed once, silent on a thread while
//! it runs contained code).

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// This thread runs contained code: its panics are not printed.
    static CONTAINED: Cell<bool> = const { Cell::new(false) };
}

/// `work()`, or the message of its panic.
pub fn contained<T>(work: impl FnOnce() -> T) -> Result<T, String> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !CONTAINED.get() {
                default(info);
            }
        }));
    });
    let outer = CONTAINED.replace(true);
    // Only data is read inside: nothing outlives a panic half-changed but
    // what the caller drops with the error.
    let result = panic::catch_unwind(AssertUnwindSafe(work));
    CONTAINED.set(outer);
    result.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_its_message_and_the_thread_goes_on() {
        assert_eq!(contained(|| 7), Ok(7));
        let empty: Vec<u8> = std::hint::black_box(Vec::new());
        assert!(contained(|| empty[3]).is_err_and(|m| m.contains("index out of bounds")));
        assert_eq!(contained(|| panic!("{} pages", 3)), Err::<(), _>("3 pages".to_string()));
        assert!(!CONTAINED.get(), "the flag is reset");
    }
}
