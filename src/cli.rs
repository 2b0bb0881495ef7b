//! The `goforward` command line: `serve`, `migrate up|down|status|fresh`,
//! `keys`, `config check`, `admin create` (with the `auth` feature). A host binary embeds it with its own plugins via
//! [`main_with`], the way PocketBase apps extend `pocketbase serve`.
//!
//! ```no_run
//! use goforward::cli;
//!
//! fn main() -> std::process::ExitCode {
//!     cli::main_with(|builder| goforward::with_default_plugins(builder))
//! }
//! ```

#![allow(clippy::print_stdout)] // printing to stdout is the CLI's job

use std::process::ExitCode;

use actix_web::{App, HttpServer};
use clap::{Parser, Subcommand};

use crate::{Config, Error, GoForward, GoForwardBuilder, LoadConfig, Result};

/// GoForward: auth, REST, realtime and storage that speak the Supabase protocols.
#[derive(Debug, Parser)]
#[command(name = "goforward", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve every enabled plugin (the standalone server).
    Serve,
    /// Manage migrations.
    Migrate {
        /// Migration action.
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Print an anon key and a service_role key signed with the configured secret.
    Keys {
        /// Validity in seconds (default: ten years, like Supabase's keys).
        #[arg(long, default_value_t = 315_360_000)]
        valid_for: i64,
    },
    /// Configuration commands.
    Config {
        /// Config action.
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Administrator accounts (needs the auth plugin).
    #[cfg(feature = "auth")]
    Admin {
        /// Admin action.
        #[command(subcommand)]
        action: AdminAction,
    },
}

/// `goforward admin …`.
#[cfg(feature = "auth")]
#[derive(Debug, Subcommand)]
pub enum AdminAction {
    /// Create a confirmed account with an administrator level, or reset an
    /// existing one (password, confirmed email, no ban, the level).
    Create {
        /// Email address of the account.
        #[arg(long)]
        email: String,
        /// Password; without it, `GOFORWARD_ADMIN_PASSWORD` is read (keeps
        /// it out of the process list and shell history).
        #[arg(long)]
        password: Option<String>,
        /// Level: moderator, admin, super_admin or system_admin.
        #[arg(long, default_value = "system_admin")]
        role: String,
    },
}

/// `goforward migrate …`.
#[derive(Debug, Subcommand)]
pub enum MigrateAction {
    /// Apply every pending migration.
    Up,
    /// Revert the last N applied migrations (default 1).
    Down {
        /// How many to revert.
        #[arg(default_value_t = 1)]
        steps: u32,
    },
    /// List migrations and whether each is applied.
    Status,
    /// Revert everything, then apply everything.
    Fresh,
}

/// `goforward config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Validate the configuration and exit.
    Check,
}

/// Parses the process arguments and runs with `plugins` applied to the builder;
/// prints one error line and returns a failure code on error.
pub fn main_with(
    plugins: impl Fn(GoForwardBuilder) -> GoForwardBuilder + Send + 'static,
) -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, plugins)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            match err {
                Error::Config { .. } => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

/// Runs one parsed command.
///
/// # Errors
/// Whatever the command fails with; configuration errors name the key.
pub async fn run(cli: Cli, plugins: impl Fn(GoForwardBuilder) -> GoForwardBuilder) -> Result<()> {
    let config = Config::load()?;
    crate::init_tracing(&config, false);
    execute(cli.command, config, plugins).await
}

/// Runs one command with an already loaded `config` (what [`run`] does after
/// loading; hosts and tests call it directly).
///
/// # Errors
/// Whatever the command fails with; configuration errors name the key.
pub async fn execute(
    command: Command,
    config: Config,
    plugins: impl Fn(GoForwardBuilder) -> GoForwardBuilder,
) -> Result<()> {
    let mut builder = plugins(GoForward::builder(config));
    match command {
        Command::Serve => serve(builder).await,
        Command::Config {
            action: ConfigAction::Check,
        } => {
            builder.check()?;
            println!("configuration ok");
            Ok(())
        }
        Command::Keys { valid_for } => {
            builder.check()?;
            let mut config = builder.config().clone();
            let signer = config.token_signer()?;
            println!("GOFORWARD_ANON_KEY={}", signer.api_key("anon", valid_for)?);
            println!(
                "GOFORWARD_SERVICE_KEY={}",
                signer.api_key("service_role", valid_for)?
            );
            Ok(())
        }
        #[cfg(feature = "auth")]
        Command::Admin {
            action:
                AdminAction::Create {
                    email,
                    password,
                    role,
                },
        } => admin_create(builder, &email, password, &role).await,
        Command::Migrate { action } => {
            let db = builder.connect().await?;
            let migrator = builder.migrator()?;
            let changed = match action {
                MigrateAction::Up => migrator.up(&db).await?,
                MigrateAction::Down { steps } => migrator.down(&db, steps).await?,
                MigrateAction::Fresh => migrator.fresh(&db).await?,
                MigrateAction::Status => migrator.status(&db).await?,
            };
            for m in changed {
                let state = if m.applied_at.is_some() {
                    "applied"
                } else {
                    "pending"
                };
                println!("{:<12} {:<48} {state}", m.plugin, m.name);
            }
            Ok(())
        }
    }
}

/// `goforward admin create`: builds the app (migrating as `serve` would),
/// then creates or resets the account through the auth plugin.
#[cfg(feature = "auth")]
async fn admin_create(
    builder: GoForwardBuilder,
    email: &str,
    password: Option<String>,
    role: &str,
) -> Result<()> {
    use goforward_core::token::AdminRole;
    let level = AdminRole::parse(role).ok_or_else(|| {
        Error::config(
            "--role",
            role,
            "expected moderator, admin, super_admin or system_admin",
        )
    })?;
    let password = match password.or_else(|| std::env::var("GOFORWARD_ADMIN_PASSWORD").ok()) {
        Some(p) if !p.is_empty() => p,
        _ => {
            return Err(Error::config(
                "--password",
                "",
                "give --password or set GOFORWARD_ADMIN_PASSWORD",
            ));
        }
    };
    let gf = builder.build().await?;
    let result = match gf
        .context()
        .services()
        .get::<goforward_auth::state::AuthState>()
    {
        Some(state) => {
            goforward_auth::bootstrap::ensure_admin(&state, email, &password, level, true)
                .await
                .map_err(|e| Error::Plugin {
                    plugin: "auth".into(),
                    message: e.to_string(),
                })
        }
        None => Err(Error::Plugin {
            plugin: "auth".into(),
            message: "the auth plugin is not enabled in this build".into(),
        }),
    };
    gf.shutdown().await;
    let (user, outcome) = result?;
    println!(
        "{} {} ({}) id={}",
        outcome.as_str(),
        user.email.unwrap_or_default(),
        level.as_str(),
        user.id
    );
    Ok(())
}

async fn serve(builder: GoForwardBuilder) -> Result<()> {
    let gf = builder.build().await?;
    let addr = gf.config().server.addr.clone();
    let app = gf.clone();
    let server = HttpServer::new(move || App::new().configure(app.routes()))
        .shutdown_timeout(gf.config().server.shutdown_timeout_secs)
        .bind(&addr)?
        .run();
    tracing::info!(%addr, "goforward listening on http://{addr}");
    let result = server.await;
    gf.shutdown().await;
    result.map_err(Error::Io)
}
