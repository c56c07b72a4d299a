//! A merchant's webhook endpoint: where its events are POSTed (see [`crate::outbox`]) and the
//! key they are signed with, shown once when the URL is set.

use paymesh_platform::ApiError;
use paymesh_platform::auth::principal;
use paymesh_platform::edge::Violations;
use paymesh_platform::time::timestamp_from_micros;
use paymesh_proto::payment::v1 as pb;
use sqlx::Row;
use tonic::Request;

use super::PaymentService;
use paymesh_platform::edge::fields::{may_read, require_acting_for, sql, uuid_field};

const URL_CHARS_MAX: usize = 500;
/// Random bytes in a signing secret.
const SECRET_BYTES: usize = 32;

/// An endpoint URL: `http://host[:port][/path]`. https is refused until this build has a TLS
/// client, rather than accepted and never delivered.
fn url_field(v: &mut Violations, text: &str) -> Option<String> {
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
    Ok(format!(
        "whsec_{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    ))
}

impl PaymentService {
    pub(super) async fn update_webhook_endpoint(
        &self,
        request: Request<pb::UpdateWebhookEndpointRequest>,
    ) -> Result<pb::UpdateWebhookEndpointResponse, ApiError> {
        let caller = principal(&request)?.clone();
        let req = request.get_ref();
        let mut v = Violations::default();
        let merchant = uuid_field(&mut v, "merchant_id", &req.merchant_id);
        let url = url_field(&mut v, &req.url);
        if let Some(m) = merchant {
            require_acting_for(&caller, m)?;
        }
        v.into_result()?;
        let (Some(merchant), Some(url)) = (merchant, url) else {
            return Err(ApiError::invalid("merchant_id", "required"));
        };
        self.inner
            .tx
            .once_storing(&request, |mut work| async move {
                let secret = if url.is_empty() {
                    String::new()
                } else {
                    new_secret()?
                };
                let row = sqlx::query(
                    "INSERT INTO payment.webhook_endpoints (merchant_id, url, secret, update_time) \
                     VALUES ($1, $2, $3, clock_timestamp()) \
                     ON CONFLICT (merchant_id) DO UPDATE SET url = $2, secret = $3, \
                     update_time = clock_timestamp() \
                     RETURNING (extract(epoch FROM update_time) * 1000000)::int8 AS update_us",
                )
                .bind(merchant)
                .bind(&url)
                .bind(&secret)
                .fetch_one(&mut *work.tx)
                .await
                .map_err(sql)?;
                if url.is_empty() {
                    // No endpoint, no deliveries: what was waiting is given up, visibly.
                    sqlx::query(
                        "UPDATE payment.outbox SET status = 'FAILED', \
                         last_error = 'the merchant removed its endpoint' \
                         WHERE merchant_id = $1 AND status = 'PENDING'",
                    )
                    .bind(merchant)
                    .execute(&mut *work.tx)
                    .await
                    .map_err(sql)?;
                }
                let endpoint = pb::WebhookEndpoint {
                    merchant_id: merchant.to_string(),
                    url,
                    update_time: Some(timestamp_from_micros(
                        row.try_get("update_us").map_err(sql)?,
                    )),
                };
                // The secret is shown once: a retry of this request gets the endpoint only.
                let kept = pb::UpdateWebhookEndpointResponse {
                    endpoint: Some(endpoint.clone()),
                    signing_secret: String::new(),
                };
                let answer = pb::UpdateWebhookEndpointResponse {
                    endpoint: Some(endpoint),
                    signing_secret: secret,
                };
                Ok((work, Some(kept), answer))
            })
            .await
    }

    pub(super) async fn get_webhook_endpoint(
        &self,
        request: Request<pb::GetWebhookEndpointRequest>,
    ) -> Result<pb::GetWebhookEndpointResponse, ApiError> {
        let caller = principal(&request)?;
        let mut v = Violations::default();
        let merchant = uuid_field(&mut v, "merchant_id", &request.get_ref().merchant_id);
        v.into_result()?;
        let merchant = merchant.ok_or_else(|| ApiError::invalid("merchant_id", "required"))?;
        if !may_read(caller, merchant) {
            return Err(ApiError::PermissionDenied(format!(
                "{caller} may not read merchant {merchant}'s endpoint"
            )));
        }
        let row = sqlx::query(
            "SELECT e.url, (extract(epoch FROM e.update_time) * 1000000)::int8 AS update_us, \
             (SELECT count(*) FROM payment.outbox o WHERE o.merchant_id = $1 AND o.status = 'PENDING') AS pending, \
             (SELECT count(*) FROM payment.outbox o WHERE o.merchant_id = $1 AND o.status = 'FAILED') AS failed \
             FROM payment.webhook_endpoints e WHERE e.merchant_id = $1",
        )
        .bind(merchant)
        .fetch_optional(self.pool())
        .await
        .map_err(sql)?
        .ok_or(ApiError::NotFound {
            resource: "webhook endpoint",
        })?;
        Ok(pb::GetWebhookEndpointResponse {
            endpoint: Some(pb::WebhookEndpoint {
                merchant_id: merchant.to_string(),
                url: row.try_get("url").map_err(sql)?,
                update_time: Some(timestamp_from_micros(
                    row.try_get("update_us").map_err(sql)?,
                )),
            }),
            pending_deliveries: row.try_get("pending").map_err(sql)?,
            failed_deliveries: row.try_get("failed").map_err(sql)?,
        })
    }
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
