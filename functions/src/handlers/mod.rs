//! One module per operation. Each handler has the same signature and calls one RPC (or one read
//! through RLS); those that free stored files then delete them from R2 (`storage::release`: only the
//! keys their own RPC queued; the cron drains the rest of the queue).

pub mod account;
pub mod admin;
pub mod balance;
pub mod consent;
pub mod drafts;
pub mod generate;
pub mod health;
pub mod invites;
pub mod models;
pub mod openapi;
pub mod outputs;
pub mod pipeline;
pub mod projects;
pub mod purchase;
pub mod purchase_app_store;
pub mod purchase_stripe;
pub mod subscription;
