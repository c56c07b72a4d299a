//! What the compiled protos say about a service (from the descriptor set reflection serves).

use prost::Message as _;
use prost_types::FileDescriptorSet;

/// The method names of `grpc_service` (`package.Service`), in proto order.
pub fn methods(grpc_service: &str) -> anyhow::Result<Vec<String>> {
    let set = FileDescriptorSet::decode(paymesh_proto::FILE_DESCRIPTOR_SET)?;
    for file in &set.file {
        for service in &file.service {
            let full = format!("{}.{}", file.package(), service.name());
            if full == grpc_service {
                return Ok(service
                    .method
                    .iter()
                    .map(|m| m.name().to_string())
                    .collect());
            }
        }
    }
    anyhow::bail!("no gRPC service {grpc_service} in the compiled protos")
}

#[cfg(test)]
mod tests {
    #[test]
    fn methods_come_from_the_protos() {
        let m = super::methods("paymesh.ledger.v1.LedgerService").unwrap();
        assert!(m.iter().any(|m| m == "CreateTransfers"), "{m:?}");
        assert!(super::methods("paymesh.nope.v1.Nope").is_err());
    }
}
