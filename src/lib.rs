//! podium: server-side stream moderation for Jitsi Meet.
//!
//! podium is an XEP-0114 component beside Prosody. The bundled module `mod_podium`, loaded on the MUC
//! host, reports every occupant; podium decides from SQL rules which media each may send (audio,
//! camera, screenshare) and sends those permissions to the module, which holds and enforces them.
//! A browser client cannot be trusted to enforce anything, so the server decides.
//!
//! # Layout
//!
//! - [`config`]: figment configuration (defaults → TOML → `PODIUM_*`), the redacted secret.
//! - [`xmpp`]: the link to Prosody: XEP-0114 login, keepalive, reconnect with backoff.
//! - [`protocol`]: podium's own payloads between module and component, one file each.
//! - [`rooms`]: rooms and occupants as podium sees them, built from the forwarded MUC presence.
//! - [`rules`]: the rule model and the pure evaluator with its combining rule.
//! - [`store`]: SQLite or PostgreSQL via sqlx: migrations, rule loading, edit detection
//!   (polling, LISTEN/NOTIFY), the audit log.
//! - [`enforce`]: the engine: decide, diff against what the module holds, send, audit.
//! - [`media`]: the media kinds and sets of them.
//! - [`tools`]: `podium rules check` and `podium explain`, the admin commands.
//!
//! [`run`] wires them together; `main` only parses the command line and calls it.

#![deny(missing_docs, unsafe_code)]

pub mod config;
pub mod enforce;
pub mod media;
pub mod protocol;
pub mod rooms;
pub mod rules;
pub mod store;
pub mod tools;
pub mod xmpp;

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::info;
use xmpp_parsers::jid::{BareJid, Jid};

use crate::config::Config;
use crate::enforce::Engine;
use crate::store::{AuditWriter, Store, StoreError};
use crate::xmpp::LinkEvent;

/// Live-view rows are written while fewer audit writes than this are queued.
const VIEWS_WHEN_BACKLOG_BELOW: usize = 4096;

/// Live-view rows written per turn of the run loop at most.
const VIEWS_PER_TURN: usize = 2048;

/// Live-view rows written per turn while a pass over every room is under way: each turn then
/// decides a slice of 1,000 occupants, and 2,048 full rows (some 30 ms on a busy 2-core machine)
/// would hold back the next slice's decisions.
const VIEWS_PER_TURN_IN_A_PASS: usize = 256;

/// Why podium could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The database could not be opened, migrated or read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The audit spool cannot be used.
    #[error(transparent)]
    Spool(#[from] store::SpoolError),
}

/// What woke the run loop.
enum Woke {
    /// A rule window, a grant's expiry or an idle slot holder's time came.
    Edge,
    /// `shutdown` completed.
    Shutdown,
    /// The rule watcher or the link stopped.
    Closed,
    /// The rules changed.
    Rules(Arc<rules::RuleSet>),
    /// Every [`enforce::TICK`].
    Tick,
    /// A pass over every room is under way: its next slice.
    Work,
    /// Live-view rows wait for the audit log: look again.
    Views,
    /// The link to Prosody.
    Link(LinkEvent),
}

/// Runs podium until `shutdown` completes: opens the database, starts watching rules, keeps the link
/// to Prosody up and decides. Returns once every task has stopped and the audit log is written.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    config.validate()?;
    let default = config.default_permissions()?;
    let component = Jid::from_str(&config.xmpp.component)
        .map_err(|e| config::ConfigError::Other(format!("xmpp.component: {e}")))?;
    let muc = BareJid::from_str(&config.xmpp.muc)
        .map_err(|e| config::ConfigError::Other(format!("xmpp.muc: {e}")))?;
    let breakout_muc = (!config.xmpp.breakout_muc.is_empty())
        .then(|| BareJid::from_str(&config.xmpp.breakout_muc))
        .transpose()
        .map_err(|e| config::ConfigError::Other(format!("xmpp.breakout_muc: {e}")))?;

    let instance = config.database.instance_name();
    let store = Store::open(&config.database, instance.clone()).await?;
    match config.database.postgres_url() {
        Some(url) => info!(url = %store::redact_url(url), %instance, "database ready (PostgreSQL)"),
        None => info!(path = %config.database.path.display(), %instance, "database ready (SQLite)"),
    }
    let tables = store::watch::RuleTables::load(&store).await?;
    let rules = Arc::new(store::watch::build_logged(&tables, default, None));
    store::watch::warn_rejected_rules(&store).await;

    let cancel = CancellationToken::new();
    let (rules_tx, mut rules_rx) = watch::channel(Arc::clone(&rules));
    let grants_written = Arc::new(tokio::sync::Notify::new());
    let watcher = tokio::spawn(store::watch::watch_rules(
        store.clone(),
        default,
        Duration::from_millis(config.database.poll_interval_ms),
        tables,
        rules_tx,
        Arc::clone(&grants_written),
        cancel.clone(),
    ));
    let (grants_tx, grants_rx) = mpsc::channel(256);
    let grant_writer = tokio::spawn(store::grants::write_grant_changes(
        store.clone(),
        grants_rx,
        grants_written,
    ));
    let spool = Arc::new(store::Spool::open(&config.database.audit_spool_path())?);
    let (audit, audit_task) = AuditWriter::spawn(store.clone(), spool)?;
    let pruner = (config.database.audit_retention_days > 0).then(|| {
        let days = config.database.audit_retention_days;
        tokio::spawn(store::audit::prune_old_records(
            store.clone(),
            Duration::from_secs(days.saturating_mul(86_400)),
            cancel.clone(),
        ))
    });
    let (events_tx, mut events) = mpsc::channel(1024);
    let (link, link_task) = xmpp::link::spawn(config.xmpp.clone(), events_tx, cancel.clone());

    let mut engine = Engine::new(component, muc, config.xmpp.snapshot_page, rules);
    engine.set_breakout_muc(breakout_muc);
    engine.set_trusted_service_domains(config.rules.trusted_service_domains.clone());
    engine.set_dry_run(config.rules.dry_run);
    engine.set_approval(
        (config.rules.approval_minutes > 0)
            .then(|| Duration::from_secs(config.rules.approval_minutes.saturating_mul(60))),
    );
    engine.set_idle(
        (config.rules.idle_seconds > 0).then(|| Duration::from_secs(config.rules.idle_seconds)),
    );
    if config.rules.dry_run {
        tracing::warn!("dry run: decisions are logged and audited, nothing is sent to the module");
    }
    let mut generation = 0;
    let mut ticker = tokio::time::interval(enforce::TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut views = tokio::time::interval(Duration::from_millis(20));
    views.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        let now = jiff::Timestamp::now();
        engine.set_now(now);
        // Sleep until the next edge: a rule window, a grant's expiry, a slot holder going idle (a
        // moment past it, so the clock has crossed it).
        let edge = engine.next_edge().map(|edge| {
            let wait = edge.duration_since(now).unsigned_abs();
            tokio::time::Instant::now() + wait + Duration::from_millis(5)
        });
        let woke = tokio::select! {
            _ = async {
                match edge {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => Woke::Edge,
            _ = &mut shutdown => Woke::Shutdown,
            changed = rules_rx.changed() => match changed {
                Ok(()) => Woke::Rules(Arc::clone(&rules_rx.borrow_and_update())),
                Err(_) => Woke::Closed,
            },
            _ = ticker.tick() => Woke::Tick,
            // Live-view rows waiting for the audit log to catch up: looked at again shortly.
            _ = views.tick(), if engine.views_pending() => Woke::Views,
            // A pass over every room goes on a slice at a time between events, each slice's
            // changes sent before the next is decided. It never waits for the audit log: a revoke
            // is enforced whether or not the database keeps up (issue 13 review).
            _ = std::future::ready(()), if engine.busy() => Woke::Work,
            event = events.recv() => event.map_or(Woke::Closed, Woke::Link),
        };
        // The time of the event, not of the loop's last wake: the wait above can last seconds, and
        // decisions, explanations, queue and hand times and grant expiries are stamped with this.
        engine.set_now(jiff::Timestamp::now());
        match woke {
            Woke::Edge => engine.edge(),
            Woke::Shutdown => {
                info!("shutting down");
                break;
            }
            Woke::Closed => break,
            Woke::Rules(rules) => {
                // The rules replaced are freed on another thread: 10,000 rules take a few
                // milliseconds to free, which the first changes of the edit need not wait for.
                let retired = engine.rules_changed(rules);
                tokio::task::spawn_blocking(move || drop(retired));
            }
            Woke::Tick => engine.tick(),
            Woke::Work => engine.work(),
            Woke::Views => {}
            Woke::Link(LinkEvent::Up { generation: g }) => {
                generation = g;
                engine.link_up();
            }
            Woke::Link(LinkEvent::Down) => engine.link_down(),
            Woke::Link(LinkEvent::Stanza(stanza)) => engine.stanza(*stanza),
        }
        let effects = engine.take_effects();
        // The records reach the spool before their decisions the link (synced if one revokes).
        audit.write(
            effects
                .audit
                .into_iter()
                .map(|record| store::Write::Decision(Box::new(record)))
                .chain(effects.view.into_iter().map(store::Write::View))
                .collect(),
        );
        for stanza in effects.stanzas {
            link.send(generation, stanza);
        }
        // The live view waits while the audit log is behind (decision records first), and mostly
        // while a pass is under way.
        if engine.views_pending() && audit.backlog() < VIEWS_WHEN_BACKLOG_BELOW {
            engine.flush_views(if engine.busy() {
                VIEWS_PER_TURN_IN_A_PASS
            } else {
                VIEWS_PER_TURN
            });
            let views = engine.take_effects().view;
            if !views.is_empty() {
                audit.write(views.into_iter().map(store::Write::View).collect());
            }
        }
        for change in effects.grants {
            if let Err(error) = grants_tx.try_send(change) {
                tracing::warn!(%error, "approval dropped: the grant writer is behind");
            }
        }
    }
    // What this instance governed is no longer governed by it.
    info!(
        queued = audit.backlog(),
        "writing the audit records still queued"
    );
    audit.close_view();

    cancel.cancel();
    drop(grants_tx);
    let _ = grant_writer.await;
    let _ = link_task.await;
    let _ = watcher.await;
    if let Some(pruner) = pruner {
        let _ = pruner.await;
    }
    drop(audit);
    drop(engine);
    let _ = audit_task.await;
    store.close().await;
    info!("stopped");
    Ok(())
}
