//! The `sshpipe` program: options → logging → server → wait for a signal.
//!
//! It lives in the library, not in `main.rs`, so the benchmark harness can
//! run the very same program in a child process of its own (`sshpipe-bench`
//! re-executes itself as the server) and measure exactly what users run.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::config::{Cli, HttpListen, LogFormat, MetricsListen, ServeArgs};
use crate::server::{self, Options};
use clap::Parser as _;
use tracing_subscriber::EnvFilter;

/// Runs the server program with `args` (the first is the program name) and
/// returns its exit status.
pub fn main_with_args<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args = match Cli::try_parse_from(args) {
        Ok(cli) => cli.into_serve(),
        Err(e) => return option_error(&e),
    };
    init_logging(args.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sshpipe: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line naming the cause (SPEC §2).
            eprintln!("sshpipe: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--help`/`--version` print as usual; a bad option is one line (SPEC §2).
fn option_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "sshpipe: {}; see sshpipe --help",
        error_line(&e.render().to_string())
    );
    ExitCode::from(2)
}

/// clap's rendered error as one line. Its first line may end in a colon
/// with the names on the indented lines below ("the following required
/// arguments were not provided:\n  --nats-key <NATS_KEY>"): those are
/// kept, as are the possible values of a bad one.
fn error_line(rendered: &str) -> String {
    let mut lines = rendered.lines();
    let first = lines
        .next()
        .unwrap_or("bad option")
        .trim_start_matches("error: ");
    let mut line = first.to_string();
    if first.ends_with(':') {
        let named: Vec<&str> = lines
            .take_while(|l| l.starts_with(char::is_whitespace) && !l.trim().is_empty())
            .map(str::trim)
            .collect();
        line = format!("{} {}", first.trim_end_matches(':'), named.join(", "));
    }
    let values = rendered.lines().find_map(|l| {
        l.trim()
            .strip_prefix("[possible values: ")
            .and_then(|v| v.strip_suffix(']'))
    });
    if let Some(v) = values {
        line.push_str(&format!(" (possible values: {v})"));
    }
    line
}

/// While the server starts, a failed first connection to NATS is told by
/// the one line `run` fails with; async-nats's own ERROR line about it
/// ("authorization violation") would be a second. Later reconnects log as
/// usual.
static STARTING: AtomicBool = AtomicBool::new(true);

/// Log lines on stderr as `RUST_LOG` says, and every `sshpipe` event at
/// INFO and up to the readers of `ssh host logs` (`logs::layer`, its own
/// filter: users get their lines whatever the operator's stderr level).
fn init_logging(format: LogFormat) {
    use std::io::IsTerminal as _;
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = use_colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").is_some(),
    );
    let stderr = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let stderr = match format {
        LogFormat::Text => stderr.boxed(),
        LogFormat::Json => stderr.json().boxed(),
    };
    // `try_init`: now that the program is a library function, a caller that
    // already installed a subscriber keeps it instead of a panic.
    let starting = tracing_subscriber::filter::filter_fn(|meta| {
        !(STARTING.load(Ordering::Relaxed) && meta.target() == "async_nats::connector")
    });
    let _ = tracing_subscriber::registry()
        .with(stderr.with_filter(filter).with_filter(starting))
        .with(crate::logs::layer(crate::logs::LogHub::global()))
        .try_init();
}

/// Colour in text log lines only for a person at a terminal (SPEC §2):
/// `docker logs`, journald and log files get plain text. Any `NO_COLOR`,
/// even an empty one, turns it off: SPEC §2 says "unset", which is stricter
/// than no-color.org's "set and not empty".
fn use_colour(stderr_is_terminal: bool, no_color_set: bool) -> bool {
    stderr_is_terminal && !no_color_set
}

/// An option's value as it is typed on the command line (`open`,
/// `post-quantum`), not as the Rust variant is spelled (`Open`).
fn typed<T: clap::ValueEnum>(value: &T) -> String {
    value
        .to_possible_value()
        .map_or_else(String::new, |v| v.get_name().to_string())
}

async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let opts = Options {
        ssh_listen: args.ssh_listen,
        data_dir: args.data_dir.clone(),
        host_key: args.host_key.clone(),
        users: args.users.clone(),
        auth: args.auth,
        domain: args.domain.clone(),
        advertise_port: args.advertise_port,
        http_listen: match args.http_listen {
            HttpListen::Off => None,
            HttpListen::On(addr) => Some(addr),
        },
        ssh_limits: crate::ssh::SshLimits::from_args(&args),
        broker: args.broker_config(),
        kex: args.kex,
        trusted_user_ca: args.trusted_user_ca.clone(),
        metrics_listen: args.metrics_listen,
        http: crate::http::HttpLimits::from_args(&args),
    };
    let started = server::start(opts).await;
    STARTING.store(false, Ordering::Relaxed);
    let running = started?;
    let http = running
        .http_addr
        .map_or_else(|| "off".to_string(), |a| a.to_string());
    let metrics = match (args.metrics_listen, running.http_addr, running.metrics_addr) {
        (_, _, Some(addr)) => addr.to_string(),
        (MetricsListen::Http, Some(addr), None) => format!("{addr}/metrics"),
        _ => "off".to_string(),
    };
    tracing::info!(
        ssh = %running.ssh_addr,
        http = %http,
        metrics = %metrics,
        host_key = %running.host_key_fingerprint,
        auth = %typed(&args.auth),
        kex = %typed(&args.kex),
        broker = %args.broker,
        data_dir = %args.data_dir.display(),
        "sshpipe listening"
    );
    wait_for_signal().await?;
    tracing::info!("shutting down");
    running.shutdown.cancel();
    if tokio::time::timeout(Duration::from_secs(10), running.join)
        .await
        .is_err()
    {
        tracing::warn!("shutdown took longer than 10 s; exiting anyway");
    }
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KexPolicy;
    use crate::identity::AuthMode;

    #[test]
    fn colour_only_at_a_terminal_without_no_color() {
        assert!(use_colour(true, false));
        assert!(!use_colour(true, true));
        assert!(!use_colour(false, false));
        assert!(!use_colour(false, true));
    }

    #[test]
    fn an_option_error_is_one_line_that_names_the_option() {
        for (rendered, line) in [
            (
                "error: the following required arguments were not provided:\n  --nats-key <NATS_KEY>\n\nUsage: sshpipe --nats-cert <NATS_CERT> --nats-key <NATS_KEY>\n\nFor more information, try '--help'.\n",
                "the following required arguments were not provided --nats-key <NATS_KEY>",
            ),
            (
                "error: the following required arguments were not provided:\n  --a <A>\n  --b <B>\n\nUsage: x\n",
                "the following required arguments were not provided --a <A>, --b <B>",
            ),
            (
                "error: invalid value 'x' for '--auth <AUTH>'\n  [possible values: open, users]\n\nFor more information, try '--help'.\n",
                "invalid value 'x' for '--auth <AUTH>' (possible values: open, users)",
            ),
            (
                "error: unexpected argument '--nope' found\n\nUsage: sshpipe [OPTIONS]\n",
                "unexpected argument '--nope' found",
            ),
            ("", "bad option"),
        ] {
            assert_eq!(error_line(rendered), line, "{rendered:?}");
        }
    }

    #[test]
    fn start_line_values_are_spelled_as_typed() {
        assert_eq!(typed(&AuthMode::Open), "open");
        assert_eq!(typed(&AuthMode::Users), "users");
        assert_eq!(typed(&KexPolicy::PostQuantum), "post-quantum");
        assert_eq!(typed(&KexPolicy::Compat), "compat");
    }
}
