//! `rollcall`: the local stack, tenant bootstrap and settings, tokens, billing runs and the mail
//! the local stack sent.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use aws_config::BehaviorVersion;
use billing_snapshot::{SnapshotConfig, Snapshotter};
use clap::{Parser, Subcommand};
use rollcall::clock::SystemClock;
use rollcall::config::{BucketConfig, StoreConfig};
use rollcall::domain::{
    BillingMonth, DisplayName, Email, LoginId, Role, TenantId, TimeZone, TwoStep, UserId,
};
use rollcall::files::Bucket;
use rollcall::store::Store;
use rollcall_cli::bootstrap::{self, TenantSpec};
use rollcall_cli::demo::{self, DemoOptions};
use rollcall_cli::dev::{self, DevOptions};
use rollcall_cli::{billing, local, signing_key};

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
        /// The bucket to create.
        #[arg(long, default_value = "rollcall-local")]
        bucket: String,
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
    /// Month-end billing (TABLE_NAME, BUCKET_NAME and the AWS environment say where).
    Billing {
        #[command(subcommand)]
        command: BillingCommand,
    },
    /// A scripted tour on a fresh local stack that stops by itself: a tenant and admin, a user
    /// through the API, the invitation mail and accepting it, a CSV validated then applied, and
    /// the previous month's billing snapshot.
    Demo {
        /// The Python with moto installed (default: $ROLLCALL_PYTHON, else .venv/bin/python).
        #[arg(long)]
        python: Option<PathBuf>,
        /// The CSV file to import.
        #[arg(long, default_value = "events/bulk-import-sample.csv")]
        sample: PathBuf,
    },
    /// Imports a CSV file through the API (create the job, upload, wait) and prints the report;
    /// exits with 1 if the file was refused.
    Import {
        /// The file.
        file: PathBuf,
        /// Only check the file and write the report; change nothing.
        #[arg(long)]
        validate: bool,
        /// The file's encoding: auto, utf-8 or shift_jis.
        #[arg(long, default_value = "auto")]
        encoding: String,
        /// The API (as `rollcall dev` prints it).
        #[arg(long, env = "ROLLCALL_API", default_value = "http://127.0.0.1:3000")]
        api: String,
        /// An admin's token; without one, the sign-in `rollcall login` stored for the API.
        #[arg(long, env = "TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Seconds to wait for the job.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Sign in to a tenant through its issuer, as a native app (code flow, PKCE, a loopback
    /// redirect); the tokens are kept for `rollcall import` and refreshed as needed.
    Login {
        /// The API's base URL (the deployment's PUBLIC_BASE_URL).
        #[arg(long, env = "ROLLCALL_API", default_value = "http://127.0.0.1:3000")]
        api: String,
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The tenant's public client for the CLI (as `rollcall dev` prints it, or registered
        /// with POST /clients: token_endpoint_auth_method none, redirect URI
        /// http://127.0.0.1/callback, grant types authorization_code and refresh_token).
        #[arg(long, env = "ROLLCALL_CLIENT_ID")]
        client_id: String,
        /// Seconds to wait for the browser.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Revoke and forget the sign-in to an API.
    Logout {
        /// The API's base URL.
        #[arg(long, env = "ROLLCALL_API", default_value = "http://127.0.0.1:3000")]
        api: String,
    },
    /// The token signing keys (TABLE_NAME, SIGNING_KEY_KMS_KEY_ID and the AWS environment say
    /// where).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// One-off moves of stored data to a newer layout (TABLE_NAME and the AWS environment say
    /// where). Each can stop anywhere and run again.
    Migrate {
        #[command(subcommand)]
        command: MigrateCommand,
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
enum MigrateCommand {
    /// Move every user (and tombstone) from a tenant's one listing partition into the 32
    /// listing shards. Listings read both until it is done; safe to run again or while the
    /// API runs.
    ListingShards {
        /// Only this tenant (default: every tenant).
        #[arg(long)]
        tenant: Option<TenantId>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Add a new signing key: published at once, signing ten minutes later; the key it
    /// replaces stays published until the tokens it signed have expired.
    Rotate,
    /// List the keys: id, state, age.
    List,
}

#[derive(Subcommand)]
enum BillingCommand {
    /// Fire billing-snapshot as the schedule does (every tenant, its last closed month, taken
    /// snapshots left alone), or re-drive a month and/or tenants (recounted and compared).
    Run {
        /// The month to bill (yyyy-mm).
        #[arg(long)]
        month: Option<BillingMonth>,
        /// A tenant to bill (repeat for several).
        #[arg(long = "tenant")]
        tenants: Vec<TenantId>,
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
    /// Change a tenant's token lifetimes (what is not given stays).
    SignIn {
        /// The tenant id.
        id: TenantId,
        /// Access and ID tokens live this many minutes (1-60).
        #[arg(long)]
        access_token_minutes: Option<u32>,
        /// A refresh family lives at most this many days from sign-in (1-365).
        #[arg(long)]
        refresh_absolute_days: Option<u32>,
        /// A refresh token unused this many days dies (1 to the absolute lifetime).
        #[arg(long)]
        refresh_idle_days: Option<u32>,
        /// Seconds after a rotation in which the previous refresh token still works once (0-60).
        #[arg(long)]
        refresh_grace_seconds: Option<u32>,
        /// Who enters an emailed code after the password: per-user (each user's own
        /// two_step), admins (and those users) or everyone.
        #[arg(long)]
        two_step: Option<TwoStep>,
    },
    /// Change how a tenant's hosted pages look and where they lead (what is not given stays;
    /// an empty value clears).
    Pages {
        /// The tenant id.
        id: TenantId,
        /// Where a person goes after setting a password (https; http only on loopback).
        #[arg(long)]
        app_url: Option<String>,
        /// The tenant's logo (https; http only on loopback).
        #[arg(long)]
        logo_url: Option<String>,
        /// The accent colour, #rrggbb, with a contrast of at least 4.5:1 against white.
        #[arg(long)]
        accent_colour: Option<String>,
    },
    /// Change a tenant's seat limit and billing policy (what is not given stays).
    Billing {
        /// The tenant id.
        id: TenantId,
        /// The most users holding a seat.
        #[arg(long, conflicts_with = "no_seat_limit")]
        seat_limit: Option<u32>,
        /// Remove the seat limit.
        #[arg(long)]
        no_seat_limit: bool,
        /// Whether invited users (no password yet) are billable and hold seats.
        #[arg(long)]
        count_invited: Option<bool>,
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
            bucket,
            stop_after,
        } => {
            let root = std::env::current_dir().context("reading the current directory")?;
            dev::run(DevOptions {
                port,
                moto_port,
                python: python.unwrap_or_else(|| local::python(&root)),
                table,
                bucket,
                stop_after: stop_after.map(Duration::from_secs),
            })
            .await
        }
        Command::Demo { python, sample } => {
            let root = std::env::current_dir().context("reading the current directory")?;
            demo::run(DemoOptions {
                python: python.unwrap_or_else(|| local::python(&root)),
                sample,
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
                println!(
                    "created admin {} (login id {})",
                    admin.id, admin.profile.login_id
                );
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
        Command::Tenant {
            command:
                TenantCommand::Billing {
                    id,
                    seat_limit,
                    no_seat_limit,
                    count_invited,
                },
        } => {
            let store = store_from_env().await?;
            let mut tenant = store.get_tenant(&id).await?;
            if no_seat_limit {
                tenant.seat_limit = None;
            } else if seat_limit.is_some() {
                tenant.seat_limit = seat_limit;
            }
            if let Some(c) = count_invited {
                tenant.billing.count_invited = c;
            }
            store
                .set_billing_settings(&id, tenant.seat_limit, tenant.billing)
                .await?;
            let (tenant, seats) = store.tenant_and_seats(&id).await?;
            println!(
                "tenant {}: seat limit {}, invited users {}, seats in use {}",
                tenant.id,
                tenant
                    .seat_limit
                    .map_or("none".to_owned(), |l| l.to_string()),
                if tenant.billing.count_invited {
                    "counted"
                } else {
                    "not counted"
                },
                seats.used(tenant.billing)
            );
            Ok(())
        }
        Command::Tenant {
            command:
                TenantCommand::SignIn {
                    id,
                    access_token_minutes,
                    refresh_absolute_days,
                    refresh_idle_days,
                    refresh_grace_seconds,
                    two_step,
                },
        } => {
            let store = store_from_env().await?;
            let mut policy = store.get_tenant(&id).await?.sign_in;
            if let Some(v) = access_token_minutes {
                policy.access_token_minutes = v;
            }
            if let Some(v) = refresh_absolute_days {
                policy.refresh_absolute_days = v;
            }
            if let Some(v) = refresh_idle_days {
                policy.refresh_idle_days = v;
            }
            if let Some(v) = refresh_grace_seconds {
                policy.refresh_grace_seconds = v;
            }
            if let Some(v) = two_step {
                policy.two_step = v;
            }
            let policy = policy
                .check()
                .map_err(|e| anyhow::anyhow!("--{}: {e}", e.field.replace('_', "-")))?;
            store.set_sign_in_policy(&id, policy).await?;
            println!(
                "tenant {id}: access tokens {} min, refresh families {} days, idle refresh tokens {} days, grace {} s, two-step {}",
                policy.access_token_minutes,
                policy.refresh_absolute_days,
                policy.refresh_idle_days,
                policy.refresh_grace_seconds,
                policy.two_step.as_str()
            );
            Ok(())
        }
        Command::Tenant {
            command:
                TenantCommand::Pages {
                    id,
                    app_url,
                    logo_url,
                    accent_colour,
                },
        } => {
            let store = store_from_env().await?;
            let mut pages = store.get_tenant(&id).await?.pages;
            let given = |v: Option<String>, old: &mut Option<String>| {
                if let Some(v) = v {
                    *old = Some(v.trim().to_owned()).filter(|v| !v.is_empty());
                }
            };
            given(app_url, &mut pages.app_url);
            given(logo_url, &mut pages.logo_url);
            given(accent_colour, &mut pages.accent_colour);
            let pages = pages
                .check()
                .map_err(|e| anyhow::anyhow!("--{}: {}", e.field.replace('_', "-"), e.reason))?;
            store.set_page_settings(&id, &pages).await?;
            let shown = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
            println!(
                "tenant {id}: app URL {}, logo {}, accent colour {}",
                shown(&pages.app_url),
                shown(&pages.logo_url),
                shown(&pages.accent_colour)
            );
            Ok(())
        }
        Command::Billing {
            command: BillingCommand::Run { month, tenants },
        } => {
            let sdk = aws_config::load_defaults(BehaviorVersion::latest()).await;
            let store = store_on(&sdk)?;
            let bucket = BucketConfig::from_env()?.bucket_name;
            let snapshotter = Snapshotter::new(
                store,
                Bucket::from_sdk(&sdk, &bucket),
                SnapshotConfig::default(),
            );
            let report = billing::run(&snapshotter, billing::event(month, tenants)?).await?;
            print!("{}", billing::render(&report, &bucket));
            Ok(())
        }
        Command::Import {
            file,
            validate,
            encoding,
            api,
            token,
            timeout,
        } => {
            let token = match token {
                Some(t) => t,
                None => rollcall_cli::login::access_token(&api).await?,
            };
            let outcome = rollcall_cli::import::run(
                &file,
                &rollcall_cli::import::ImportOptions {
                    api,
                    token,
                    validate,
                    encoding,
                    timeout: Duration::from_secs(timeout),
                },
            )
            .await?;
            print!("{}", outcome.report);
            if !outcome.succeeded() {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Login {
            api,
            tenant,
            client_id,
            timeout,
        } => {
            let stored = rollcall_cli::login::login(&rollcall_cli::login::LoginOptions {
                api,
                tenant,
                client_id,
                timeout: Duration::from_secs(timeout),
            })
            .await?;
            println!(
                "Signed in to {} (tokens in {}).",
                stored.issuer,
                rollcall_cli::login::tokens_path()?.display()
            );
            Ok(())
        }
        Command::Migrate {
            command: MigrateCommand::ListingShards { tenant },
        } => {
            let store = store_from_env().await?;
            let tenants = match tenant {
                Some(t) => vec![t],
                None => store.tenants().await?.into_iter().map(|t| t.id).collect(),
            };
            let (mut moved, mut skipped) = (0, 0);
            for t in &tenants {
                let done = store.move_to_listing_shards(t).await?;
                println!(
                    "{t}: {} moved into the listing shards, {} already there",
                    done.moved, done.skipped
                );
                moved += done.moved;
                skipped += done.skipped;
            }
            println!(
                "{} tenants: {moved} moved, {skipped} already there",
                tenants.len()
            );
            Ok(())
        }
        Command::Logout { api } => {
            if rollcall_cli::login::logout(&api).await? {
                println!("Signed out of {api}.");
            } else {
                println!("Not signed in to {api}.");
            }
            Ok(())
        }
        Command::Keys { command } => {
            let store = store_from_env().await?;
            match command {
                KeysCommand::Rotate => {
                    let sdk =
                        aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
                    let sealer = auth::keyring::Sealer::new(
                        aws_sdk_kms::Client::new(&sdk),
                        rollcall::config::required("SIGNING_KEY_KMS_KEY_ID")?,
                    );
                    let kid = auth::keyring::rotate(&store, &sealer).await?;
                    println!(
                        "new key {kid}: published now, signing in {} minutes",
                        rollcall::oidc::keys::PUBLISH_AHEAD.num_minutes()
                    );
                }
                KeysCommand::List => {
                    let keys = store.signing_keys().await?;
                    let created: Vec<_> = keys.iter().map(|k| k.created_at).collect();
                    let signer = rollcall::oidc::keys::signer_of(&created, store.clock().now());
                    for (i, k) in keys.iter().enumerate() {
                        let role = match signer {
                            Some(s) if s == i => "signing",
                            Some(s) if i < s => "published, signing soon",
                            _ => "published, verifying only",
                        };
                        println!(
                            "{}  {role}  created {}",
                            k.public.kid,
                            k.created_at.to_rfc3339()
                        );
                    }
                }
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
    let sdk = aws_config::load_defaults(BehaviorVersion::latest()).await;
    store_on(&sdk)
}

fn store_on(sdk: &aws_config::SdkConfig) -> anyhow::Result<Store> {
    let config = StoreConfig::from_env()?;
    Ok(Store::new(
        aws_sdk_dynamodb::Client::new(sdk),
        config.table_name,
        Arc::new(SystemClock),
    ))
}
