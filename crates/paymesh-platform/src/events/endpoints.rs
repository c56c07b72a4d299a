//! An owner's webhook endpoint: where its events are POSTed (see [`super::Outbox`]) and the key
//! they are signed with, shown once when the URL is set.

use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::ApiError;
use crate::edge::Violations;

const URL_CHARS_MAX: usize = 500;
/// Random bytes in a signing secret.
const SECRET_BYTES: usize = 32;

/// An endpoint URL: `http://host[:port][/path]`, or empty (no endpoint). https is refused until
/// this build has a TLS client, rather than accepted and never delivered.
pub fn url_field(v: &mut Violations, text: &str) -> Option<String> {
    let text = text.trim();
    if text.is_empty() {
        return Some(String::new());
    }
    if text.len() > URL_CHARS_MAX {
        v.add("url", format!("must be at most {URL_CHARS_MAX} characters"));
        return None;
    }
    let Ok(uri) = text.parse::<http::Uri>() else {
        v.add("url", "must be an absolute http:// URL");
        return None;
    };
    match uri.scheme_str() {
        Some("http") if uri.host().is_some_and(|h| !h.is_empty()) => Some(text.to_owned()),
        Some("https") => {
            v.add(
                "url",
                "https endpoints are not delivered by this build (no TLS client yet): use http:// behind a TLS-terminating proxy you run",
            );
            None
        }
        _ => {
            v.add("url", "must be an absolute http:// URL");
            None
        }
    }
}

fn new_secret() -> Result<String, ApiError> {
    let mut b = [0u8; SECRET_BYTES];
    getrandom::getrandom(&mut b)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("drawing a webhook secret: {e}")))?;
    Ok(format!("whsec_{}", crate::hex(&b)))
}

fn sql(e: sqlx::Error) -> ApiError {
    ApiError::Internal(anyhow::Error::from(e))
}

/// An endpoint as set: its URL (empty: none), when, and the new signing secret (empty when
/// the URL is).
pub struct Set {
    pub url: String,
    pub update_us: i64,
    pub secret: String,
}

/// Sets `owner`'s endpoint in `schema` with a new secret, in the caller's transaction. No
/// endpoint, no deliveries: what was waiting is given up, visibly (FAILED).
pub async fn set(
    conn: &mut PgConnection,
    schema: &str,
    owner: Uuid,
    url: String,
) -> Result<Set, ApiError> {
    let secret = if url.is_empty() {
        String::new()
    } else {
        new_secret()?
    };
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {schema}.webhook_endpoints (merchant_id, url, secret, update_time) \
         VALUES ($1, $2, $3, clock_timestamp()) \
         ON CONFLICT (merchant_id) DO UPDATE SET url = $2, secret = $3, \
         update_time = clock_timestamp() \
         RETURNING (extract(epoch FROM update_time) * 1000000)::int8 AS update_us"
    )))
    .bind(owner)
    .bind(&url)
    .bind(&secret)
    .fetch_one(&mut *conn)
    .await
    .map_err(sql)?;
    if url.is_empty() {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {schema}.outbox SET status = 'FAILED', \
             last_error = 'the endpoint was removed' \
             WHERE merchant_id = $1 AND status = 'PENDING'"
        )))
        .bind(owner)
        .execute(&mut *conn)
        .await
        .map_err(sql)?;
    }
    Ok(Set {
        url,
        update_us: row.try_get("update_us").map_err(sql)?,
        secret,
    })
}

/// Sets `owner`'s endpoint once per idempotency key of `request` (an RPC marked
/// `replayed_by_service`): `answer` makes the RPC's answer from what was set, with the new
/// secret the first time and without it for what is kept (a retry gets the endpoint only: the
/// secret is shown once).
pub async fn update<M, T>(
    tx: &crate::edge::Transactions,
    request: &tonic::Request<T>,
    schema: &'static str,
    owner: Uuid,
    url: String,
    answer: impl Fn(&Set) -> M + Send,
) -> Result<M, ApiError>
where
    M: prost::Message + Default,
{
    tx.once_storing(request, |mut work| async move {
        let set = self::set(&mut work.tx, schema, owner, url).await?;
        let kept = answer(&Set {
            secret: String::new(),
            url: set.url.clone(),
            update_us: set.update_us,
        });
        Ok((work, Some(kept), answer(&set)))
    })
    .await
}

/// The owner (field `owner_field`, e.g. `merchant_id`) and URL of a request to set an endpoint:
/// checked, and the caller allowed to act for the owner.
pub fn checked_update(
    caller: &crate::auth::Principal,
    owner_field: &str,
    owner: &str,
    url: &str,
) -> Result<(Uuid, String), ApiError> {
    let mut v = Violations::default();
    let owner_id = crate::edge::fields::uuid_field(&mut v, owner_field, owner);
    let url = url_field(&mut v, url);
    if let Some(o) = owner_id {
        crate::edge::fields::require_acting_for(caller, o)?;
    }
    v.into_result()?;
    match (owner_id, url) {
        (Some(o), Some(u)) => Ok((o, u)),
        _ => Err(ApiError::invalid(owner_field, "required")),
    }
}

/// The endpoint of the owner named in field `owner_field` of a read, if `caller` may read it;
/// NOT_FOUND when it set none.
pub async fn checked_get(
    pool: &PgPool,
    schema: &str,
    caller: &crate::auth::Principal,
    owner_field: &str,
    owner: &str,
) -> Result<(Uuid, Current), ApiError> {
    let mut v = Violations::default();
    let owner_id = crate::edge::fields::uuid_field(&mut v, owner_field, owner);
    v.into_result()?;
    let owner = owner_id.ok_or_else(|| ApiError::invalid(owner_field, "required"))?;
    if !crate::edge::fields::may_read(caller, owner) {
        return Err(ApiError::PermissionDenied(format!(
            "{caller} may not read {owner}'s webhook endpoint"
        )));
    }
    let current = get(pool, schema, owner).await?.ok_or(ApiError::NotFound {
        resource: "webhook endpoint",
    })?;
    Ok((owner, current))
}

/// An endpoint and its deliveries waiting and given up.
pub struct Current {
    pub url: String,
    pub update_us: i64,
    pub pending: i64,
    pub failed: i64,
}

/// `owner`'s endpoint in `schema`, if it set one.
pub async fn get(pool: &PgPool, schema: &str, owner: Uuid) -> Result<Option<Current>, ApiError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT e.url, (extract(epoch FROM e.update_time) * 1000000)::int8 AS update_us, \
         (SELECT count(*) FROM {schema}.outbox o WHERE o.merchant_id = $1 AND o.status = 'PENDING') AS pending, \
         (SELECT count(*) FROM {schema}.outbox o WHERE o.merchant_id = $1 AND o.status = 'FAILED') AS failed \
         FROM {schema}.webhook_endpoints e WHERE e.merchant_id = $1"
    )))
    .bind(owner)
    .fetch_optional(pool)
    .await
    .map_err(sql)?;
    row.map(|r| {
        Ok(Current {
            url: r.try_get("url").map_err(sql)?,
            update_us: r.try_get("update_us").map_err(sql)?,
            pending: r.try_get("pending").map_err(sql)?,
            failed: r.try_get("failed").map_err(sql)?,
        })
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let check = |t: &str| {
            let mut v = Violations::default();
            let r = url_field(&mut v, t);
            (r, v.into_result().is_ok())
        };
        assert_eq!(check(""), (Some(String::new()), true));
        assert_eq!(
            check("http://127.0.0.1:9000/hooks"),
            (Some("http://127.0.0.1:9000/hooks".into()), true)
        );
        for bad in [
            "https://shop.example/h",
            "ftp://x/",
            "/relative",
            "http://",
            "no scheme",
        ] {
            assert_eq!(check(bad), (None, false), "{bad}");
        }
    }

    #[test]
    fn secrets_are_long_and_fresh() {
        let (a, b) = (new_secret().unwrap(), new_secret().unwrap());
        assert_eq!(a.len(), "whsec_".len() + 64);
        assert_ne!(a, b);
    }
}
