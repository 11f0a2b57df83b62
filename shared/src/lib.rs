//! Runtime-free logic of the credits edge bundle.
//!
//! Everything here compiles natively as well as to wasm, so it is unit-tested with plain
//! `cargo test`: configuration parsing, the one error type and its JSON shape, the JWT rules,
//! and the mapping of PostgREST errors to the bundle's stable error codes. The Worker
//! (`functions`) only adds what needs the Workers runtime: fetch, WebCrypto, bindings.

pub mod admin;
pub mod appstore;
pub mod appstore_api;
pub mod config;
pub mod error;
pub mod input;
pub mod jwks;
pub mod jwt;
pub mod outputs;
pub mod postgrest;
pub mod signature;
pub mod strict;
pub mod stripe;
pub mod stripe_billing;
pub mod webhook;

pub use error::ApiError;
