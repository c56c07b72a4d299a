//! Outgoing gRPC: a channel to a peer service, and an interceptor that adds the bearer token
//! and the W3C trace context to every call.

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::transport::{Channel, Endpoint};

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
