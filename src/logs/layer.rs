//! The tracing layer that feeds `logs` readers.
//!
//! Whose a line is comes from its `user` field, looked up on the event
//! first and then on the spans it happens in, innermost first: today the
//! server's events carry `user` and `peer` themselves; once connections and
//! commands get spans of their own (`info_span!("conn", user, peer)`), the
//! events inside them are found the same way. Spans must be at INFO or
//! above to be seen, as events must: the layer's filter is `sshpipe=info`,
//! whatever `RUST_LOG` says, so users get their lines even when the
//! operator turned stderr down, and russh's debug chatter never reaches
//! this layer (nor, through the `log` bridge, costs anything).
//!
//! Store errors are counted here too (`sshpipe_store_errors_total`): a
//! warning or error of the broker or the store that carries an `error`
//! field is, today, exactly one failed store operation, and this way the
//! count needs no hook in either.

use std::time::SystemTime;

use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use super::hub::LogHub;
use super::line::{self, Fields};

/// Targets whose warnings with an `error` field are store failures.
const STORE_TARGETS: [&str; 2] = ["sshpipe::broker", "sshpipe::store"];

/// Renders events for the readers of a [`LogHub`].
#[derive(Debug, Clone)]
pub struct LogLayer {
    hub: LogHub,
}

/// The layer with its filter (`sshpipe` events and spans at INFO and up),
/// ready for `tracing_subscriber::registry().with(...)`.
pub fn layer<S>(hub: LogHub) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    LogLayer { hub }.with_filter(Targets::new().with_target("sshpipe", Level::INFO))
}

impl<S> Layer<S> for LogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        attrs.record(&mut Visitor(&mut fields));
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if let Some(fields) = ext.get_mut::<Fields>() {
            values.record(&mut Visitor(fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let maybe_store_error = *meta.level() <= Level::WARN
            && STORE_TARGETS.iter().any(|t| meta.target().starts_with(t));
        if !maybe_store_error && !self.hub.has_readers() {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut Visitor(&mut fields));
        if maybe_store_error && fields.get("error").is_some() {
            self.hub.count_store_error();
        }
        if !self.hub.has_readers() {
            return;
        }
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope {
                if let Some(outer) = span.extensions().get::<Fields>() {
                    fields.inherit(outer);
                }
            }
        }
        let user = fields.get_str("user");
        if !self.hub.wants(user) {
            return;
        }
        let line = line::render(SystemTime::now(), meta.level(), &fields);
        self.hub.publish(user, &line);
    }
}

/// Records tracing fields as JSON values: numbers and booleans stay what
/// they are; `%x` and `?x` fields become the text they display as.
struct Visitor<'a>(&'a mut Fields);

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.set(field.name(), Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.set(field.name(), Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.set(field.name(), Value::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // NaN and infinities have no JSON number: they become null.
        self.0.set(field.name(), Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.set(field.name(), Value::from(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.set(field.name(), Value::from(value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.set(field.name(), Value::from(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::logs::Scope;
    use tracing_subscriber::layer::SubscriberExt as _;

    fn with_layer(hub: &LogHub, f: impl FnOnce()) {
        let subscriber = tracing_subscriber::registry().with(layer(hub.clone()));
        tracing::subscriber::with_default(subscriber, f);
    }

    fn parse(line: &str) -> Value {
        serde_json::from_str(line).expect("one JSON object")
    }

    #[tokio::test]
    async fn user_comes_from_the_event_or_from_its_spans() {
        let hub = LogHub::default();
        let mut alice = hub.watch(Scope::User("alice".into()));
        let mut all = hub.watch(Scope::All);
        with_layer(&hub, || {
            tracing::info!(user = "alice", peer = %"127.0.0.1:9", n = 3, "own field");
            let conn = tracing::info_span!("conn", user = "alice", peer = "127.0.0.1:7");
            let _in = conn.enter();
            let cmd = tracing::info_span!("cmd", cmd = "sub t", topic = tracing::field::Empty);
            let _in_cmd = cmd.enter();
            cmd.record("topic", "alice/t");
            tracing::info!(bytes_out = 5u64, "from the spans");
            tracing::info!(user = "bob", "bob's own, inside alice's span");
            tracing::debug!("below the filter");
        });
        tracing::info!(user = "alice", "no subscriber: not seen");
        let a = parse(&alice.next().await.unwrap().line);
        assert_eq!(
            (a["msg"].as_str(), a["peer"].as_str()),
            (Some("own field"), Some("127.0.0.1:9"))
        );
        assert_eq!(a["n"], 3);
        let b = parse(&alice.next().await.unwrap().line);
        assert_eq!(b["msg"], "from the spans");
        assert_eq!(
            (b["user"].as_str(), b["peer"].as_str()),
            (Some("alice"), Some("127.0.0.1:7"))
        );
        assert_eq!(
            (b["cmd"].as_str(), b["topic"].as_str()),
            (Some("sub t"), Some("alice/t"))
        );
        assert_eq!(b["bytes_out"], 5);
        for want in [
            "own field",
            "from the spans",
            "bob's own, inside alice's span",
        ] {
            assert_eq!(parse(&all.next().await.unwrap().line)["msg"], want);
        }
        assert!(
            alice.try_next().is_none(),
            "bob's line and debug lines stay out"
        );
        assert!(all.try_next().is_none());
    }

    #[test]
    fn store_warnings_with_an_error_are_counted_without_readers() {
        let hub = LogHub::default();
        with_layer(&hub, || {
            tracing::warn!(target: "sshpipe::broker::queue", error = "disk full", "could not");
            tracing::error!(target: "sshpipe::store", error = %"io", "could not");
            tracing::warn!(target: "sshpipe::broker", "no error field: not a store error");
            tracing::warn!(target: "sshpipe::ssh", error = "x", "not the store");
            tracing::info!(target: "sshpipe::store", error = "x", "only a note");
        });
        assert_eq!(hub.store_errors(), 2);
    }
}
