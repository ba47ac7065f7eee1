//! `access TOPIC [LIST | --clear]` (SPEC §4, §6): a topic's access list,
//! shown or changed without sending or receiving. Only the owner may; the
//! broker applies a change to the clients already on the topic at once.

use super::out::{Gone, Out};
use super::request::{Report, Request, failed};
use crate::command::{AccessArgs, AccessChange, CommandKind};
use crate::front::{self, Failure};
use crate::topic::{AccessList, is_pattern, parse_access};

/// `access: bob,SHA256:…` or `access: none`.
pub fn access_line(list: Option<&AccessList>) -> String {
    match list {
        Some(l) if !l.is_empty() => format!("access: {}", l.0.join(",")),
        _ => "access: none".to_string(),
    }
}

pub async fn run(req: &Request, args: AccessArgs, out: &mut Out) -> Result<Report, Gone> {
    let kind = CommandKind::Access;
    let topic = match front::resolve(&req.app, &req.identity, &args.topic, args.public, false) {
        Ok(t) if is_pattern(&t.local) => {
            let e = Failure::BadArgument("access: a list belongs to a topic, not a pattern".into());
            return failed(out, kind, None, &e).await;
        }
        Ok(t) => t,
        Err(e) => return failed(out, kind, None, &e.into()).await,
    };
    req.resolved(&topic.full);
    let broker = &req.app.broker;
    let new = match args.change {
        AccessChange::Show => broker.access(&topic, &req.identity).await,
        AccessChange::Set(entries) => match parse_access(&entries) {
            Ok(list) => set(req, &topic, list).await,
            Err(e) => return failed(out, kind, Some(&topic.full), &Failure::BadArgument(e)).await,
        },
        AccessChange::Clear => set(req, &topic, AccessList::default()).await,
    };
    match new {
        Ok(list) => {
            out.text(&format!("{}\n", access_line(list.as_ref())))
                .await?;
            Ok(Report::on(&topic.full, 0, 0))
        }
        Err(e) => failed(out, kind, Some(&topic.full), &e.into()).await,
    }
}

async fn set(
    req: &Request,
    topic: &crate::topic::TopicRef,
    list: AccessList,
) -> Result<Option<AccessList>, crate::broker::BrokerError> {
    req.app
        .broker
        .set_access(topic, &req.identity, &list)
        .await?;
    Ok((!list.is_empty()).then_some(list))
}
