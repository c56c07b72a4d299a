//! Outgoing gRPC: a channel to a peer service, and an interceptor that adds the bearer token
//! and the W3C trace context to every call.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::transport::{Channel, Endpoint};

use crate::ApiError;
use crate::auth::{Minter, Principal};

#[derive(Clone)]
pub struct CallContext {
    authorization: Option<MetadataValue<Ascii>>,
}

impl CallContext {
    pub fn with_token(token: &str) -> anyhow::Result<CallContext> {
        let value = MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|_| anyhow::anyhow!("token is not valid metadata"))?;
        Ok(CallContext {
            authorization: Some(value),
        })
    }

    pub fn anonymous() -> CallContext {
        CallContext {
            authorization: None,
        }
    }
}

impl Interceptor for CallContext {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(auth) = &self.authorization {
            req.metadata_mut().insert("authorization", auth.clone());
        }
        crate::telemetry::inject_trace_context(req.metadata_mut());
        Ok(req)
    }
}

/// A lazily connecting channel to `http://addr`.
pub fn channel(addr: &str) -> anyhow::Result<Channel> {
    let uri = if addr.starts_with("http://") || addr.starts_with("https://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    };
    Ok(Endpoint::from_shared(uri)?
        .tcp_nodelay(true)
        .connect_timeout(std::time::Duration::from_secs(5))
        .connect_lazy())
}

/// Lifetime of the tokens a [`ServiceCaller`] mints.
const SERVICE_TOKEN_TTL: Duration = Duration::from_secs(300);
/// A token is replaced when less than this is left of its life (clock skew, slow calls).
const SERVICE_TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// How one paymesh service calls another: a lazily connecting channel to the peer, and the
/// caller's own `service:{name}` token, minted with the service key and reused until shortly
/// before it expires. Cheap to clone: clones share the connection and the token. Every typed
/// client of a service (the ledger's, the merchant's) is built on one.
#[derive(Clone)]
pub struct ServiceCaller {
    inner: Arc<CallerInner>,
}

struct CallerInner {
    channel: Channel,
    minter: Minter,
    principal: Principal,
    token: Mutex<Option<CachedToken>>,
}

struct CachedToken {
    context: CallContext,
    replace_at: Instant,
}

impl ServiceCaller {
    /// A caller of the service at `addr` (`host:port` or a URL) as `service:{service}`.
    /// Call it within a tokio runtime (the connection is tokio's).
    pub fn new(addr: &str, minter: Minter, service: &str) -> anyhow::Result<ServiceCaller> {
        let principal = Principal::parse(&format!("service:{service}"))
            .map_err(|e| anyhow::anyhow!("service name {service:?}: {e}"))?;
        Ok(ServiceCaller {
            inner: Arc::new(CallerInner {
                channel: channel(addr)?,
                minter,
                principal,
                token: Mutex::new(None),
            }),
        })
    }

    pub fn channel(&self) -> Channel {
        self.inner.channel.clone()
    }

    /// The call context with a valid token: the cached one, or a fresh one when it is near
    /// its expiry.
    pub fn context(&self) -> Result<CallContext, ApiError> {
        let mut cached = self
            .inner
            .token
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if let Some(t) = cached.as_ref()
            && now < t.replace_at
        {
            return Ok(t.context.clone());
        }
        let token = self
            .inner
            .minter
            .mint(&self.inner.principal, SERVICE_TOKEN_TTL.as_secs())?;
        let context = CallContext::with_token(&token)?;
        *cached = Some(CachedToken {
            context: context.clone(),
            replace_at: now + SERVICE_TOKEN_TTL.saturating_sub(SERVICE_TOKEN_REFRESH_MARGIN),
        });
        Ok(context)
    }

    /// A call context acting for `principal` (a token minted for this one call, living
    /// [`ON_BEHALF_TOKEN_TTL`]): for a service that is the edge of a person already
    /// authenticated by it (the stall page acts for the vendor signed in), so that the peer
    /// checks and records that person's rights, not the service's.
    pub fn context_for(&self, principal: &Principal) -> Result<CallContext, ApiError> {
        let token = self
            .inner
            .minter
            .mint(principal, ON_BEHALF_TOKEN_TTL.as_secs())?;
        Ok(CallContext::with_token(&token)?)
    }
}

/// Lifetime of a token [`ServiceCaller::context_for`] mints: one call.
pub const ON_BEHALF_TOKEN_TTL: Duration = Duration::from_secs(60);

/// One call to a peer service within a timeout.
pub mod within {
    use std::future::Future;
    use std::time::{Duration, Instant};

    use crate::ApiError;

    /// A peer's refusal as the calling service reports it: unreachable, overloaded or
    /// contended is UNAVAILABLE (the caller retries); so is a call the connection broke off
    /// before the peer answered ([`broken_off`]); anything else is our own fault (INTERNAL,
    /// logged).
    pub fn peer_error(peer: &str, rpc: &str, status: &tonic::Status) -> ApiError {
        use tonic::Code;
        if broken_off(status) {
            return ApiError::Unavailable(format!(
                "the call to the {peer} broke off ({rpc}: {:?} {}); retry",
                status.code(),
                status.message()
            ));
        }
        match status.code() {
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Aborted => ApiError::Unavailable(format!(
                "the {peer} is unavailable ({rpc}: {:?}); retry",
                status.code()
            )),
            code => ApiError::Internal(anyhow::anyhow!(
                "{peer} {rpc} failed: {code:?} {}",
                status.message()
            )),
        }
    }

    /// Whether `status` was made on this side from the connection's own error (reset, closed,
    /// a broken HTTP/2 stream) rather than answered by the peer. tonic gives such a status a
    /// code by the error's kind — `UNKNOWN`, `INTERNAL` (a broken pipe, an HTTP/2
    /// `INTERNAL_ERROR`), `OUT_OF_RANGE` (an unexpected end of file) — which would read as the
    /// peer refusing the request for a fault of ours. Nobody answered: whether the call took
    /// effect is for a retry to learn, which the ids and keys every call carries make safe.
    /// Found by the faults run: `kill -9` of the ledger made one bank notification `INTERNAL`.
    pub fn broken_off(status: &tonic::Status) -> bool {
        let mut source = std::error::Error::source(status);
        while let Some(e) = source {
            if e.is::<std::io::Error>()
                || e.is::<hyper::Error>()
                || e.is::<tonic::transport::Error>()
            {
                return true;
            }
            source = e.source();
        }
        false
    }

    /// `message` with `timeout` as its gRPC deadline, so the peer gives up when we do.
    pub fn request<T>(message: T, timeout: Duration) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(timeout);
        request
    }

    /// Runs `call` to `peer`'s `rpc` within `timeout`: a peer that does not answer in time is
    /// [`ApiError::Unavailable`] (retry); otherwise the peer's own answer, status and all, for
    /// the typed client to map.
    pub async fn call<T>(
        peer: &str,
        rpc: &str,
        timeout: Duration,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<Result<T, tonic::Status>, ApiError> {
        let started = Instant::now();
        let late = || {
            ApiError::Unavailable(format!(
                "the {peer} did not answer {rpc} within {} ms; retry",
                timeout.as_millis()
            ))
        };
        match tokio::time::timeout(timeout, call).await {
            Err(_) => Err(late()),
            // tonic enforces the request's grpc-timeout itself and reports CANCELLED when it
            // passes (it may beat the timer above): our deadline, not the peer's answer.
            Ok(Err(status))
                if status.code() == tonic::Code::Cancelled && started.elapsed() >= timeout =>
            {
                Err(late())
            }
            Ok(Err(status)) => Ok(Err(status)),
            Ok(Ok(response)) => Ok(Ok(response.into_inner())),
        }
    }
}
