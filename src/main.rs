//! The `sshpipe` binary; the program itself is `sshpipe::cli`.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    sshpipe::cli::main_with_args(std::env::args_os())
}
