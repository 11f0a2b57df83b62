//! One module per operation. Each handler has the same signature and calls at most one RPC.

pub mod account;
pub mod balance;
pub mod drafts;
pub mod generate;
pub mod health;
pub mod invites;
pub mod models;
pub mod openapi;
pub mod pipeline;
pub mod projects;
pub mod purchase;
pub mod purchase_app_store;
pub mod purchase_stripe;
