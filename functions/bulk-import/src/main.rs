//! The bulk-import Lambda function: read config, build the SDK clients once, run.

use std::sync::Arc;

use aws_config::BehaviorVersion;
use bulk_import::{ImportConfig, Importer, SqsEvent};
use lambda_runtime::{LambdaEvent, service_fn};
use rollcall::clock::SystemClock;
use rollcall::files::Bucket;
use rollcall::store::Store;

/// A file's rows are many small strings made and dropped together: mimalloc handles that
/// about twice as fast as the system allocator (BENCHMARKS.md, import reading).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let (store, bucket, settings) = ImportConfig::from_env().inspect_err(|e| {
        tracing::error!(error = %e, "refusing to start: the configuration is incomplete");
    })?;
    let sdk = aws_config::load_defaults(BehaviorVersion::latest()).await;
    let store = Store::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        store.table_name,
        Arc::new(SystemClock),
    );
    let bucket = Bucket::from_sdk(&sdk, bucket.bucket_name);
    let importer = Importer::new(store, bucket, settings);
    let importer = &importer;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        importer.function_handler(event).await
    }))
    .await
}
