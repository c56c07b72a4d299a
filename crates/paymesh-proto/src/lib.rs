//! Generated code for every `paymesh.*.v1` package, and for `google.api` (the
//! `field_behavior` annotation the paymesh protos use; see proto/google/api/).

/// The serialized `FileDescriptorSet` of every paymesh proto, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/paymesh_descriptor.bin"));

pub mod google {
    pub mod api {
        tonic::include_proto!("google.api");
    }
}

pub mod common {
    pub mod v1 {
        tonic::include_proto!("paymesh.common.v1");
    }
}

pub mod ledger {
    pub mod v1 {
        tonic::include_proto!("paymesh.ledger.v1");
    }
}

pub mod merchant {
    pub mod v1 {
        tonic::include_proto!("paymesh.merchant.v1");
    }
}

pub mod payment {
    pub mod v1 {
        tonic::include_proto!("paymesh.payment.v1");
    }
}

pub mod billing {
    pub mod v1 {
        tonic::include_proto!("paymesh.billing.v1");
    }
}

pub mod settlement {
    pub mod v1 {
        tonic::include_proto!("paymesh.settlement.v1");
    }
}

pub mod stall {
    pub mod v1 {
        tonic::include_proto!("paymesh.stall.v1");
    }
}
