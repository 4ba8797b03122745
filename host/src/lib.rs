//! Atrium: a self-hosted machine-learning workspace.
//!
//! The host owns the workspace data model ([`workspace`]), stores it ([`store`], [`datastore`]),
//! serves it over HTTP ([`api`]) and drives it from the command line ([`cli`]).

pub mod api;
pub mod auth;
pub mod cli;
pub mod compute;
pub mod config;
pub mod datadir_lock;
pub mod datastore;
pub mod jobs;
pub mod pipelines;
pub mod plugins;
pub mod portal;
pub mod secrets;
pub mod server;
pub mod service;
pub mod serving;
pub mod store;
pub mod sweep;
pub mod train;
pub mod workspace;
