//! redb panics on some damaged files instead of returning an error: a file
//! truncated by a page or more fails an assertion, zeroed pages reach
//! `unreachable!()`. A store must never take the server down that way, nor
//! print a panic message instead of naming the file (SPEC §10), so every
//! call into redb runs under [`catch`], which turns a panic into an error.
//!
//! Catching alone would still print the panic through the process's panic
//! hook. The hook installed here stays quiet only on a thread that is inside
//! [`catch`] and hands every other panic to the hook that was there before,
//! so panics elsewhere (tests, bugs) print as they always did.

use std::any::Any;
use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// Depth of [`catch`] calls on this thread.
    static CATCHING: Cell<u32> = const { Cell::new(0) };
}

static QUIET_HOOK: Once = Once::new();

/// Runs `f`; a panic inside it becomes `Err(its message)`.
pub(super) fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    QUIET_HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if CATCHING.with(Cell::get) == 0 {
                previous(info);
            }
        }));
    });
    CATCHING.with(|c| c.set(c.get() + 1));
    // Whatever `f` touched is dropped or thrown away by the caller after a
    // panic (a broken database is closed and opened again), so no broken
    // invariant is observed afterwards.
    let out = panic::catch_unwind(AssertUnwindSafe(f));
    CATCHING.with(|c| c.set(c.get().saturating_sub(1)));
    out.map_err(|payload| message(payload.as_ref()))
}

fn message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::panic)]
    use super::*;

    #[test]
    fn a_panic_becomes_its_message() {
        assert_eq!(catch(|| 7), Ok(7));
        assert_eq!(
            catch(|| -> u8 { panic!("broken {}", 3) }),
            Err("broken 3".to_string())
        );
        assert_eq!(
            catch(|| -> u8 { panic!("plain") }),
            Err("plain".to_string())
        );
    }
}
