//! The gRPC surface, `paymesh.stall.v1.StallService` (sign-in links, sessions, sound boxes),
//! its description for the platform's service kit ([`SERVICE`]), and start-up: the stall
//! page's HTTP edge ([`crate::page`]) and the sound-box publisher ([`crate::soundbox`]).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use futures::future::BoxFuture;
use paymesh_merchant::client::MerchantClient;
use paymesh_payment::client::PaymentClient;
use paymesh_platform::ApiError;
use paymesh_platform::auth::{Principal, principal};
use paymesh_platform::config::Section;
use paymesh_platform::edge::Violations;
use paymesh_platform::edge::answer;
use paymesh_platform::edge::fields::{sql, uuid_field};
use paymesh_platform::idempotency::KeyRule;
use paymesh_platform::kit::{Callers, Rpc, ServiceDef, StartContext, Started, is_owner};
use paymesh_platform::migrate::Migration;
use paymesh_platform::time::timestamp_from_ns;
use paymesh_proto::merchant::v1 as mpb;
use paymesh_proto::stall::v1 as pb;
use paymesh_proto::stall::v1::stall_service_server::{self, StallServiceServer};
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::sessions;
use crate::settings::{self, Settings};
use crate::store::{self, SoundBoxRow};

/// The stall service as the service kit starts it.
pub struct Stall;

/// The stall service's description: list it where the binary lists its services.
pub static SERVICE: Stall = Stall;

/// Operators for any vendor, a vendor for herself (handlers check the owner).
const VENDORS: Callers = Callers::OPERATOR.or(Callers::MERCHANT);

pub const RPCS: &[Rpc] = &[
    // The link holds a secret kept nowhere: the layer keeps no answer, and a retry makes
    // another link (links are one-time and short-lived; an unused one expires).
    Rpc::write("CreateSignInLink", VENDORS, KeyRule::Optional).replayed_by_service(),
    // Idempotent by nature: revoking again revokes what is left (nothing).
    Rpc::write("RevokeSessions", VENDORS, KeyRule::Optional),
    // Idempotent by the terminal id: adding it again answers it.
    Rpc::write("AddSoundBox", VENDORS, KeyRule::Optional),
    Rpc::read("ListSoundBoxes", VENDORS.or(Callers::SERVICE)),
    Rpc::write("RemoveSoundBox", VENDORS, KeyRule::Optional),
];

impl ServiceDef for Stall {
    fn name(&self) -> &'static str {
        store::SCHEMA
    }

    fn grpc_service(&self) -> &'static str {
        <StallServiceServer<StallService> as tonic::server::NamedService>::NAME
    }

    fn rpcs(&self) -> &'static [Rpc] {
        RPCS
    }

    fn config(&self) -> Section {
        settings::SECTION
    }

    fn migrations(&self) -> Vec<Migration> {
        store::migrations()
    }

    fn start<'a>(&'a self, ctx: StartContext<'a>) -> BoxFuture<'a, anyhow::Result<Started>> {
        Box::pin(async move {
            let settings = Settings::from_section(ctx.section)?;
            let minter = ctx.minter()?.clone();
            let merchants = MerchantClient::new(&ctx.peer("merchant")?, minter.clone(), "stall")?;
            let payments = PaymentClient::new(&ctx.peer("payment")?, minter, "stall")?;
            let page = tokio::net::TcpListener::bind(settings.page_listen)
                .await
                .with_context(|| {
                    format!(
                        "binding the stall page to {} (stall.page_listen)",
                        settings.page_listen
                    )
                })?;
            let page_addr = page.local_addr()?;
            let public_url = if settings.public_url.is_empty() {
                format!("http://{page_addr}")
            } else {
                settings.public_url.clone()
            };
            let service = StallService {
                inner: Arc::new(Inner {
                    pool: ctx.pool.clone(),
                    merchants,
                    payments,
                    page_addr,
                    public_url,
                    settings,
                    following: std::sync::Mutex::default(),
                }),
            };
            let on_page = service.clone();
            tokio::spawn(paymesh_platform::http::serve(
                page,
                move |req| {
                    let service = on_page.clone();
                    async move { service.page(req).await }
                },
                ctx.stopped(),
            ));
            tracing::info!(addr = %page_addr, "stall: the vendors' page is listening");
            if let Some(url) = service.inner.settings.mqtt_url.clone() {
                tokio::spawn(crate::soundbox::run(service.clone(), url, ctx.stopped()));
            }
            let bytes_max = ctx.message_bytes_max();
            let server = StallServiceServer::new(service.clone())
                .max_decoding_message_size(bytes_max)
                .max_encoding_message_size(bytes_max);
            Ok(Started::new(server).with_handle(service))
        })
    }
}

#[derive(Clone)]
pub struct StallService {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub pool: PgPool,
    pub merchants: MerchantClient,
    pub payments: PaymentClient,
    pub page_addr: SocketAddr,
    /// The page's address as phones reach it (sign-in links start with it).
    pub public_url: String,
    pub settings: Settings,
    /// Vendors whose payment stream the sound-box publisher has open.
    pub following: std::sync::Mutex<std::collections::HashSet<Uuid>>,
}

/// Whether the merchant is a vendor that may use a stall page now.
pub(crate) fn vendor_refusal(m: &mpb::Merchant) -> Option<ApiError> {
    if m.kind != mpb::MerchantKind::Vendor as i32 {
        return Some(ApiError::FailedPrecondition {
            reason: "NOT_A_VENDOR",
            message: format!(
                "merchant {} is not a vendor: only vendors have a stall",
                m.id
            ),
        });
    }
    if m.status != mpb::MerchantStatus::Active as i32 {
        return Some(ApiError::FailedPrecondition {
            reason: "MERCHANT_NOT_ACTIVE",
            message: format!("merchant {} is not ACTIVE", m.id),
        });
    }
    None
}

/// The merchant a request names.
fn merchant_field(text: &str) -> Result<Uuid, ApiError> {
    let mut v = Violations::default();
    let merchant = uuid_field(&mut v, "merchant_id", text);
    v.into_result()?;
    merchant.ok_or_else(|| ApiError::invalid("merchant_id", "required"))
}

/// The merchant a request names, which the caller must be or be an operator for.
fn own_merchant(caller: &Principal, text: &str) -> Result<Uuid, ApiError> {
    let merchant = merchant_field(text)?;
    match caller {
        Principal::Operator(_) => Ok(merchant),
        p if is_owner(p, &merchant.to_string()) => Ok(merchant),
        p => Err(ApiError::PermissionDenied(format!(
            "{p} may not act for merchant {merchant}"
        ))),
    }
}

/// The caller's own sound box a request names: (merchant, terminal).
fn own_box(
    caller: &Principal,
    merchant_id: &str,
    terminal_id: &str,
) -> Result<(Uuid, String), ApiError> {
    Ok((
        own_merchant(caller, merchant_id)?,
        terminal_field(terminal_id)?,
    ))
}

/// A terminal id: 1-32 of A-Z a-z 0-9 - _.
fn terminal_field(text: &str) -> Result<String, ApiError> {
    let ok = !text.is_empty()
        && text.len() <= 32
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(text.to_owned())
    } else {
        Err(ApiError::invalid(
            "terminal_id",
            "must be 1-32 characters of A-Z a-z 0-9 - _",
        ))
    }
}

/// The MQTT topic of a merchant's terminal.
pub fn topic(merchant: Uuid, terminal: &str) -> String {
    format!("paymesh/v1/soundbox/{merchant}/{terminal}")
}

fn sound_box_pb(row: &SoundBoxRow) -> pb::SoundBox {
    pb::SoundBox {
        merchant_id: row.merchant_id.to_string(),
        terminal_id: row.terminal_id.clone(),
        topic: topic(row.merchant_id, &row.terminal_id),
        create_time: Some(timestamp_from_ns(row.create_time_ns)),
    }
}

impl StallService {
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// Where the stall page listens (bound).
    pub fn page_addr(&self) -> SocketAddr {
        self.inner.page_addr
    }

    /// The stall page's address as phones reach it.
    pub fn public_url(&self) -> &str {
        &self.inner.public_url
    }

    /// Whether the sound-box publisher follows `merchant`'s payments now (its stream is open:
    /// every payment from now on reaches her boxes).
    pub fn follows(&self, merchant: Uuid) -> bool {
        self.inner
            .following
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(&merchant)
    }

    pub(crate) fn set_following(&self, merchant: Uuid, on: bool) {
        let mut set = self
            .inner
            .following
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if on {
            set.insert(merchant);
        } else {
            set.remove(&merchant);
        }
    }

    /// The merchant, refused unless it is an ACTIVE vendor.
    pub(crate) async fn active_vendor(&self, merchant: Uuid) -> Result<mpb::Merchant, ApiError> {
        let m = self
            .inner
            .merchants
            .get(&merchant.to_string())
            .await?
            .ok_or(ApiError::NotFound {
                resource: "merchant",
            })?;
        match vendor_refusal(&m) {
            Some(refusal) => Err(refusal),
            None => Ok(m),
        }
    }

    /// Makes a one-time sign-in link for `merchant` (an ACTIVE vendor).
    pub async fn sign_in_link(
        &self,
        merchant: Uuid,
        created_by: &str,
    ) -> Result<pb::CreateSignInLinkResponse, ApiError> {
        self.active_vendor(merchant).await?;
        let token = sessions::new_token()?;
        let ttl_ms = i64::try_from(self.inner.settings.link_ttl.as_millis()).unwrap_or(i64::MAX);
        let expire_ns = store::insert_link(
            &self.inner.pool,
            &sessions::digest(&token),
            merchant,
            created_by,
            ttl_ms,
        )
        .await
        .map_err(sql)?;
        Ok(pb::CreateSignInLinkResponse {
            url: format!("{}/signin?token={token}", self.inner.public_url),
            expire_time: Some(timestamp_from_ns(expire_ns)),
            merchant_id: merchant.to_string(),
        })
    }

    /// Ends every session and unused link of `merchant`.
    pub async fn revoke(&self, merchant: Uuid, reason: &str) -> Result<(i64, i64), ApiError> {
        let revoked = store::revoke_merchant(&self.inner.pool, merchant, reason)
            .await
            .map_err(sql)?;
        if revoked != (0, 0) {
            tracing::info!(%merchant, sessions = revoked.0, links = revoked.1, reason, "stall sessions revoked");
        }
        Ok(revoked)
    }
}

#[tonic::async_trait]
impl stall_service_server::StallService for StallService {
    async fn create_sign_in_link(
        &self,
        request: Request<pb::CreateSignInLinkRequest>,
    ) -> Result<Response<pb::CreateSignInLinkResponse>, Status> {
        answer(
            async {
                let caller = principal(&request)?;
                let merchant = own_merchant(caller, &request.get_ref().merchant_id)?;
                self.sign_in_link(merchant, &caller.to_string()).await
            }
            .await,
        )
    }

    async fn revoke_sessions(
        &self,
        request: Request<pb::RevokeSessionsRequest>,
    ) -> Result<Response<pb::RevokeSessionsResponse>, Status> {
        answer(
            async {
                let caller = principal(&request)?;
                let merchant = own_merchant(caller, &request.get_ref().merchant_id)?;
                let (sessions_revoked, links_revoked) = self
                    .revoke(merchant, &format!("revoked by {caller}"))
                    .await?;
                Ok(pb::RevokeSessionsResponse {
                    sessions_revoked,
                    links_revoked,
                })
            }
            .await,
        )
    }

    async fn add_sound_box(
        &self,
        request: Request<pb::AddSoundBoxRequest>,
    ) -> Result<Response<pb::AddSoundBoxResponse>, Status> {
        answer(
            async {
                let req = request.get_ref();
                let (merchant, terminal) =
                    own_box(principal(&request)?, &req.merchant_id, &req.terminal_id)?;
                self.active_vendor(merchant).await?;
                let row = store::add_sound_box(&self.inner.pool, merchant, &terminal)
                    .await
                    .map_err(sql)?
                    .ok_or_else(|| ApiError::FailedPrecondition {
                        reason: "TOO_MANY_SOUND_BOXES",
                        message: format!(
                            "merchant {merchant} has {} sound boxes, the most it may have",
                            store::SOUND_BOXES_MAX
                        ),
                    })?;
                Ok(pb::AddSoundBoxResponse {
                    sound_box: Some(sound_box_pb(&row)),
                })
            }
            .await,
        )
    }

    async fn list_sound_boxes(
        &self,
        request: Request<pb::ListSoundBoxesRequest>,
    ) -> Result<Response<pb::ListSoundBoxesResponse>, Status> {
        answer(
            async {
                let caller = principal(&request)?;
                let text = &request.get_ref().merchant_id;
                let merchant = match caller {
                    Principal::Service(_) => merchant_field(text)?,
                    _ => own_merchant(caller, text)?,
                };
                let rows = store::sound_boxes(&self.inner.pool, merchant)
                    .await
                    .map_err(sql)?;
                Ok(pb::ListSoundBoxesResponse {
                    sound_boxes: rows.iter().map(sound_box_pb).collect(),
                })
            }
            .await,
        )
    }

    async fn remove_sound_box(
        &self,
        request: Request<pb::RemoveSoundBoxRequest>,
    ) -> Result<Response<pb::RemoveSoundBoxResponse>, Status> {
        answer(
            async {
                let req = request.get_ref();
                let (merchant, terminal) =
                    own_box(principal(&request)?, &req.merchant_id, &req.terminal_id)?;
                let row = store::remove_sound_box(&self.inner.pool, merchant, &terminal)
                    .await
                    .map_err(sql)?
                    .ok_or(ApiError::NotFound {
                        resource: "sound box",
                    })?;
                Ok(pb::RemoveSoundBoxResponse {
                    sound_box: Some(sound_box_pb(&row)),
                })
            }
            .await,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminals_and_topics() {
        assert!(terminal_field("box-1").is_ok());
        assert!(terminal_field("A_b9").is_ok());
        for bad in ["", "a/b", "a+b", "#", "a b", &"x".repeat(33)] {
            assert!(terminal_field(bad).is_err(), "{bad}");
        }
        let m = Uuid::nil();
        assert_eq!(
            topic(m, "box-1"),
            "paymesh/v1/soundbox/00000000-0000-0000-0000-000000000000/box-1"
        );
    }

    #[test]
    fn only_the_vendor_herself_or_an_operator_acts_for_her() {
        let m = Uuid::new_v4();
        let own = Principal::Merchant(m.to_string());
        let other = Principal::Merchant(Uuid::new_v4().to_string());
        let op = Principal::Operator("lan".into());
        assert_eq!(own_merchant(&own, &m.to_string()).unwrap(), m);
        assert_eq!(own_merchant(&op, &m.to_string()).unwrap(), m);
        assert!(matches!(
            own_merchant(&other, &m.to_string()),
            Err(ApiError::PermissionDenied(_))
        ));
        assert!(matches!(
            own_merchant(&Principal::Service("x".into()), &m.to_string()),
            Err(ApiError::PermissionDenied(_))
        ));
    }
}
