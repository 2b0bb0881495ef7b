#![doc = include_str!("../README.md")]
#![deny(clippy::unwrap_used, clippy::print_stdout)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

#[cfg(not(any(feature = "sqlite", feature = "postgres")))]
compile_error!(
    "goforward-core needs a database driver: enable the `sqlite` and/or `postgres` feature"
);

pub mod access;
mod app;
pub mod bus;
pub mod config;
pub mod db;
pub mod error;
pub mod filter;
pub mod hooks;
pub mod http;
pub mod migrate;
pub mod plugin;
#[cfg(feature = "testing")]
pub mod testing;
pub mod token;

pub use app::{GoForward, GoForwardBuilder};
pub use config::Config;
pub use error::{Error, Result};
pub use plugin::{Context, Plugin, ServiceRegistry};
pub use token::{Principal, Role};

/// Re-exported so plugins and hosts use the same versions as core.
pub use sea_orm;
/// Re-exported: sea-query as used by sea-orm.
pub use sea_orm::sea_query;
/// Re-exported so plugins and hosts use the same versions as core.
pub use sea_orm_migration;
