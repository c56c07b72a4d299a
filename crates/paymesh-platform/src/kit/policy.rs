//! Who may call each RPC, and whether it takes an idempotency key: one table per service,
//! enforced for every call by the auth layer, so no handler can forget it. Checks that depend
//! on the resource (a merchant reads only its own) stay in the handler, with
//! [`is_owner`].

use std::collections::HashMap;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::idempotency::KeyRule;

/// A set of principal kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Callers(u8);

impl Callers {
    pub const OPERATOR: Callers = Callers(1);
    pub const MERCHANT: Callers = Callers(1 << 1);
    pub const BILLER: Callers = Callers(1 << 2);
    pub const BANK: Callers = Callers(1 << 3);
    pub const CHANNEL: Callers = Callers(1 << 4);
    /// Any `service:{name}` principal.
    pub const SERVICE: Callers = Callers(1 << 5);
    /// No token needed: the RPC authenticates its caller itself (the credential exchange).
    pub const PUBLIC: Callers = Callers(1 << 6);
    /// Operators and paymesh services.
    pub const INTERNAL: Callers = Callers::OPERATOR.or(Callers::SERVICE);

    pub const fn or(self, other: Callers) -> Callers {
        Callers(self.0 | other.0)
    }

    const fn has(self, other: Callers) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn admits(self, p: &Principal) -> bool {
        let kind = match p {
            Principal::Operator => Callers::OPERATOR,
            Principal::Merchant(_) => Callers::MERCHANT,
            Principal::Biller(_) => Callers::BILLER,
            Principal::Bank(_) => Callers::BANK,
            Principal::Channel(_) => Callers::CHANNEL,
            Principal::Service(_) => Callers::SERVICE,
        };
        self.has(kind)
    }

    pub fn is_public(self) -> bool {
        self.has(Callers::PUBLIC)
    }
}

/// One RPC of a service: its method name, who may call it, and its idempotency-key rule
/// (`None` for reads).
#[derive(Clone, Copy, Debug)]
pub struct Rpc {
    pub method: &'static str,
    pub callers: Callers,
    pub key: Option<KeyRule>,
}

impl Rpc {
    /// A call that changes nothing.
    pub const fn read(method: &'static str, callers: Callers) -> Rpc {
        Rpc {
            method,
            callers,
            key: None,
        }
    }

    /// A mutating call, with its idempotency-key rule.
    pub const fn write(method: &'static str, callers: Callers, key: KeyRule) -> Rpc {
        Rpc {
            method,
            callers,
            key: Some(key),
        }
    }
}

/// A service's table by full path (`/pkg.Service/Method`).
#[derive(Debug, Clone)]
pub struct Policy {
    by_path: HashMap<String, Rpc>,
}

/// Paths every server answers without a token.
fn is_infrastructure(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/")
        || path.starts_with("/grpc.reflection.v1.ServerReflection/")
        || path.starts_with("/grpc.reflection.v1alpha.ServerReflection/")
}

impl Policy {
    pub fn new(grpc_service: &str, rpcs: &[Rpc]) -> Policy {
        Policy {
            by_path: rpcs
                .iter()
                .map(|r| (format!("/{grpc_service}/{}", r.method), *r))
                .collect(),
        }
    }

    /// A policy that lets every authenticated caller through (for servers with no table).
    pub fn empty() -> Policy {
        Policy {
            by_path: HashMap::new(),
        }
    }

    /// Reachable without a token.
    pub fn is_public(&self, path: &str) -> bool {
        is_infrastructure(path)
            || self
                .by_path
                .get(path)
                .is_some_and(|r| r.callers.is_public())
    }

    /// Whether `principal` may call `path`. Paths not in the table are left to the router,
    /// which answers UNIMPLEMENTED.
    pub fn check(&self, path: &str, principal: &Principal) -> Result<(), ApiError> {
        match self.by_path.get(path) {
            Some(rpc) if !rpc.callers.admits(principal) => Err(ApiError::PermissionDenied(
                format!("{principal} may not call {}", rpc.method),
            )),
            _ => Ok(()),
        }
    }

    /// The mutating RPCs and their key rules, for the idempotency layer.
    pub fn idempotent(&self) -> Vec<(String, KeyRule)> {
        self.by_path
            .iter()
            .filter_map(|(path, rpc)| rpc.key.map(|k| (path.clone(), k)))
            .collect()
    }

    /// Whether the table names this path.
    pub fn knows(&self, path: &str) -> bool {
        self.by_path.contains_key(path)
    }
}

/// Whether `p` is the merchant or biller `owner_id` itself. Handlers of RPCs on one
/// merchant's data combine it with the table's callers (e.g. internal callers or the owner).
pub fn is_owner(p: &Principal, owner_id: &str) -> bool {
    matches!(p, Principal::Merchant(id) | Principal::Biller(id) if id == owner_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &[Rpc] = &[
        Rpc::write("Pay", Callers::MERCHANT, KeyRule::Required),
        Rpc::read("Get", Callers::INTERNAL.or(Callers::MERCHANT)),
        Rpc::read("Exchange", Callers::PUBLIC),
    ];

    #[test]
    fn the_table_decides_who_calls_what() {
        let p = Policy::new("x.v1.S", TABLE);
        let merchant = Principal::Merchant("m1".into());
        assert!(p.check("/x.v1.S/Pay", &merchant).is_ok());
        assert!(p.check("/x.v1.S/Pay", &Principal::Operator).is_err());
        assert!(
            p.check("/x.v1.S/Get", &Principal::Service("ledger".into()))
                .is_ok()
        );
        assert!(
            p.check("/x.v1.S/Get", &Principal::Bank("970436".into()))
                .is_err()
        );
        assert!(p.is_public("/x.v1.S/Exchange"));
        assert!(!p.is_public("/x.v1.S/Get"));
        assert!(p.is_public("/grpc.health.v1.Health/Check"));
        assert_eq!(
            p.idempotent(),
            vec![("/x.v1.S/Pay".to_string(), KeyRule::Required)]
        );
    }

    #[test]
    fn only_the_merchant_itself_owns_its_data() {
        assert!(is_owner(&Principal::Merchant("a".into()), "a"));
        assert!(is_owner(&Principal::Biller("a".into()), "a"));
        assert!(!is_owner(&Principal::Merchant("b".into()), "a"));
        assert!(!is_owner(&Principal::Operator, "a"));
    }
}
