//! The merchant service of paymesh.
//!
//! For now this crate is its domain layer ([`domain`]): the types an onboarding request is parsed
//! into. Each one is built only by its `parse`, which says which rule an input broke, so code that
//! holds a [`domain::TaxCode`] or a [`domain::CitizenId`] never checks it again. The gRPC surface
//! and the database come later and build on these types.

pub mod domain;
