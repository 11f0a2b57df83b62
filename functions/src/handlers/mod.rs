//! One module per operation. Each handler has the same signature and calls at most one RPC.

pub mod balance;
pub mod health;
