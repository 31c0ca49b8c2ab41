//! The table's shape: keys, secondary indexes, stream and TTL. `infra/template.yaml` declares
//! the same table for AWS; the local stack and the tests create it from here, and an
//! end-to-end test fails if the two drift apart.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};

use super::StoreError;

/// Partition key attribute of the table.
pub const PK: &str = "pk";
/// Sort key attribute of the table.
pub const SK: &str = "sk";
/// The TTL attribute (epoch seconds).
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// A global secondary index of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Index {
    /// Index name.
    pub name: &'static str,
    /// Partition key attribute.
    pub pk: &'static str,
    /// Sort key attribute.
    pub sk: &'static str,
}

/// A tenant's live users sorted by normalised name (then id), spread over [`LISTING_SHARDS`]
/// partitions by user id: `TENANT#{tid}#{nn}` / `{name}\u{1}{uid}`. A listing merges the shards.
pub const BY_NAME: Index = Index {
    name: "by_name",
    pk: "gsi1pk",
    sk: "gsi1sk",
};

/// A tenant's live users sorted by creation (ULID): `TENANT#{tid}#{nn}` / `{uid}`; its deleted
/// users (tombstones, kept for billing) under `DELETED#{tid}#{nn}` / `{uid}`; sharded as
/// [`BY_NAME`].
pub const BY_CREATED: Index = Index {
    name: "by_created",
    pk: "gsi2pk",
    sk: "gsi2sk",
};

/// Partitions of a tenant's users in [`BY_NAME`] and [`BY_CREATED`]. One index partition takes
/// 1,000 write units a second; a user's entry is one unit (up to 1 KB) per index when created,
/// two in `by_name` when renamed (the old entry out, the new one in, in the same shard). So 32
/// shards let a tenant create 32,000 users a second and rename 16,000 before its own
/// partitions throttle, beyond the 10,000 users a second asked of it (the table's own limit,
/// 40,000 write units a second by default, binds first: BENCHMARKS.md, "Import: applying a
/// file"). A listing page merges 32 shards (and the pre-shard partition): see
/// [`crate::store::Store::list_users`].
pub const LISTING_SHARDS: u32 = 32;

/// Every tenant (sparse: only tenant items carry it), for jobs that visit all tenants without
/// scanning the table: `TENANTS` / `{tid}`.
pub const TENANTS: Index = Index {
    name: "tenants",
    pk: "gsi3pk",
    sk: "gsi3sk",
};

/// Invitations that need the sender or the sweep at some time (sparse: only open, unsuperseded
/// invitations carry it), spread over [`OUTBOX_SHARDS`] partitions: `OUTBOX#{n}` / due time
/// (RFC 3339, UTC, milliseconds, so text order is time order).
pub const BY_DUE: Index = Index {
    name: "by_due",
    pk: "gsi4pk",
    sk: "gsi4sk",
};

/// Partitions of [`BY_DUE`]: its write rate is 16 × 1,000 items/s before it can throttle.
pub const OUTBOX_SHARDS: u32 = 16;

/// Every index, in the order the template declares them.
pub const INDEXES: [Index; 4] = [BY_NAME, BY_CREATED, TENANTS, BY_DUE];

/// Creates the table as the template declares it (on-demand, all indexes projecting every
/// attribute, stream with new and old images, TTL on [`TTL_ATTRIBUTE`]). Used by the local
/// stack and tests; AWS deployments use the template.
pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
    let mut attributes = vec![PK, SK];
    for index in INDEXES {
        attributes.push(index.pk);
        attributes.push(index.sk);
    }
    let mut req = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(PK, KeyType::Hash)?)
        .key_schema(key(SK, KeyType::Range)?)
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .map_err(StoreError::build)?,
        );
    for name in attributes {
        req = req.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(StoreError::build)?,
        );
    }
    for index in INDEXES {
        req = req.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(index.name)
                .key_schema(key(index.pk, KeyType::Hash)?)
                .key_schema(key(index.sk, KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .map_err(StoreError::build)?,
        );
    }
    req.send().await.map_err(StoreError::aws)?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(TTL_ATTRIBUTE)
                .build()
                .map_err(StoreError::build)?,
        )
        .send()
        .await
        .map_err(StoreError::aws)?;
    Ok(())
}

fn key(name: &str, kind: KeyType) -> Result<KeySchemaElement, StoreError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .map_err(StoreError::build)
}
