//! An effect made exactly once under an idempotency key: the key is claimed in the effect's
//! own PostgreSQL transaction and the answer stored there before commit (see
//! [`crate::idempotency::pg`]), so a retry after any crash or Redis loss gets the first answer
//! and never a second effect.

use std::future::Future;
use std::time::Duration;

use prost::Message;
use sqlx::{PgPool, Postgres, Transaction};

use crate::error::ApiError;
use crate::idempotency::{IdempotencyContext, KEY_METADATA, pg};

/// An effect in the making: its transaction (make the effect in `tx`) and the claimed key.
pub struct Work {
    pub tx: Transaction<'static, Postgres>,
    ctx: IdempotencyContext,
}

impl Work {
    /// The claimed key's identity (caller, RPC, key): the same for every retry of the request,
    /// so ids derived from it make an effect outside this transaction (a ledger posting)
    /// land once however often the request is retried.
    pub fn key_scope(&self) -> &str {
        &self.ctx.scope_key
    }
}

/// What [`Transactions::begin`] found.
pub enum Begun<M> {
    /// Make the effect in this transaction, then [`Transactions::commit`].
    Fresh(Transaction<'static, Postgres>, IdempotencyContext),
    /// The key was used for this request before: its stored answer.
    Replay(M),
}

/// A service's idempotent transactions: its pool, the schema of its `idempotency_keys`
/// table, and how long keys are kept.
#[derive(Clone, Debug)]
pub struct Transactions {
    pool: PgPool,
    schema: &'static str,
    retention: Duration,
}

impl Transactions {
    pub fn new(pool: PgPool, schema: &'static str, retention: Duration) -> Transactions {
        Transactions {
            pool,
            schema,
            retention,
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Runs `body` once per idempotency key: a retry of the same request gets the stored
    /// answer and `body` does not run; otherwise `body` makes its effect in `work.tx` and hands
    /// the work back with its answer, which is stored with the effect and committed.
    pub async fn once<M, T, F, Fut>(&self, req: &tonic::Request<T>, body: F) -> Result<M, ApiError>
    where
        M: Message + Default,
        F: FnOnce(Work) -> Fut,
        Fut: Future<Output = Result<(Work, M), ApiError>>,
    {
        self.once_storing(req, |work| async move {
            let (work, answer) = body(work).await?;
            Ok((work, None, answer))
        })
        .await
    }

    /// As [`Transactions::once`], where what a retry gets may differ from the first answer
    /// (`Some(stored)`): a secret shown once is left out of what is kept.
    pub async fn once_storing<M, T, F, Fut>(
        &self,
        req: &tonic::Request<T>,
        body: F,
    ) -> Result<M, ApiError>
    where
        M: Message + Default,
        F: FnOnce(Work) -> Fut,
        Fut: Future<Output = Result<(Work, Option<M>, M), ApiError>>,
    {
        match self.begin::<M, T>(req).await? {
            Begun::Replay(answer) => Ok(answer),
            Begun::Fresh(tx, ctx) => {
                let (work, stored, answer) = body(Work { tx, ctx }).await?;
                self.commit(work.tx, &work.ctx, stored.as_ref().unwrap_or(&answer))
                    .await?;
                Ok(answer)
            }
        }
    }

    /// Runs `body` once per idempotency key for a client stream (an RPC marked
    /// `Rpc::streamed`): `body` reads the stream, makes its effect in `work.tx` and hands back
    /// the SHA-256 of what it read with its answer; the key is claimed then, in the same
    /// transaction. A concurrent retry blocks on the first's claim until it commits, then gets
    /// the stored answer (its own effect rolled back); the same key with other messages is
    /// `IDEMPOTENCY_KEY_REUSED`.
    pub async fn once_streamed<M, T, F, Fut>(
        &self,
        req: &tonic::Request<T>,
        body: F,
    ) -> Result<M, ApiError>
    where
        M: Message + Default,
        F: FnOnce(Work) -> Fut,
        Fut: Future<Output = Result<(Work, [u8; 32], M), ApiError>>,
    {
        let ctx = key_context(req)?;
        let tx = self.pool.begin().await.map_err(internal)?;
        let (mut work, fingerprint, answer) = body(Work { tx, ctx }).await?;
        work.ctx.fingerprint = fingerprint;
        match pg::claim(&mut work.tx, self.schema, &work.ctx, self.retention).await? {
            pg::Claim::New => {
                self.commit(work.tx, &work.ctx, &answer).await?;
                Ok(answer)
            }
            // Dropping the transaction rolls this attempt's effect back.
            pg::Claim::Replay(bytes) => M::decode(bytes.as_slice())
                .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored idempotent answer: {e}"))),
        }
    }

    /// The answer stored for this request's key, if it was answered before: for a handler
    /// whose checks depend on more than the request (a signed reference that expires, a key
    /// that changed with a restart), so that a retry of a request already answered gets its
    /// answer rather than a refusal those checks would give now. A read; it claims nothing.
    pub async fn answered<M: Message + Default, T>(
        &self,
        req: &tonic::Request<T>,
    ) -> Result<Option<M>, ApiError> {
        let ctx = key_context(req)?;
        match pg::stored(&self.pool, self.schema, &ctx).await? {
            None => Ok(None),
            Some(bytes) => M::decode(bytes.as_slice())
                .map(Some)
                .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored idempotent answer: {e}"))),
        }
    }

    /// Opens the transaction and claims the request's key in it (the idempotency layer put the
    /// key on the request; a mutating RPC without one is refused).
    pub async fn begin<M: Message + Default, T>(
        &self,
        req: &tonic::Request<T>,
    ) -> Result<Begun<M>, ApiError> {
        let ctx = key_context(req)?;
        let mut tx = self.pool.begin().await.map_err(internal)?;
        match pg::claim(&mut tx, self.schema, &ctx, self.retention).await? {
            pg::Claim::New => Ok(Begun::Fresh(tx, ctx)),
            pg::Claim::Replay(bytes) => M::decode(bytes.as_slice())
                .map(Begun::Replay)
                .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored idempotent answer: {e}"))),
        }
    }

    /// Stores `answer` as the key's response and commits the effect with it.
    pub async fn commit<M: Message>(
        &self,
        mut tx: Transaction<'static, Postgres>,
        ctx: &IdempotencyContext,
        answer: &M,
    ) -> Result<(), ApiError> {
        pg::finish(&mut tx, self.schema, ctx, &answer.encode_to_vec()).await?;
        tx.commit().await.map_err(internal)
    }
}

/// Group commit: several requests' effects made in one transaction, each once per key, with
/// set-based statements ([`pg::claim_many`], [`pg::finish_many`], [`pg::release_many`]).
/// The group's transaction claims every key at once; a request whose key was claimed before is
/// handed back to go [`Transactions::once`]'s way on its own (which replays, waits or refuses
/// as usual); a refused request's key is released before the commit, so it is not kept.
impl Transactions {
    /// The request's key as the idempotency layer put it (a mutating RPC without one is
    /// refused): what a group needs of the request to claim and answer it later.
    pub fn key<T>(req: &tonic::Request<T>) -> Result<IdempotencyContext, ApiError> {
        key_context(req)
    }

    /// Opens a group's transaction, in which a lock is waited for at most `lock_wait` (a lock
    /// held long elsewhere would hold up every request of the group: past that wait the
    /// group fails, and its callers can make each request alone). The limit is set with the
    /// `BEGIN`, in its round trip.
    pub async fn begin_group(
        &self,
        lock_wait: std::time::Duration,
    ) -> Result<Transaction<'static, Postgres>, ApiError> {
        // A whole number of milliseconds, at least 1 (0 would mean no limit).
        let ms = lock_wait.as_millis().clamp(1, i32::MAX as u128);
        self.pool
            .begin_with(sqlx::AssertSqlSafe(format!(
                "BEGIN; SET LOCAL lock_timeout = {ms}"
            )))
            .await
            .map_err(internal)
    }

    /// Claims the keys in `tx`; the scope keys claimed now (the others were used before).
    pub async fn claim_group(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        keys: &[&IdempotencyContext],
    ) -> Result<std::collections::HashSet<String>, ApiError> {
        pg::claim_many(tx, self.schema, keys, self.retention).await
    }

    /// Stores the answers of the requests made, releases the keys of the refused ones, and
    /// commits the group.
    pub async fn commit_group<M: Message>(
        &self,
        mut tx: Transaction<'static, Postgres>,
        answered: &[(&IdempotencyContext, &M)],
        refused: &[&IdempotencyContext],
    ) -> Result<(), ApiError> {
        let answered: Vec<(&str, Vec<u8>)> = answered
            .iter()
            .map(|(ctx, m)| (ctx.scope_key.as_str(), m.encode_to_vec()))
            .collect();
        pg::finish_many(&mut tx, self.schema, &answered).await?;
        let refused: Vec<&str> = refused.iter().map(|c| c.scope_key.as_str()).collect();
        pg::release_many(&mut tx, self.schema, &refused).await?;
        tx.commit().await.map_err(internal)
    }
}

/// The key the idempotency layer put on the request; a mutating RPC without one is refused.
fn key_context<T>(req: &tonic::Request<T>) -> Result<IdempotencyContext, ApiError> {
    req.extensions()
        .get::<IdempotencyContext>()
        .cloned()
        .ok_or_else(|| {
            ApiError::invalid(
                KEY_METADATA,
                "required on this RPC: send idempotency-key metadata",
            )
        })
}

fn internal(e: sqlx::Error) -> ApiError {
    ApiError::Internal(anyhow::Error::from(e))
}
