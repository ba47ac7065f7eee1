//! What both front ends (`ssh/`, `http/`) do the same way, written once:
//! turning what a client typed into a topic and an access list, the labels
//! `ls` shows, the hint line, running a pipe's two halves at once, monitor
//! pings (`ping`), and one error type that knows its exit status, HTTP
//! status and close code.
//!
//! Front ends stay thin: they parse their own wire format, call `prepare`
//! and the broker's intents, and write what comes back.

mod error;
mod names;
pub mod ping;
mod pipe;

pub use error::Failure;
pub use names::{Prepared, hint, prepare, resolve};
pub use pipe::run_pipe;
