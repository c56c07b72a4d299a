//! The tower layer that authenticates every call and applies the RPC policy table.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{BoxFuture, ready};

use super::*;
use crate::error::ApiError;
use crate::kit::Policy;

/// The principal the auth layer put on the request.
pub fn principal<T>(req: &tonic::Request<T>) -> Result<&Principal, ApiError> {
    req.extensions()
        .get::<Principal>()
        .ok_or_else(|| ApiError::Unauthenticated("no principal on request".to_string()))
}

#[derive(Clone)]
pub struct AuthLayer {
    verifier: Verifier,
    policy: Arc<Policy>,
}

impl AuthLayer {
    /// Checks tokens with `verifier` and callers against the service's RPC table.
    pub fn new(verifier: Verifier, policy: Arc<Policy>) -> AuthLayer {
        AuthLayer { verifier, policy }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;
    fn layer(&self, inner: S) -> AuthService<S> {
        AuthService {
            inner,
            verifier: self.verifier.clone(),
            policy: self.policy.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    verifier: Verifier,
    policy: Arc<Policy>,
}

pub(super) fn bearer(headers: &http::HeaderMap) -> Result<&str, String> {
    let value = headers
        .get(http::header::AUTHORIZATION)
        .ok_or_else(|| "missing authorization metadata".to_string())?;
    let text = value
        .to_str()
        .map_err(|_| "authorization metadata is not text".to_string())?;
    let token = text
        .strip_prefix("Bearer ")
        .or_else(|| text.strip_prefix("bearer "))
        .ok_or_else(|| "authorization must be `Bearer <token>`".to_string())?;
    Ok(token.trim())
}

impl<S, B, ResBody> tower::Service<http::Request<B>> for AuthService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let refuse = |e: ApiError| -> Self::Future {
            let status: tonic::Status = e.into();
            Box::pin(ready(Ok(status.into_http())))
        };
        if self.policy.is_public(req.uri().path()) {
            return Box::pin(self.inner.call(req));
        }
        let verified = match bearer(req.headers()).and_then(|t| self.verifier.verify_full(t)) {
            Ok(v) => v,
            Err(why) => return refuse(ApiError::Unauthenticated(why)),
        };
        if let Err(e) = self.policy.check(req.uri().path(), &verified.principal) {
            return refuse(e);
        }
        tracing::Span::current().record("principal", tracing::field::display(&verified.principal));
        req.extensions_mut().insert(verified.principal);
        let Some(credential) = verified.credential else {
            return Box::pin(self.inner.call(req));
        };
        // A token from an API credential: refused from the moment the credential is revoked.
        let verifier = self.verifier.clone();
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            match verifier.credential_revoked(&credential).await {
                Ok(false) => inner.call(req).await,
                Ok(true) => {
                    let status: tonic::Status = ApiError::Unauthenticated(
                        "the API credential behind this token was revoked".into(),
                    )
                    .into();
                    Ok(status.into_http())
                }
                Err(why) => {
                    let status: tonic::Status = ApiError::Unavailable(why).into();
                    Ok(status.into_http())
                }
            }
        })
    }
}
