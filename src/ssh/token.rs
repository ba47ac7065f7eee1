//! `ssh host token create|ls|rm` (SPEC §11.1). The secret is written once
//! to stdout and never logged; log lines name a token by its id.

use super::out::{Gone, Out};
use super::request::{Report, Request};
use crate::command::{CreateArgs, TOKEN_USAGE, TokenCmd};
use crate::front;
use crate::tokens::{
    Listed, MAX_NAME_LEN, MAX_SCOPE_PATTERNS, NewToken, TokenError, format_time, valid_name,
};

pub async fn run(req: &Request, cmd: TokenCmd, out: &mut Out) -> Result<Report, Gone> {
    match cmd {
        TokenCmd::Usage => {
            out.text(TOKEN_USAGE).await?;
            Ok(Report::status(0))
        }
        TokenCmd::Create(args) => create(req, args, out).await,
        TokenCmd::Ls { all } => {
            if all && !req.identity.admin {
                out.line("access denied: token ls --all is for admins")
                    .await?;
                return Ok(Report::status(1));
            }
            let user = (!all).then_some(req.identity.name.as_str());
            out.text(&format_list(&req.app.tokens.list(user), all))
                .await?;
            Ok(Report::status(0))
        }
        TokenCmd::Rm { id } => match req.app.tokens.remove(&req.identity, &id).await {
            Ok(rec) => {
                tracing::info!(token = %rec.id, owner = %rec.user, "token revoked");
                out.line(&format!("token {} ({}) revoked", rec.id, rec.name))
                    .await?;
                Ok(Report::status(0))
            }
            Err(e) => failed(out, &e).await,
        },
    }
}

async fn create(req: &Request, args: CreateArgs, out: &mut Out) -> Result<Report, Gone> {
    let spec = match check(req, args) {
        Ok(spec) => spec,
        Err(line) => {
            out.line(&line).await?;
            out.line(TOKEN_USAGE.trim_end()).await?;
            return Ok(Report::status(2));
        }
    };
    match req.app.tokens.create(&req.identity, spec).await {
        Ok((secret, rec)) => {
            tracing::info!(token = %rec.id, name = %rec.name, read_only = rec.read_only, "token created");
            out.text(&format!("{secret}\n")).await?;
            let note = format!(
                "token {} ({}) created; it is shown only once. Use: curl -H 'Authorization: Bearer TOKEN' …",
                rec.id, rec.name
            );
            out.line(&note).await?;
            Ok(Report::status(0))
        }
        Err(e) => failed(out, &e).await,
    }
}

/// The name and scope patterns, checked; patterns are resolved as the
/// user would type them in `sub` (`logs/*` is their own `USER/logs/*`).
fn check(req: &Request, args: CreateArgs) -> Result<NewToken, String> {
    if let Some(name) = &args.name
        && !valid_name(name)
    {
        return Err(format!(
            "token create: invalid name {name:?} (1-{MAX_NAME_LEN} printable characters, none of ,()@#)"
        ));
    }
    if args.patterns.len() > MAX_SCOPE_PATTERNS {
        return Err(format!(
            "token create: at most {MAX_SCOPE_PATTERNS} topic patterns"
        ));
    }
    let mut scope = Vec::with_capacity(args.patterns.len());
    for typed in &args.patterns {
        let topic = front::resolve(&req.app, &req.identity, typed, false, true)
            .map_err(|e| format!("token create: {e}"))?;
        scope.push(topic.full);
    }
    Ok(NewToken {
        name: args.name,
        scope,
        read_only: args.read_only,
        expires: args.expires,
    })
}

async fn failed(out: &mut Out, e: &TokenError) -> Result<Report, Gone> {
    out.line(&e.to_string()).await?;
    Ok(Report::status(1))
}

/// `token ls`: one line per token, aligned columns; the owner too with `--all`.
fn format_list(tokens: &[Listed], all: bool) -> String {
    if tokens.is_empty() {
        return "no tokens\n".to_string();
    }
    let mut rows = vec![vec![
        "ID".to_string(),
        "NAME".into(),
        "SCOPE".into(),
        "EXPIRES".into(),
        "LAST USE".into(),
    ]];
    if all {
        rows[0].insert(1, "USER".into());
    }
    for t in tokens {
        let r = &t.record;
        let mut row = vec![
            r.id.clone(),
            r.name.clone(),
            r.scope_text(),
            r.expires_ms
                .map_or_else(|| "never".to_string(), format_time),
            t.last_used_ms
                .map_or_else(|| "never".to_string(), format_time),
        ];
        if all {
            row.insert(1, r.user.clone());
        }
        rows.push(row);
    }
    let cols = rows[0].len();
    let widths: Vec<usize> = (0..cols)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut s = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        s.push_str(line.join("  ").trim_end());
        s.push('\n');
    }
    s
}
