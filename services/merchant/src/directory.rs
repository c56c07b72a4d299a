//! The merchants another service needs to know, read with [`MerchantClient`] (the merchant
//! service's RPCs are the only way to its data) and kept for a while (the payment service's
//! `payment.merchant_cache_ms`, the billing service's `billing.biller_cache_ms`), so a busy
//! stall or biller does not cost a merchant call per payment. A merchant suspended or closed
//! is seen as such within that time; until then its credits are still matched to it (its
//! money, on its account).
//!
//! Virtual accounts not in the cache are looked up together: whatever lookups wait while one
//! call is out go in the next `LookupVirtualAccounts` call (up to 256 numbers, two calls at
//! once), so a payment service matching many credits to many merchants makes one merchant call
//! per group of credits, not one per credit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::client::MerchantClient;
use crate::service::VIRTUAL_ACCOUNTS_PER_LOOKUP_MAX;
use paymesh_money::fees::FeePlan;
use paymesh_platform::ApiError;
use paymesh_platform::group::{Queue, next_group, queue, spawn_combiners};
use paymesh_proto::merchant::v1 as mpb;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// Entries kept at most per map; beyond it the map starts over (a flood of unknown account
/// numbers cannot grow memory).
const ENTRIES_MAX: usize = 100_000;
/// Virtual-account lookups waiting for a call at most (then callers wait to add theirs).
const ACCOUNTS_WAITING_MAX: usize = 4096;
/// `LookupVirtualAccounts` calls out at once.
const ACCOUNT_CALLS_MAX: usize = 2;

/// What other services need of a merchant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerchantInfo {
    pub id: Uuid,
    pub active: bool,
    /// A biller (utility, school, hospital, office) rather than a vendor.
    pub biller: bool,
    /// A biller's category as its enum name without the prefix (`ELECTRICITY`); empty for
    /// vendors.
    pub biller_category: String,
    pub business_name: String,
    pub virtual_account_number: String,
    /// Empty before the first approval.
    pub static_qr_payload: String,
    /// The merchant's own fee plan; `None`: the service's default.
    pub fee_plan: Option<FeePlan>,
}

impl MerchantInfo {
    fn from_pb(m: &mpb::Merchant) -> Result<MerchantInfo, ApiError> {
        let id = Uuid::try_parse(&m.id).map_err(|e| {
            ApiError::Internal(anyhow::anyhow!("merchant service sent id {:?}: {e}", m.id))
        })?;
        Ok(MerchantInfo {
            id,
            active: m.status == mpb::MerchantStatus::Active as i32,
            biller: m.kind == mpb::MerchantKind::Biller as i32,
            biller_category: mpb::BillerCategory::try_from(m.biller_category)
                .ok()
                .filter(|c| *c != mpb::BillerCategory::Unspecified)
                .map(|c| {
                    c.as_str_name()
                        .trim_start_matches("BILLER_CATEGORY_")
                        .to_owned()
                })
                .unwrap_or_default(),
            business_name: m.business_name.clone(),
            virtual_account_number: m.virtual_account_number.clone(),
            static_qr_payload: m.static_qr_payload.clone(),
            fee_plan: crate::client::fee_plan(m).map_err(|e| {
                ApiError::Internal(anyhow::anyhow!(
                    "merchant {id} has a fee plan this service cannot read ({:?}): {e}",
                    m.fee_plan
                ))
            })?,
        })
    }
}

type Cache<K> = Mutex<HashMap<K, (Instant, Option<Arc<MerchantInfo>>)>>;

/// What a lookup answers: the holder, if any.
type Found = Result<Option<Arc<MerchantInfo>>, ApiError>;

/// A virtual account to look up, waiting for its call.
struct Asked {
    number: String,
    reply: oneshot::Sender<Found>,
}

#[derive(Clone)]
pub struct Directory {
    client: MerchantClient,
    ttl: Duration,
    by_id: Arc<Cache<Uuid>>,
    by_account: Arc<Cache<String>>,
    accounts: mpsc::Sender<Asked>,
}

fn cached<K: std::hash::Hash + Eq>(
    cache: &Cache<K>,
    key: &K,
    ttl: Duration,
) -> Option<Option<Arc<MerchantInfo>>> {
    let map = cache.lock().unwrap_or_else(PoisonError::into_inner);
    map.get(key)
        .filter(|(at, _)| at.elapsed() < ttl)
        .map(|(_, info)| info.clone())
}

fn keep<K: std::hash::Hash + Eq>(cache: &Cache<K>, key: K, info: Option<Arc<MerchantInfo>>) {
    let mut map = cache.lock().unwrap_or_else(PoisonError::into_inner);
    if map.len() >= ENTRIES_MAX {
        map.clear();
    }
    map.insert(key, (Instant::now(), info));
}

/// Answers the virtual accounts asked, a group per call, for as long as a [`Directory`]
/// lives.
async fn look_up_accounts(
    client: MerchantClient,
    by_id: Arc<Cache<Uuid>>,
    by_account: Arc<Cache<String>>,
    queue: Queue<Asked>,
) {
    while let Some(asked) = next_group(&queue, VIRTUAL_ACCOUNTS_PER_LOOKUP_MAX).await {
        // A caller that has gone needs no answer.
        let asked: Vec<Asked> = asked.into_iter().filter(|a| !a.reply.is_closed()).collect();
        let mut numbers: Vec<String> = asked.iter().map(|a| a.number.clone()).collect();
        numbers.sort_unstable();
        numbers.dedup();
        if numbers.is_empty() {
            continue;
        }
        let holders = match client.by_virtual_accounts(&numbers).await {
            Ok(holders) => holders,
            Err(e) => {
                for a in asked {
                    let _ = a.reply.send(Err(e.for_another_caller()));
                }
                continue;
            }
        };
        let mut found: HashMap<String, Found> = HashMap::with_capacity(numbers.len());
        for (number, holder) in numbers.into_iter().zip(holders) {
            let info = holder
                .as_ref()
                .map(MerchantInfo::from_pb)
                .transpose()
                .map(|i| i.map(Arc::new));
            if let Ok(info) = &info {
                if let Some(i) = info {
                    keep(&by_id, i.id, Some(i.clone()));
                }
                keep(&by_account, number.clone(), info.clone());
            }
            found.insert(number, info);
        }
        for a in asked {
            let answer = match found.get(&a.number) {
                Some(Ok(info)) => Ok(info.clone()),
                Some(Err(e)) => Err(e.for_another_caller()),
                None => Err(ApiError::Internal(anyhow::anyhow!(
                    "virtual account {:?} was asked but not answered",
                    a.number
                ))),
            };
            let _ = a.reply.send(answer);
        }
    }
}

impl Directory {
    /// A directory reading through `client`, keeping what it read for `ttl`. Starts the
    /// tasks that look virtual accounts up (call it on a Tokio runtime); they end when the
    /// last clone of the directory is dropped.
    pub fn new(client: MerchantClient, ttl: Duration) -> Directory {
        let (accounts, asked) = queue(ACCOUNTS_WAITING_MAX);
        let (by_id, by_account): (Arc<Cache<Uuid>>, Arc<Cache<String>>) = Default::default();
        spawn_combiners(&asked, ACCOUNT_CALLS_MAX, |asked| {
            look_up_accounts(client.clone(), by_id.clone(), by_account.clone(), asked)
        });
        Directory {
            client,
            ttl,
            by_id,
            by_account,
            accounts,
        }
    }

    /// The merchant with this id, if there is one.
    pub async fn merchant(&self, id: Uuid) -> Result<Option<Arc<MerchantInfo>>, ApiError> {
        if let Some(hit) = cached(&self.by_id, &id, self.ttl) {
            return Ok(hit);
        }
        let found = self.client.get(&id.to_string()).await?;
        let info = found
            .as_ref()
            .map(MerchantInfo::from_pb)
            .transpose()?
            .map(Arc::new);
        keep(&self.by_id, id, info.clone());
        Ok(info)
    }

    /// The merchant whose virtual account this is, if any.
    pub async fn by_account(&self, number: &str) -> Result<Option<Arc<MerchantInfo>>, ApiError> {
        let key = number.to_owned();
        if let Some(hit) = cached(&self.by_account, &key, self.ttl) {
            return Ok(hit);
        }
        let (reply, answer) = oneshot::channel();
        let stopping = || ApiError::Unavailable("the merchant directory is stopping; retry".into());
        self.accounts
            .send(Asked { number: key, reply })
            .await
            .map_err(|_| stopping())?;
        answer.await.map_err(|_| stopping())?
    }
}
