#![doc = include_str!("../README.md")]
#![deny(clippy::unwrap_used, clippy::print_stdout)]

#[cfg(feature = "cli")]
pub mod cli;
pub mod config_loader;

pub use config_loader::LoadConfig;
pub use goforward_core::{
    self as core, Config, Context, Error, GoForward, GoForwardBuilder, Plugin, Principal, Result,
    Role, ServiceRegistry, access, bus, filter, hooks, http, migrate, plugin, sea_orm,
    sea_orm_migration, sea_query, token,
};

#[cfg(feature = "auth")]
pub use goforward_auth::{self as auth, Auth};
#[cfg(feature = "realtime")]
pub use goforward_realtime::{self as realtime, Realtime};
#[cfg(feature = "meta")]
pub use goforward_rest::meta::Meta;
#[cfg(feature = "rest")]
pub use goforward_rest::{self as rest, Rest};
#[cfg(feature = "storage")]
pub use goforward_storage::{self as storage, Bucket, Storage};

#[cfg(feature = "testing")]
pub use goforward_core::testing;

/// Everything a host usually imports: `use goforward::prelude::*;`.
pub mod prelude {
    pub use crate::LoadConfig;
    pub use goforward_core::access::{
        AccessControl, Action, Decision, Policy, Resource, Rule, TablePolicy,
    };
    pub use goforward_core::filter::{Filter, Op};
    pub use goforward_core::{Config, Context, GoForward, Plugin, Principal, Role};

    #[cfg(feature = "auth")]
    pub use goforward_auth::{Auth, AuthConfig};
    #[cfg(feature = "realtime")]
    pub use goforward_realtime::{Realtime, RealtimeConfig, RealtimeHandle};
    #[cfg(feature = "meta")]
    pub use goforward_rest::meta::Meta;
    #[cfg(feature = "rest")]
    pub use goforward_rest::{Rest, RestError, RpcCall};
    #[cfg(feature = "storage")]
    pub use goforward_storage::{Bucket, Storage};
}

/// Adds every plugin this build enables (auth, rest, meta, realtime,
/// storage) with default settings.
pub fn with_default_plugins(builder: GoForwardBuilder) -> GoForwardBuilder {
    #[cfg(feature = "auth")]
    let builder = builder.plugin(Auth::new());
    #[cfg(feature = "rest")]
    let rest = Rest::new();
    #[cfg(feature = "meta")]
    let meta = Meta::for_rest(&rest);
    #[cfg(feature = "rest")]
    let builder = builder.plugin(rest);
    #[cfg(feature = "meta")]
    let builder = builder.plugin(meta);
    #[cfg(feature = "realtime")]
    let builder = builder.plugin(Realtime::new());
    #[cfg(feature = "storage")]
    let builder = builder.plugin(Storage::new());
    builder
}

/// Installs the global tracing subscriber with `config.log` as the filter
/// (human-readable; JSON lines when `json` is true). Safe to call twice.
pub fn init_tracing(config: &Config, json: bool) {
    use tracing_subscriber::{EnvFilter, fmt};
    let filter = EnvFilter::try_new(&config.log).unwrap_or_else(|_| EnvFilter::new("info"));
    let result = if json {
        fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init()
    } else {
        fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init()
    };
    if result.is_err() {
        tracing::debug!("tracing subscriber already installed");
    }
}
