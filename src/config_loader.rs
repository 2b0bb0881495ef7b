//! The layered configuration loader: defaults < `goforward.toml|yaml` <
//! `GOFORWARD_*` environment. It runs at the edge (this facade, the CLI);
//! library crates receive the typed [`Config`].
//!
//! Well-known variables: `GOFORWARD_ADDR`, `GOFORWARD_DATABASE_URL`,
//! `GOFORWARD_DATA_DIR`, `GOFORWARD_JWT_SECRET`, `GOFORWARD_REDIS_URL`,
//! `GOFORWARD_SITE_URL`, `GOFORWARD_LOG`; the file comes from
//! `GOFORWARD_CONFIG`. Any other key is `GOFORWARD_SECTION__KEY`
//! (e.g. `GOFORWARD_SERVER__JSON_LIMIT=1048576`, `GOFORWARD_AUTH__SITE_NAME=x`).

use std::path::Path;

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml, Yaml},
};

use crate::{Config, Error, Result};

/// Adds `Config::load()` (import it through the prelude).
pub trait LoadConfig: Sized {
    /// Loads from the process environment and the config file.
    ///
    /// # Errors
    /// [`Error::Config`] naming the key (or `GOFORWARD_CONFIG`) and the problem.
    fn load() -> Result<Self>;
}

impl LoadConfig for Config {
    fn load() -> Result<Self> {
        load()
    }
}

/// Maps an environment key (prefix stripped, lower-cased) to a config path.
fn env_key(key: &str) -> Option<String> {
    let mapped = match key {
        "config" | "test_database_url" | "test_redis_url" => return None,
        "addr" => "server.addr",
        "database_url" => "database.url",
        "jwt_secret" => "jwt.secret",
        "redis_url" => "redis.url",
        "data_dir" | "site_url" | "log" => key,
        other if other.starts_with("test_") => return None,
        other => return Some(other.replace("__", ".")),
    };
    Some(mapped.to_owned())
}

/// Loads the layered configuration.
///
/// # Errors
/// See [`LoadConfig::load`].
pub fn load() -> Result<Config> {
    let mut figment = Figment::from(Serialized::defaults(Config::default()));
    match std::env::var_os("GOFORWARD_CONFIG") {
        Some(path) => figment = figment.merge(file_provider(Path::new(&path))?),
        None => {
            for candidate in ["goforward.toml", "goforward.yaml", "goforward.yml"] {
                let path = Path::new(candidate);
                if path.exists() {
                    figment = figment.merge(file_provider(path)?);
                    break;
                }
            }
        }
    }
    figment = figment.merge(
        Env::prefixed("GOFORWARD_")
            .filter_map(|key| env_key(&key.as_str().to_ascii_lowercase()).map(Into::into)),
    );
    figment.extract::<Config>().map_err(figment_error)
}

enum FileFormat {
    Toml(String),
    Yaml(String),
}

impl figment::Provider for FileFormat {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named("config file")
    }

    fn data(
        &self,
    ) -> std::result::Result<
        figment::value::Map<figment::Profile, figment::value::Dict>,
        figment::Error,
    > {
        match self {
            FileFormat::Toml(text) => Toml::string(text).data(),
            FileFormat::Yaml(text) => Yaml::string(text).data(),
        }
    }
}

fn file_provider(path: &Path) -> Result<FileFormat> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::config(
            "GOFORWARD_CONFIG",
            shown.clone(),
            format!("cannot read the config file: {e}"),
        )
    })?;
    match path.extension().and_then(|e| e.to_str()) {
        Some("toml") => Ok(FileFormat::Toml(text)),
        Some("yaml" | "yml") => Ok(FileFormat::Yaml(text)),
        _ => Err(Error::config(
            "GOFORWARD_CONFIG",
            shown,
            "the config file must end in .toml, .yaml or .yml",
        )),
    }
}

fn figment_error(err: figment::Error) -> Error {
    let key = if err.path.is_empty() {
        "config".to_owned()
    } else {
        err.path.join(".")
    };
    let source = err
        .metadata
        .as_ref()
        .map(|m| m.name.to_string())
        .unwrap_or_default();
    let problem = if source.is_empty() {
        err.kind.to_string()
    } else {
        format!("{} (from {source})", err.kind)
    };
    let value = match &err.kind {
        figment::error::Kind::InvalidType(actual, _)
        | figment::error::Kind::InvalidValue(actual, _) => actual.to_string(),
        _ => String::new(),
    };
    Error::config(key, value, problem)
}

#[cfg(test)]
mod tests {
    use super::env_key;

    #[test]
    fn well_known_and_sectioned_env_keys() {
        assert_eq!(env_key("addr").as_deref(), Some("server.addr"));
        assert_eq!(env_key("database_url").as_deref(), Some("database.url"));
        assert_eq!(env_key("jwt_secret").as_deref(), Some("jwt.secret"));
        assert_eq!(
            env_key("server__json_limit").as_deref(),
            Some("server.json_limit")
        );
        assert_eq!(
            env_key("auth__site_name").as_deref(),
            Some("auth.site_name")
        );
        assert_eq!(env_key("config"), None);
        assert_eq!(env_key("test_database_url"), None);
    }
}
