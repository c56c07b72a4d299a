//! Who may call each RPC, and whether it takes an idempotency key: one table per service,
//! enforced for every call by the auth layer, so no handler can forget it. Checks that depend
//! on the resource (a merchant reads only its own) stay in the handler, with
//! [`is_owner`].

use std::collections::HashMap;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::idempotency::KeyRule;

/// Who may call an RPC: a set of principal kinds, plus (optionally) services by name.
///
/// `Callers::SERVICE` admits any `service:{name}`; `Callers::services(&["merchant"])` only the
/// services named. Both are `const`, so a service's table stays a `const`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Callers {
    kinds: u8,
    /// `service:{name}` principals admitted by name (when [`Callers::SERVICE`] is not in `kinds`).
    services: &'static [&'static str],
}

impl Callers {
    const fn kinds(kinds: u8) -> Callers {
        Callers {
            kinds,
            services: &[],
        }
    }

    /// Any `operator:{name}`.
    pub const OPERATOR: Callers = Callers::kinds(1);
    pub const MERCHANT: Callers = Callers::kinds(1 << 1);
    pub const BILLER: Callers = Callers::kinds(1 << 2);
    pub const BANK: Callers = Callers::kinds(1 << 3);
    pub const CHANNEL: Callers = Callers::kinds(1 << 4);
    /// Any `service:{name}` principal.
    pub const SERVICE: Callers = Callers::kinds(1 << 5);
    /// No token needed: the RPC authenticates its caller itself (the credential exchange).
    pub const PUBLIC: Callers = Callers::kinds(1 << 6);
    /// Operators and paymesh services.
    pub const INTERNAL: Callers = Callers::OPERATOR.or(Callers::SERVICE);

    /// Only the services named (`service:{name}`), e.g. `Callers::services(&["merchant"])`.
    pub const fn services(names: &'static [&'static str]) -> Callers {
        Callers {
            kinds: 0,
            services: names,
        }
    }

    /// Both sets. At most one side may name services (a `const` cannot join two lists).
    pub const fn or(self, other: Callers) -> Callers {
        assert!(
            self.services.is_empty() || other.services.is_empty(),
            "name the services once: Callers::services(&[\"a\", \"b\"])"
        );
        Callers {
            kinds: self.kinds | other.kinds,
            services: if self.services.is_empty() {
                other.services
            } else {
                self.services
            },
        }
    }

    const fn has(self, other: Callers) -> bool {
        self.kinds & other.kinds == other.kinds
    }

    pub fn admits(self, p: &Principal) -> bool {
        let kind = match p {
            Principal::Operator(_) => Callers::OPERATOR,
            Principal::Merchant(_) => Callers::MERCHANT,
            Principal::Biller(_) => Callers::BILLER,
            Principal::Bank(_) => Callers::BANK,
            Principal::Channel(_) => Callers::CHANNEL,
            Principal::Service(name) => {
                return self.has(Callers::SERVICE) || self.services.contains(&name.as_str());
            }
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
    /// Whether the idempotency layer keeps the answer in Redis to replay it (see
    /// [`Rpc::replayed_by_service`]).
    pub layer_keeps_answer: bool,
    /// A client stream: the layer passes it on unread (see [`Rpc::streamed`]).
    pub streamed: bool,
}

impl Rpc {
    /// A call that changes nothing.
    pub const fn read(method: &'static str, callers: Callers) -> Rpc {
        Rpc {
            method,
            callers,
            key: None,
            layer_keeps_answer: true,
            streamed: false,
        }
    }

    /// A mutating call, with its idempotency-key rule.
    pub const fn write(method: &'static str, callers: Callers, key: KeyRule) -> Rpc {
        Rpc {
            method,
            callers,
            key: Some(key),
            layer_keeps_answer: true,
            streamed: false,
        }
    }

    /// The idempotency layer claims and guards this RPC's keys (in use, reused) but never
    /// stores its answer: retries reach the handler, whose PostgreSQL replay
    /// (`Transactions::once_storing`) answers them. For RPCs whose first answer holds a secret
    /// that must not be kept anywhere.
    pub const fn replayed_by_service(mut self) -> Rpc {
        self.layer_keeps_answer = false;
        self
    }

    /// A client-streaming write (a bulk load): the idempotency layer does not read the
    /// stream (it may be far larger than a message), keeps no answer, and hands the handler
    /// the key's scope alone; the handler fingerprints the messages as it reads them and
    /// claims the key at the end, in its own transaction (`Transactions::once_streamed`).
    pub const fn streamed(mut self) -> Rpc {
        self.layer_keeps_answer = false;
        self.streamed = true;
        self
    }
}

/// A service's table by full path (`/pkg.Service/Method`).
#[derive(Debug, Clone)]
pub struct Policy {
    by_path: HashMap<String, Rpc>,
}

/// The metrics label of every path the server does not know.
pub const UNKNOWN_METHOD: &str = "unknown";

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

    /// The mutating RPCs whose answers the idempotency layer must not keep.
    pub fn replayed_by_service(&self) -> Vec<String> {
        self.by_path
            .iter()
            .filter(|(_, rpc)| rpc.key.is_some() && !rpc.layer_keeps_answer)
            .map(|(path, _)| path.clone())
            .collect()
    }

    /// The client-streaming writes, which the idempotency layer passes on unread.
    pub fn streamed(&self) -> Vec<String> {
        self.by_path
            .iter()
            .filter(|(_, rpc)| rpc.key.is_some() && rpc.streamed)
            .map(|(path, _)| path.clone())
            .collect()
    }

    /// Whether the table names this path.
    pub fn knows(&self, path: &str) -> bool {
        self.by_path.contains_key(path)
    }

    /// The metrics label of a call to `path`: the path itself when the server answers it (the
    /// table's RPCs, health, reflection), else `unknown`, so calls to made-up paths cannot grow
    /// the number of series.
    pub fn metric_label<'a>(&self, path: &'a str) -> &'a str {
        if self.knows(path) || is_infrastructure(path) {
            path
        } else {
            UNKNOWN_METHOD
        }
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
        Rpc::write("Issue", Callers::OPERATOR, KeyRule::Required).replayed_by_service(),
        Rpc::read("Get", Callers::INTERNAL.or(Callers::MERCHANT)),
        Rpc::read("Exchange", Callers::PUBLIC),
    ];

    #[test]
    fn the_table_decides_who_calls_what() {
        let p = Policy::new("x.v1.S", TABLE);
        let merchant = Principal::Merchant("m1".into());
        assert!(p.check("/x.v1.S/Pay", &merchant).is_ok());
        assert!(
            p.check("/x.v1.S/Pay", &Principal::Operator("alice".into()))
                .is_err()
        );
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
        let mut idempotent = p.idempotent();
        idempotent.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            idempotent,
            vec![
                ("/x.v1.S/Issue".to_string(), KeyRule::Required),
                ("/x.v1.S/Pay".to_string(), KeyRule::Required)
            ]
        );
        assert_eq!(p.replayed_by_service(), vec!["/x.v1.S/Issue".to_string()]);
    }

    #[test]
    fn named_services_are_admitted_by_name_only() {
        const ONLY_MERCHANT: Callers = Callers::OPERATOR.or(Callers::services(&["merchant"]));
        let p = Policy::new("x.v1.S", &[Rpc::read("Open", ONLY_MERCHANT)]);
        let open = "/x.v1.S/Open";
        assert!(
            p.check(open, &Principal::Service("merchant".into()))
                .is_ok()
        );
        assert!(p.check(open, &Principal::Operator("bob".into())).is_ok());
        assert!(
            p.check(open, &Principal::Service("payment".into()))
                .is_err()
        );
        assert!(
            p.check(open, &Principal::Merchant("merchant".into()))
                .is_err()
        );
        assert!(Callers::SERVICE.admits(&Principal::Service("payment".into())));
    }

    #[test]
    fn unknown_paths_have_one_metrics_label() {
        let p = Policy::new("x.v1.S", TABLE);
        assert_eq!(p.metric_label("/x.v1.S/Pay"), "/x.v1.S/Pay");
        assert_eq!(
            p.metric_label("/grpc.health.v1.Health/Check"),
            "/grpc.health.v1.Health/Check"
        );
        assert_eq!(p.metric_label("/x.v1.S/Nope"), UNKNOWN_METHOD);
        assert_eq!(p.metric_label("/made/up"), UNKNOWN_METHOD);
    }

    #[test]
    fn only_the_merchant_itself_owns_its_data() {
        assert!(is_owner(&Principal::Merchant("a".into()), "a"));
        assert!(is_owner(&Principal::Biller("a".into()), "a"));
        assert!(!is_owner(&Principal::Merchant("b".into()), "a"));
        assert!(!is_owner(&Principal::Operator("alice".into()), "a"));
    }
}
