//! Log set-up for programs that are not Lambda functions (the CLI, the local stack). Lambda
//! functions use `lambda_runtime::tracing::init_default_subscriber()`, which honours
//! `AWS_LAMBDA_LOG_FORMAT` and `AWS_LAMBDA_LOG_LEVEL`.

use tracing_subscriber::EnvFilter;

/// Human-readable logs on standard error, filtered by `RUST_LOG` (default `info`, with the AWS
/// SDK's own chatter at `warn`).
pub fn init_cli() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,aws_config=warn,aws_smithy_runtime=warn"));
    // A second initialisation (tests) is harmless: keep the first subscriber.
    let _already_set = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init()
        .is_err();
}
