//! The auth Lambda function: read config, build the SDK clients once, serve the router.

use std::sync::Arc;

use auth::keyring::{Keyring, Sealer};
use auth::{AuthConfig, AuthState, app};
use aws_config::BehaviorVersion;
use rollcall::clock::SystemClock;
use rollcall::store::Store;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let config = AuthConfig::from_env().inspect_err(|e| {
        tracing::error!(error = %e, "refusing to start: the configuration is incomplete");
    })?;
    let sdk = aws_config::load_defaults(BehaviorVersion::latest()).await;
    let store = Store::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        config.store.table_name,
        Arc::new(SystemClock),
    );
    let sealer = Sealer::new(aws_sdk_kms::Client::new(&sdk), config.kms_key_id);
    let keys = Keyring::new(store.clone(), sealer);
    lambda_http::run(app(AuthState::new(store, keys, &config.public_base_url))).await
}
