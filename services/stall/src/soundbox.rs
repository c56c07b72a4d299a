//! The sound-box publisher: each payment a vendor receives is published to the MQTT topic of
//! every sound box she has (`paymesh/v1/soundbox/{merchant}/{terminal}`), QoS 1, as the small
//! JSON such devices announce ([`crate::announce::Announcement::sound_box_json`]).
//!
//! One task per vendor with boxes follows her payment stream from where it last got to (the
//! cursor in `stall.sound_box_cursors`, moved only after every box's PUBACK), so a restart,
//! a broker that is down or a stream that drops repeats a payment rather than losing it: at
//! least once, and a box drops a payment id it announced already. The set of vendors is
//! looked up again every `stall.mqtt_poll_ms`. Run the publisher in one replica (set
//! `stall.mqtt_url` there only): two would each publish every payment.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use paymesh_platform::mqtt::Publisher;
use uuid::Uuid;

use crate::announce;
use crate::service::{StallService, topic};
use crate::store;

/// How long one publish may wait for its PUBACK.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);
/// Waits between retries grow from this to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Runs until `stopped`.
pub async fn run(service: StallService, url: String, stopped: impl Future<Output = ()> + Send) {
    let publisher = match Publisher::new(&url, &format!("paymesh-stall-{}", std::process::id())) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, %url, "stall: sound boxes are not published to (stall.mqtt_url)");
            return;
        }
    };
    tracing::info!(%url, "stall: publishing payments to sound boxes");
    let mut followed: HashMap<Uuid, tokio::task::JoinHandle<()>> = HashMap::new();
    tokio::pin!(stopped);
    loop {
        match store::merchants_with_boxes(service.pool()).await {
            Ok(merchants) => {
                followed.retain(|m, task| {
                    let keep = merchants.contains(m) && !task.is_finished();
                    if !keep {
                        task.abort();
                    }
                    keep
                });
                for m in merchants {
                    followed.entry(m).or_insert_with(|| {
                        tokio::spawn(follow(service.clone(), publisher.clone(), m))
                    });
                }
            }
            Err(e) => tracing::warn!(error = %e, "stall: listing sound boxes failed"),
        }
        tokio::select! {
            () = &mut stopped => break,
            () = tokio::time::sleep(service.inner.settings.mqtt_poll) => {}
        }
    }
    for task in followed.values() {
        task.abort();
    }
}

/// Follows one vendor's stream for as long as she has boxes, starting again after a failure.
async fn follow(service: StallService, publisher: Publisher, merchant: Uuid) {
    let mut wait = RETRY_MIN;
    loop {
        match follow_once(&service, &publisher, merchant).await {
            Ok(()) => wait = RETRY_MIN,
            Err(e) => {
                tracing::warn!(%merchant, error = format!("{e:#}"), "stall: following payments for sound boxes failed; again shortly");
                wait = (wait * 2).min(RETRY_MAX);
            }
        }
        tokio::time::sleep(wait).await;
    }
}

async fn follow_once(
    service: &StallService,
    publisher: &Publisher,
    merchant: Uuid,
) -> anyhow::Result<()> {
    let pool = service.pool();
    let after = store::box_cursor(pool, merchant)
        .await?
        .map(|c| c.to_string())
        .unwrap_or_default();
    let m = service
        .inner
        .merchants
        .get(&merchant.to_string())
        .await?
        .context("the merchant is gone")?;
    let stream = service
        .inner
        .payments
        .watch(&merchant.to_string(), &after)
        .await?;
    let _following = Following::new(service, merchant);
    publish_stream(
        service,
        publisher,
        merchant,
        &m.virtual_account_number,
        stream,
    )
    .await
}

/// Marks a vendor followed for as long as it lives.
struct Following<'a> {
    service: &'a StallService,
    merchant: Uuid,
}

impl<'a> Following<'a> {
    fn new(service: &'a StallService, merchant: Uuid) -> Following<'a> {
        service.set_following(merchant, true);
        Following { service, merchant }
    }
}

impl Drop for Following<'_> {
    fn drop(&mut self) {
        self.service.set_following(self.merchant, false);
    }
}

async fn publish_stream(
    service: &StallService,
    publisher: &Publisher,
    merchant: Uuid,
    account: &str,
    mut stream: tonic::Streaming<paymesh_proto::payment::v1::WatchPaymentsResponse>,
) -> anyhow::Result<()> {
    let pool = service.pool();
    while let Some(message) = stream.message().await? {
        let Some(event) = message.event else {
            continue;
        };
        let cursor: i64 = event
            .cursor
            .parse()
            .with_context(|| format!("the payment stream's cursor {:?}", event.cursor))?;
        if let Some(a) = announce::of_event(&event) {
            let payload = a.sound_box_json(account).to_string();
            for b in store::sound_boxes(pool, merchant).await? {
                publish_until_acked(publisher, &topic(merchant, &b.terminal_id), &payload).await;
            }
        }
        store::set_box_cursor(pool, merchant, cursor).await?;
    }
    Ok(())
}

/// Publishes until the broker acknowledges it (the task is aborted when the vendor's last box
/// is removed or the mesh stops).
async fn publish_until_acked(publisher: &Publisher, topic: &str, payload: &str) {
    let mut wait = RETRY_MIN;
    loop {
        match publisher
            .publish(topic, payload.as_bytes(), PUBLISH_TIMEOUT)
            .await
        {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(
                    topic,
                    error = format!("{e:#}"),
                    "stall: MQTT publish failed; retrying"
                );
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(RETRY_MAX);
            }
        }
    }
}
