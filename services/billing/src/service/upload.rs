//! Bulk loads: a client stream of bills (`UpsertBills`) or the CSV billers export
//! (`UploadBillsCsv`). One transaction per load: a load that breaks off loads nothing, and
//! its retry under the same key loads it once (the key is claimed when the load is read, see
//! `Transactions::once_streamed`). Bills are written in chunks: the chunk's existing bills
//! read and locked, the new ones inserted with one statement, the adjusted ones updated with
//! one more (each adjustment recorded).

use std::collections::{HashMap, HashSet};

use paymesh_platform::ApiError;
use paymesh_platform::auth::principal;
use paymesh_platform::edge::Violations;
use paymesh_platform::edge::fields::{db, require_acting_for, uuid_field};
use paymesh_proto::billing::v1 as pb;
use prost::Message;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use tonic::{Request, Streaming};
use uuid::Uuid;

use super::BillingService;
use crate::bills::{NewBill, check, read_csv};
use crate::policy::Stored;
use crate::store::{self, BillRow};

/// Bills written per statement.
const CHUNK_BILLS: usize = 2_000;
/// Rejected bills listed in the answer (all are counted).
pub const REJECTED_LISTED_MAX: usize = 1_000;
/// Largest CSV upload.
pub const CSV_BYTES_MAX: usize = 64 << 20;

/// A load in progress.
struct Loader {
    biller: Uuid,
    policy: std::sync::Arc<crate::store::PolicyRow>,
    by: String,
    pending: Vec<(u64, NewBill)>,
    numbers: HashSet<String>,
    answer: pb::UpsertBillsResponse,
}

impl Loader {
    fn reject(&mut self, line: u64, bill_number: &str, reason: String) {
        self.answer.rejected_count += 1;
        if self.answer.rejected.len() < REJECTED_LISTED_MAX {
            self.answer.rejected.push(pb::RejectedBill {
                line,
                bill_number: bill_number.trim().to_owned(),
                reason,
            });
        }
    }

    async fn add(
        &mut self,
        tx: &mut PgConnection,
        line: u64,
        input: Result<&pb::BillInput, String>,
    ) -> Result<(), ApiError> {
        let bill = match input.map(|i| (i, check(&self.policy.policy, i))) {
            Err(why) => {
                self.reject(line, "", why);
                return Ok(());
            }
            Ok((i, Err(why))) => {
                self.reject(line, &i.bill_number, why);
                return Ok(());
            }
            Ok((_, Ok(bill))) => bill,
        };
        // The same number twice in one chunk: the first is written before the second.
        if self.numbers.contains(&bill.bill_number) {
            self.flush(tx).await?;
        }
        self.numbers.insert(bill.bill_number.clone());
        self.pending.push((line, bill));
        if self.pending.len() >= CHUNK_BILLS {
            self.flush(tx).await?;
        }
        Ok(())
    }

    async fn flush(&mut self, tx: &mut PgConnection) -> Result<(), ApiError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        self.numbers.clear();
        let numbers: Vec<String> = pending.iter().map(|(_, b)| b.bill_number.clone()).collect();
        let existing: HashMap<String, BillRow> = store::bills_by_number(tx, self.biller, &numbers)
            .await
            .map_err(db)?
            .into_iter()
            .map(|r| (r.bill_number.clone(), r))
            .collect();
        let mut new = Vec::new();
        let mut changes = Vec::new();
        let mut refused = Vec::new();
        for (line, bill) in &pending {
            match existing.get(&bill.bill_number) {
                None => new.push((*line, bill)),
                Some(old) if old.same_as(bill) => self.answer.unchanged += 1,
                Some(old) if old.status == Stored::Cancelled => refused.push((
                    *line,
                    bill,
                    "BILL_CANCELLED: the bill was cancelled; post it under a new number"
                        .to_string(),
                )),
                Some(old) if old.amount_paid > 0 || old.status != Stored::Open => refused.push((
                    *line,
                    bill,
                    "BILL_HAS_PAYMENTS: a bill with payments cannot be adjusted".to_string(),
                )),
                Some(old) => changes.push((old, bill)),
            }
        }
        for (line, bill, why) in refused {
            self.reject(line, &bill.bill_number, why);
        }
        let bills: Vec<&NewBill> = new.iter().map(|(_, b)| *b).collect();
        let inserted: HashSet<String> = store::insert_bills(tx, self.biller, &bills)
            .await
            .map_err(db)?
            .into_iter()
            .collect();
        self.answer.loaded += inserted.len() as u64;
        for (line, bill) in new {
            if !inserted.contains(&bill.bill_number) {
                self.reject(
                    line,
                    &bill.bill_number,
                    "BILL_LOADED_CONCURRENTLY: another load wrote this bill meanwhile; load it again"
                        .into(),
                );
            }
        }
        store::adjust_bills(tx, &changes, &self.by)
            .await
            .map_err(db)?;
        self.answer.adjusted += changes.len() as u64;
        Ok(())
    }
}

fn broken(status: &tonic::Status) -> ApiError {
    ApiError::invalid(
        "request",
        format!("the stream broke off: {}", status.message()),
    )
}

impl BillingService {
    /// The first message's biller: checked, the caller acting for it, ACTIVE, with a policy.
    async fn loader(
        &self,
        caller: &paymesh_platform::auth::Principal,
        biller_id: &str,
    ) -> Result<Loader, ApiError> {
        let mut v = Violations::default();
        let biller = uuid_field(&mut v, "biller_id", biller_id);
        v.into_result()?;
        let biller = biller.ok_or_else(|| ApiError::invalid("biller_id", "required"))?;
        require_acting_for(caller, biller)?;
        self.active_biller(biller).await?;
        let policy = self.policy_of(biller).await?;
        Ok(Loader {
            biller,
            policy,
            by: caller.to_string(),
            pending: Vec::new(),
            numbers: HashSet::new(),
            answer: pb::UpsertBillsResponse::default(),
        })
    }

    pub(super) async fn upsert_bills(
        &self,
        request: Request<Streaming<pb::UpsertBillsRequest>>,
    ) -> Result<pb::UpsertBillsResponse, ApiError> {
        let caller = principal(&request)?.clone();
        let (meta, ext, mut stream) = request.into_parts();
        let first = stream
            .message()
            .await
            .map_err(|s| broken(&s))?
            .ok_or_else(|| ApiError::invalid("biller_id", "the stream is empty"))?;
        let mut loader = self.loader(&caller, &first.biller_id).await?;
        let keyed = Request::from_parts(meta, ext, ());
        self.inner
            .tx
            .once_streamed(&keyed, |mut work| async move {
                let mut digest = Sha256::new();
                // Bills are numbered 0, 1, … across the stream's messages.
                let mut index = 0u64;
                let mut first_message = true;
                let mut message = Some(first);
                while let Some(m) = message {
                    let bytes = m.encode_to_vec();
                    digest.update((bytes.len() as u64).to_be_bytes());
                    digest.update(&bytes);
                    if !first_message
                        && !m.biller_id.is_empty()
                        && m.biller_id != loader.biller.to_string()
                    {
                        return Err(ApiError::invalid(
                            "biller_id",
                            "one load is for one biller: name it in the first message only",
                        ));
                    }
                    first_message = false;
                    for bill in &m.bills {
                        loader.add(&mut work.tx, index, Ok(bill)).await?;
                        index += 1;
                    }
                    message = stream.message().await.map_err(|s| broken(&s))?;
                }
                loader.flush(&mut work.tx).await?;
                Ok((work, digest.finalize().into(), loader.answer))
            })
            .await
    }

    pub(super) async fn upload_csv(
        &self,
        request: Request<Streaming<pb::UploadBillsCsvRequest>>,
    ) -> Result<pb::UploadBillsCsvResponse, ApiError> {
        let caller = principal(&request)?.clone();
        let (meta, ext, mut stream) = request.into_parts();
        let first = stream
            .message()
            .await
            .map_err(|s| broken(&s))?
            .ok_or_else(|| ApiError::invalid("biller_id", "the stream is empty"))?;
        let mut loader = self.loader(&caller, &first.biller_id).await?;
        let mut file = first.chunk;
        while let Some(m) = stream.message().await.map_err(|s| broken(&s))? {
            if file.len() + m.chunk.len() > CSV_BYTES_MAX {
                return Err(ApiError::invalid(
                    "chunk",
                    format!(
                        "the file is larger than {} MiB: split it, or load it with UpsertBills",
                        CSV_BYTES_MAX >> 20
                    ),
                ));
            }
            file.extend_from_slice(&m.chunk);
        }
        let rows = read_csv(&file).map_err(|why| ApiError::invalid("chunk", why))?;
        let mut digest = Sha256::new();
        digest.update(loader.biller.as_bytes());
        digest.update(&file);
        let keyed = Request::from_parts(meta, ext, ());
        self.inner
            .tx
            .once_streamed(&keyed, |mut work| async move {
                for (line, row) in &rows {
                    loader
                        .add(&mut work.tx, *line, row.as_ref().map_err(Clone::clone))
                        .await?;
                }
                loader.flush(&mut work.tx).await?;
                Ok((work, digest.finalize().into(), uploaded(loader.answer)))
            })
            .await
    }
}

/// A CSV load's answer: the stream's, under the RPC's own type.
pub fn uploaded(r: pb::UpsertBillsResponse) -> pb::UploadBillsCsvResponse {
    pb::UploadBillsCsvResponse {
        loaded: r.loaded,
        unchanged: r.unchanged,
        adjusted: r.adjusted,
        rejected: r.rejected,
        rejected_count: r.rejected_count,
    }
}
