//! Keeps this process's batches in the order they reserved their timestamps while they take
//! their account locks and their place in the commit order (`seq`).
//!
//! A batch's rows go in with `seq` = their timestamp, reserved when the batch starts; if a
//! batch that started later takes the commit-order counter first, the earlier batch has to
//! move its rows up (`store::shift_seq`: one UPDATE of every row, by far the most expensive
//! statement of a batch). On a hot account that happened to one batch in five under load: two
//! writers insert at once, and whichever insert ends first locks the account first. So a batch
//! waits, before it locks its accounts, until every earlier batch of this process has locked
//! theirs, and before it takes its place in the order, until every earlier batch has taken its
//! own. The waits are bounded ([`WAIT_MAX`]): a batch whose insert waits in PostgreSQL for a later
//! batch (both insert the same new id) would otherwise never get there; after the bound the later
//! batch goes on, and the earlier one, if overtaken, moves its rows as before. Batches of
//! another ledger process are not ordered here; the counter keeps the order exact for them.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

/// Longest wait for earlier batches. Under load an earlier batch locks within a commit or two
/// (tens of milliseconds); one stuck behind a lock held elsewhere (another process, an
/// operator's session) holds each later batch back by this much at most, so it stays short.
const WAIT_MAX: Duration = Duration::from_millis(100);

/// How far a batch has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Started,
    /// Its accounts are locked.
    Locked,
    /// It has its place in the commit order.
    Ordered,
}

/// The batches of this process in flight, by their first timestamp.
#[derive(Default)]
pub struct CommitOrder {
    batches: Mutex<BTreeMap<i64, Stage>>,
    changed: Notify,
}

/// One batch's place; leaving it (drop) lets the later batches on.
pub struct Ticket<'a> {
    order: &'a CommitOrder,
    key: i64,
}

impl CommitOrder {
    /// Enters a batch whose timestamps `reserve` hands out (its first one is the key): reserving
    /// under the same lock keeps the keys in the order the batches are entered.
    pub fn enter(&self, reserve: impl FnOnce() -> i64) -> (Ticket<'_>, i64) {
        let mut batches = self
            .batches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = reserve();
        batches.insert(key, Stage::Started);
        (Ticket { order: self, key }, key)
    }

    fn earlier_reached(&self, key: i64, stage: Stage) -> bool {
        let batches = self
            .batches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        batches.range(..key).all(|(_, s)| *s >= stage)
    }

    fn set(&self, key: i64, stage: Stage) {
        let mut batches = self
            .batches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(s) = batches.get_mut(&key) {
            *s = stage;
        }
        drop(batches);
        self.changed.notify_waiters();
    }
}

impl Ticket<'_> {
    /// Waits until every batch of this process that started earlier has reached `stage` or
    /// left; false when it gave up after [`WAIT_MAX`] (the caller goes on regardless).
    pub async fn wait_for_earlier(&self, stage: Stage) -> bool {
        let order = self.order;
        let wait = async {
            loop {
                let changed = order.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                if order.earlier_reached(self.key, stage) {
                    return;
                }
                changed.await;
            }
        };
        tokio::time::timeout(WAIT_MAX, wait).await.is_ok()
    }

    /// This batch has reached `stage`.
    pub fn reached(&self, stage: Stage) {
        self.order.set(self.key, stage);
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        let mut batches = self
            .order
            .batches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        batches.remove(&self.key);
        drop(batches);
        self.order.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_later_batch_waits_for_the_earlier_one_and_not_for_a_later_one() {
        let order = CommitOrder::default();
        let (first, a) = order.enter(|| 10);
        let (second, b) = order.enter(|| 20);
        assert!(a < b);
        // The first waits for nobody, the second for the first.
        assert!(first.wait_for_earlier(Stage::Ordered).await);
        assert!(!order.earlier_reached(b, Stage::Locked));
        let release = async {
            tokio::task::yield_now().await;
            first.reached(Stage::Locked);
        };
        let (waited, ()) = tokio::join!(second.wait_for_earlier(Stage::Locked), release);
        assert!(waited);
        assert!(!order.earlier_reached(b, Stage::Ordered));
        // Leaving counts as having reached every stage.
        drop(first);
        assert!(second.wait_for_earlier(Stage::Ordered).await);
    }

    #[tokio::test]
    async fn the_wait_is_bounded() {
        let order = CommitOrder::default();
        let (_first, _) = order.enter(|| 1);
        let (second, _) = order.enter(|| 2);
        assert!(!second.wait_for_earlier(Stage::Locked).await);
    }
}
