//! Wake-ups across relays: sharded pub/sub, at most once, backed by re-reads.
//!
//! Each deposit publishes an empty message on its mailbox's shard channel (inside the deposit
//! function). A relay subscribes to the channels of the mailboxes its connections hold. A message
//! can be lost (a connection drops, the topology changes), so the relay marks every subscribed
//! mailbox dirty (its connections re-read it) whenever a connection to the cluster drops, whenever
//! a subscription is confirmed (again: the library re-subscribes after reconnecting), and on a
//! slow safety poll.

use std::sync::Arc;
use std::time::Duration;

use doorless_frames::MailboxId;
use redis::cluster::ClusterClientBuilder;
use redis::{PushInfo, PushKind, Value};
use tokio::sync::mpsc;

use super::keys::{MailboxKeys, mailbox_of_channel};
use crate::store::Fanout;

enum Change {
    Subscribe(MailboxId),
    Unsubscribe(MailboxId),
}

/// The wake-up listener of one relay.
pub(super) struct Wake {
    changes: mpsc::UnboundedSender<Change>,
    task: tokio::task::JoinHandle<()>,
}

impl Wake {
    /// Connects the listener (its own connections, RESP3 for pushes) and starts its task.
    pub(super) async fn start(
        urls: &[String],
        prefix: Arc<str>,
        fanout: Arc<Fanout>,
        safety_poll: Duration,
    ) -> redis::RedisResult<Self> {
        let (pushes_tx, mut pushes) = mpsc::unbounded_channel::<PushInfo>();
        let client = ClusterClientBuilder::new(urls.to_vec())
            .use_protocol(redis::ProtocolVersion::RESP3)
            .connection_timeout(Duration::from_secs(2))
            .response_timeout(Duration::from_secs(5))
            .push_sender(pushes_tx)
            .build()?;
        let mut conn = client.get_async_connection().await?;
        let (changes, mut rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut poll = tokio::time::interval(safety_poll.max(Duration::from_millis(100)));
            poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    change = rx.recv() => match change {
                        None => break,
                        Some(Change::Subscribe(mailbox)) => {
                            let channel = MailboxKeys::new(&prefix, &mailbox).channel;
                            if let Err(err) = conn.ssubscribe(&channel).await {
                                tracing::warn!(error = %super::describe(&err), "cluster wake-up subscription failed");
                            }
                            // A deposit made before the subscription took effect woke nobody.
                            fanout.publish(mailbox);
                        }
                        Some(Change::Unsubscribe(mailbox)) => {
                            let channel = MailboxKeys::new(&prefix, &mailbox).channel;
                            let _ = conn.sunsubscribe(&channel).await;
                        }
                    },
                    Some(push) = pushes.recv() => match push.kind {
                        PushKind::SMessage | PushKind::SSubscribe => {
                            if let Some(mailbox) = push.data.first().and_then(|c| channel_mailbox(&prefix, c)) {
                                fanout.publish(mailbox);
                            }
                        }
                        PushKind::Disconnection => fanout.publish_all(),
                        _ => {}
                    },
                    _ = poll.tick() => fanout.publish_all(),
                }
            }
        });
        Ok(Self { changes, task })
    }

    /// Starts wake-ups about `mailbox` (its first local subscriber arrived).
    pub(super) fn subscribe(&self, mailbox: MailboxId) {
        let _ = self.changes.send(Change::Subscribe(mailbox));
    }

    /// Stops wake-ups about `mailbox` (its last local subscriber left).
    pub(super) fn unsubscribe(&self, mailbox: MailboxId) {
        let _ = self.changes.send(Change::Unsubscribe(mailbox));
    }

    /// Stops the listener.
    pub(super) fn stop(&self) {
        self.task.abort();
    }
}

fn channel_mailbox(prefix: &str, channel: &Value) -> Option<MailboxId> {
    match channel {
        Value::BulkString(bytes) => mailbox_of_channel(prefix, bytes),
        Value::SimpleString(text) => mailbox_of_channel(prefix, text.as_bytes()),
        _ => None,
    }
}
