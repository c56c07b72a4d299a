//! The merchants another service needs to know, read with [`MerchantClient`] (the merchant
//! service's RPCs are the only way to its data) and kept for a while (the payment service's
//! `payment.merchant_cache_ms`, the billing service's `billing.biller_cache_ms`), so a busy
//! stall or biller does not cost a merchant call per payment. A merchant suspended or closed
//! is seen as such within that time; until then its credits are still matched to it (its
//! money, on its account).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::client::MerchantClient;
use paymesh_money::fees::FeePlan;
use paymesh_platform::ApiError;
use paymesh_proto::merchant::v1 as mpb;
use uuid::Uuid;

/// Entries kept at most per map; beyond it the map starts over (a flood of unknown account
/// numbers cannot grow memory).
const ENTRIES_MAX: usize = 100_000;

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

#[derive(Clone)]
pub struct Directory {
    client: MerchantClient,
    ttl: Duration,
    by_id: Arc<Cache<Uuid>>,
    by_account: Arc<Cache<String>>,
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

impl Directory {
    pub fn new(client: MerchantClient, ttl: Duration) -> Directory {
        Directory {
            client,
            ttl,
            by_id: Arc::default(),
            by_account: Arc::default(),
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
        let found = self.client.by_virtual_account(number).await?;
        let info = found
            .as_ref()
            .map(MerchantInfo::from_pb)
            .transpose()?
            .map(Arc::new);
        if let Some(info) = &info {
            keep(&self.by_id, info.id, Some(info.clone()));
        }
        keep(&self.by_account, key, info.clone());
        Ok(info)
    }
}
