//! The users-api Lambda function: read config, build the SDK client once, serve the router.

use std::sync::Arc;

use aws_config::BehaviorVersion;
use rollcall::clock::SystemClock;
use rollcall::files::Bucket;
use rollcall::store::Store;
use users_api::{ApiConfig, AppState, app};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let config = ApiConfig::from_env().inspect_err(|e| {
        tracing::error!(error = %e, "refusing to start: the configuration is incomplete");
    })?;
    let sdk = aws_config::load_defaults(BehaviorVersion::latest()).await;
    let store = Store::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        config.store.table_name,
        Arc::new(SystemClock),
    );
    let bucket = Bucket::from_sdk(&sdk, config.bucket.bucket_name);
    let mut state = AppState::new(
        store,
        bucket,
        config.verifier,
        config.cursor_key,
        config.limits,
    );
    if let Some(base) = &config.public_base_url {
        state = state.accepting_issued_tokens(base);
    }
    let state = state.with_import_queue(users_api::imports::ImportQueue::new(
        aws_sdk_sqs::Client::new(&sdk),
        config.import_queue_url,
    ));
    lambda_http::run(app(state)).await
}
