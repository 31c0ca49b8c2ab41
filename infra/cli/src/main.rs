//! `rollcall`: the local stack, tenant bootstrap, tokens and the mail the local stack sent.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use aws_config::BehaviorVersion;
use clap::{Parser, Subcommand};
use rollcall::clock::SystemClock;
use rollcall::config::StoreConfig;
use rollcall::domain::{DisplayName, Email, LoginId, Role, TenantId, TimeZone, UserId};
use rollcall::store::Store;
use rollcall_cli::bootstrap::{self, TenantSpec};
use rollcall_cli::dev::{self, DevOptions};
use rollcall_cli::{local, signing_key};

#[derive(Parser)]
#[command(
    name = "rollcall",
    version,
    about = "rollcall: the multi-tenant user directory"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the local stack: moto, the table, tenant `demo` and the API on 127.0.0.1.
    Dev {
        /// The API's port.
        #[arg(long, default_value_t = 3000)]
        port: u16,
        /// moto's port (0: any free port).
        #[arg(long, default_value_t = 4566)]
        moto_port: u16,
        /// The Python with moto installed (default: $ROLLCALL_PYTHON, else .venv/bin/python).
        #[arg(long)]
        python: Option<PathBuf>,
        /// The table to create.
        #[arg(long, default_value = "rollcall")]
        table: String,
        /// Stop by itself after this many seconds.
        #[arg(long)]
        stop_after: Option<u64>,
    },
    /// Manage tenants (TABLE_NAME and the AWS environment say where).
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// List the mail the local stack sent (read from moto at $AWS_ENDPOINT_URL), with links.
    Mail {
        /// Only mail to this address.
        #[arg(long)]
        to: Option<String>,
        /// moto's URL (default: $AWS_ENDPOINT_URL).
        #[arg(long, env = "AWS_ENDPOINT_URL")]
        endpoint: String,
    },
    /// Print a JWT signed with the local HS256 key ($JWT_HS256_SECRET, else the dev key).
    Token {
        /// The tenant.
        #[arg(long)]
        tenant: TenantId,
        /// The user id (a ULID).
        #[arg(long)]
        sub: UserId,
        /// admin, manager or member.
        #[arg(long)]
        role: Role,
        /// Validity in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant, and optionally its first (active) admin.
    Create {
        /// The tenant id: 2-63 of a-z, 0-9 and '-'.
        id: TenantId,
        /// The organisation's name.
        #[arg(long)]
        name: String,
        /// The most billable users.
        #[arg(long)]
        seat_limit: Option<u32>,
        /// The billing time zone.
        #[arg(long, default_value = "Asia/Tokyo")]
        time_zone: TimeZone,
        /// The first admin's email; creates the admin when given.
        #[arg(long)]
        admin_email: Option<String>,
        /// The first admin's login id.
        #[arg(long, default_value = "admin")]
        admin_login: String,
        /// The first admin's name.
        #[arg(long, default_value = "Admin")]
        admin_name: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    rollcall::telemetry::init_cli();
    match Cli::parse().command {
        Command::Dev {
            port,
            moto_port,
            python,
            table,
            stop_after,
        } => {
            let root = std::env::current_dir().context("reading the current directory")?;
            dev::run(DevOptions {
                port,
                moto_port,
                python: python.unwrap_or_else(|| local::python(&root)),
                table,
                stop_after: stop_after.map(Duration::from_secs),
            })
            .await
        }
        Command::Tenant {
            command:
                TenantCommand::Create {
                    id,
                    name,
                    seat_limit,
                    time_zone,
                    admin_email,
                    admin_login,
                    admin_name,
                },
        } => {
            let store = store_from_env().await?;
            let tenant = bootstrap::create_tenant(
                &store,
                &TenantSpec {
                    id,
                    name: DisplayName::parse(&name).context("--name")?,
                    seat_limit,
                    time_zone,
                },
            )
            .await?;
            println!("created tenant {}", tenant.id);
            if let Some(email) = admin_email {
                let admin = bootstrap::create_admin(
                    &store,
                    &tenant.id,
                    LoginId::parse(&admin_login).context("--admin-login")?,
                    Email::parse(&email).context("--admin-email")?,
                    DisplayName::parse(&admin_name).context("--admin-name")?,
                )
                .await?;
                println!("created admin {} (login id {})", admin.id, admin.login_id);
                let token = users_api::auth::issue_hs256(
                    &signing_key(),
                    &tenant.id,
                    &admin.id,
                    Role::Admin,
                    3600,
                )?;
                println!("token (1 hour, local key): {token}");
            }
            Ok(())
        }
        Command::Mail { to, endpoint } => {
            let mail = rollcall_cli::mail::sent_mail(&endpoint).await?;
            let shown: Vec<_> = mail
                .iter()
                .filter(|m| to.as_deref().is_none_or(|t| m.is_to(t)))
                .collect();
            if shown.is_empty() {
                println!(
                    "no mail{}",
                    to.map(|t| format!(" to {t}")).unwrap_or_default()
                );
            }
            for m in shown {
                println!("To:      {}", m.recipients().collect::<Vec<_>>().join(", "));
                println!("From:    {}", m.source);
                println!("Subject: {}", m.subject);
                for link in m.links() {
                    println!("Link:    {link}");
                }
                println!();
            }
            Ok(())
        }
        Command::Token {
            tenant,
            sub,
            role,
            ttl,
        } => {
            let token = users_api::auth::issue_hs256(&signing_key(), &tenant, &sub, role, ttl)?;
            println!("{token}");
            Ok(())
        }
    }
}

async fn store_from_env() -> anyhow::Result<Store> {
    let config = StoreConfig::from_env()?;
    let sdk = aws_config::load_defaults(BehaviorVersion::latest()).await;
    Ok(Store::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        config.table_name,
        Arc::new(SystemClock),
    ))
}
