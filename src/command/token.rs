//! `token create|ls|rm` (SPEC §11.1): HTTP access tokens. Parsed here like
//! every other exec string; what the words mean (scope patterns are topic
//! names as the user types them) is decided by the front end.

use std::time::Duration;

use super::UsageError;
use super::duration::parse_duration;

/// Printed after a `token` usage error and by `token help`.
pub const TOKEN_USAGE: &str = "\
usage: token create [--read-only] [--expires DUR] [--name NAME] [TOPIC_PATTERN...]
       token ls [--all]
       token rm ID
  create  print a new HTTP token once (Authorization: Bearer TOKEN or ?token=TOKEN)
          --read-only   only GET, SSE and receiving on sockets
          --expires DUR expire after DUR (Go duration: 24h, 30m)
          --name NAME   shown in ls as USER(token NAME)
          TOPIC_PATTERN limit it to these topics (sub pattern syntax)
  ls      your tokens: id, name, scope, expiry, last use (admins: --all)
  rm      revoke a token now; streams using it are closed
";

/// A parsed `token` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenCmd {
    Create(CreateArgs),
    Ls {
        all: bool,
    },
    Rm {
        id: String,
    },
    /// `token`, `token help`: print [`TOKEN_USAGE`].
    Usage,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CreateArgs {
    pub read_only: bool,
    pub expires: Option<Duration>,
    pub name: Option<String>,
    /// As typed; resolved to full names by the front end.
    pub patterns: Vec<String>,
}

fn bad(msg: impl Into<String>) -> UsageError {
    UsageError::Token(msg.into())
}

/// `args` are the words after `token`.
pub fn parse(args: &[String]) -> Result<TokenCmd, UsageError> {
    let Some((sub, rest)) = args.split_first() else {
        return Ok(TokenCmd::Usage);
    };
    match sub.as_str() {
        "help" | "-h" | "--help" => Ok(TokenCmd::Usage),
        "create" => create(rest).map(TokenCmd::Create),
        "ls" => match rest {
            [] => Ok(TokenCmd::Ls { all: false }),
            [a] if a == "--all" || a == "-all" => Ok(TokenCmd::Ls { all: true }),
            [a, ..] => Err(bad(format!("token ls: unexpected argument {a:?}"))),
        },
        "rm" => match rest {
            [id] if !id.starts_with('-') => Ok(TokenCmd::Rm { id: id.clone() }),
            [] => Err(bad("token rm: an ID is required (see token ls)")),
            [a, ..] if a.starts_with('-') => Err(bad(format!("token rm: unknown flag {a:?}"))),
            [_, extra, ..] => Err(bad(format!("token rm: more than one ID: {extra:?}"))),
            [_] => Err(bad("token rm: an ID is required (see token ls)")),
        },
        other => Err(bad(format!(
            "token: unknown subcommand {other:?} (create, ls or rm)"
        ))),
    }
}

fn create(words: &[String]) -> Result<CreateArgs, UsageError> {
    let mut out = CreateArgs::default();
    let mut it = words.iter();
    let mut flags_done = false;
    while let Some(w) = it.next() {
        if flags_done || !w.starts_with('-') || w == "-" {
            out.patterns.push(w.clone());
            continue;
        }
        let (flag, inline) = match w.split_once('=') {
            Some((f, v)) => (f, Some(v.to_string())),
            None => (w.as_str(), None),
        };
        let mut value = |name: &str| -> Result<String, UsageError> {
            match inline.clone().or_else(|| it.next().cloned()) {
                Some(v) => Ok(v),
                None => Err(bad(format!("token create: flag needs a value: {name}"))),
            }
        };
        match flag {
            "--" => flags_done = true,
            "--read-only" | "-read-only" if inline.is_none() => out.read_only = true,
            "--expires" | "-expires" => {
                let v = value(flag)?;
                let d = parse_duration(&v).map_err(|reason| {
                    bad(format!(
                        "token create: invalid duration {v:?} for --expires: {reason}"
                    ))
                })?;
                if d.is_zero() {
                    return Err(bad("token create: --expires must be more than 0s"));
                }
                out.expires = Some(d);
            }
            "--name" | "-name" => out.name = Some(value(flag)?),
            _ => return Err(bad(format!("token create: unknown flag {w:?}"))),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn parses() {
        let table: Vec<(&str, TokenCmd)> = vec![
            ("", TokenCmd::Usage),
            ("help", TokenCmd::Usage),
            ("ls", TokenCmd::Ls { all: false }),
            ("ls --all", TokenCmd::Ls { all: true }),
            ("rm ab12", TokenCmd::Rm { id: "ab12".into() }),
            ("create", TokenCmd::Create(CreateArgs::default())),
            (
                "create --read-only --expires 24h --name ci logs/* public/feed",
                TokenCmd::Create(CreateArgs {
                    read_only: true,
                    expires: Some(Duration::from_secs(86_400)),
                    name: Some("ci".into()),
                    patterns: vec!["logs/*".into(), "public/feed".into()],
                }),
            ),
            (
                "create --name=x -- -odd",
                TokenCmd::Create(CreateArgs {
                    name: Some("x".into()),
                    patterns: vec!["-odd".into()],
                    ..CreateArgs::default()
                }),
            ),
        ];
        for (input, want) in table {
            assert_eq!(parse(&words(input)), Ok(want), "{input:?}");
        }
    }

    #[test]
    fn refuses() {
        for input in [
            "make",
            "ls x",
            "rm",
            "rm a b",
            "rm -x",
            "create --expires",
            "create --expires soon",
            "create --expires 0s",
            "create --bogus",
            "create --read-only=yes",
        ] {
            assert!(parse(&words(input)).is_err(), "{input:?}");
        }
    }
}
