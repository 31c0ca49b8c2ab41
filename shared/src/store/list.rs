//! Listing a tenant's users through the tenant indexes: by name or by creation, either way,
//! optionally filtered by status or by a name prefix, a page at a time.
//!
//! The indexes spread a tenant over [`super::schema::LISTING_SHARDS`] partitions; a page merges
//! them in order (see [`Store::list_users`]). The position is a [`PageKey`], which the API seals
//! into an opaque cursor with [`super::CursorSigner`].

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use tracing::instrument;

use super::schema::{BY_CREATED, BY_NAME, Index};
use super::{Store, StoreError, items, keys};
use crate::domain::{Status, TenantId, User, search_key};

/// The order users are listed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SortBy {
    /// By normalised name, then id.
    Name,
    /// By creation (user ids are ULIDs).
    Created,
}

/// Ascending or descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SortOrder {
    /// A→Z, oldest first.
    Asc,
    /// Z→A, newest first.
    Desc,
}

/// Which users to list and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// The order.
    pub sort: SortBy,
    /// The direction.
    pub order: SortOrder,
    /// Only users in this status.
    pub status: Option<Status>,
    /// Only users whose name starts with this (compared after NFKC and lower-casing).
    pub name_prefix: Option<String>,
    /// Users per page, 1–200.
    pub page_size: usize,
    /// Where the previous page ended.
    pub after: Option<PageKey>,
}

/// The most items one filtered query reads.
const MAX_FILTER_READ: usize = 1000;

impl ListQuery {
    /// The smallest page size.
    pub const MIN_PAGE: usize = 1;
    /// The largest page size.
    pub const MAX_PAGE: usize = 200;

    /// A string naming everything but the position, so a cursor made for one query can't be
    /// used with another.
    pub fn fingerprint(&self) -> String {
        format!(
            "{:?}|{:?}|{}|{}",
            self.sort,
            self.order,
            self.status.map(Status::as_str).unwrap_or(""),
            self.name_prefix
                .as_deref()
                .map(search_key)
                .unwrap_or_default()
        )
    }
}

/// A position in a listing: the index sort key of the last user returned (unique: a name's
/// key ends with the user id, and the by-created key is the id), from which every shard reads
/// on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageKey {
    after: String,
}

/// One page of users.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The users, in the order asked for.
    pub users: Vec<User>,
    /// Where the next page starts, if there may be one.
    pub next: Option<PageKey>,
}

/// What one page's queries share: the index, the order and the conditions.
struct Listing<'q> {
    index: Index,
    q: &'q ListQuery,
    /// The name prefix in sort form, if any.
    prefix: Option<String>,
}

/// One partition of the tenant's users being read in order: what it returned and has not been
/// merged yet, and where its next query starts.
struct Run {
    partition: String,
    buffer: std::collections::VecDeque<(String, items::Item)>,
    start: Option<items::Item>,
    done: bool,
    read_limit: usize,
}

/// The largest character: a name key that begins with the prefix sorts below the prefix
/// followed by it.
const LAST_CHAR: char = '\u{10FFFF}';

impl Listing<'_> {
    /// Reads the next items of `run` (after the page key, within the prefix, through the
    /// filters), growing the read for the next time.
    async fn fill(&self, store: &Store, run: &mut Run) -> Result<(), StoreError> {
        let asc = self.q.order == SortOrder::Asc;
        let after = self.q.after.as_ref().map(|k| k.after.as_str());
        let mut key_condition = "#ipk = :t".to_owned();
        let mut values = vec![(":t", run.partition.clone())];
        let mut filters = Vec::new();
        let mut uses_sort_key = true;
        match (self.q.sort, &self.prefix, after) {
            (SortBy::Name, Some(p), None) => {
                key_condition.push_str(" AND begins_with(#isk, :p)");
                values.push((":p", p.clone()));
            }
            (SortBy::Name, Some(p), Some(a)) => {
                // Within the prefix and past the page key: one range, both ends included (the
                // page key's own user is skipped when merged).
                let (lo, hi) = if asc {
                    (a.to_owned(), format!("{p}{LAST_CHAR}"))
                } else {
                    (p.clone(), a.to_owned())
                };
                if lo > hi {
                    run.done = true;
                    return Ok(());
                }
                key_condition.push_str(" AND #isk BETWEEN :lo AND :hi");
                values.push((":lo", lo));
                values.push((":hi", hi));
            }
            (_, _, Some(a)) => {
                key_condition.push_str(if asc {
                    " AND #isk > :a"
                } else {
                    " AND #isk < :a"
                });
                values.push((":a", a.to_owned()));
            }
            (_, _, None) => uses_sort_key = false,
        }
        if let (SortBy::Created, Some(p)) = (self.q.sort, &self.prefix) {
            filters.push("begins_with(name_key, :p)");
            values.push((":p", p.clone()));
        }
        let mut req = store
            .client
            .query()
            .table_name(store.table.as_ref())
            .index_name(self.index.name)
            .key_condition_expression(key_condition)
            .expression_attribute_names("#ipk", self.index.pk)
            .scan_index_forward(asc)
            .limit(i32::try_from(run.read_limit).unwrap_or(i32::MAX))
            .set_exclusive_start_key(run.start.take());
        if uses_sort_key {
            req = req.expression_attribute_names("#isk", self.index.sk);
        }
        for (name, value) in values {
            req = req.expression_attribute_values(name, AttributeValue::S(value));
        }
        if let Some(s) = self.q.status {
            filters.push("#state = :s");
            req = req
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":s", AttributeValue::S(s.as_str().into()));
        }
        if !filters.is_empty() {
            req = req.filter_expression(filters.join(" AND "));
        }
        let out = req.send().await.map_err(StoreError::aws)?;
        for item in out.items.unwrap_or_default() {
            let key = items::string_attr(&item, self.index.sk)
                .ok_or_else(|| StoreError::Corrupt("a listed user without its sort key".into()))?
                .to_owned();
            if Some(key.as_str()) != after {
                run.buffer.push_back((key, item));
            }
        }
        run.start = out.last_evaluated_key;
        run.done = run.start.is_none();
        run.read_limit = (run.read_limit * 4).min(MAX_FILTER_READ);
        Ok(())
    }
}

impl Store {
    /// Lists a page of a tenant's live users: every shard of the index (and the pre-shard
    /// partition) is read from the page key on, the first time for about twice its share of
    /// the page, all at once; the runs are merged in order, and a run that empties before the
    /// page is full is read on (four times as much each time) while the others wait. A page
    /// is 33 queries when no shard holds much more than its share, which is the usual case:
    /// users spread over the shards by id, not by name or time.
    #[instrument(skip_all, fields(tenant_id = %tenant))]
    pub async fn list_users(&self, tenant: &TenantId, q: &ListQuery) -> Result<Page, StoreError> {
        let page_size = q.page_size.clamp(ListQuery::MIN_PAGE, ListQuery::MAX_PAGE);
        let listing = Listing {
            index: match q.sort {
                SortBy::Name => BY_NAME,
                SortBy::Created => BY_CREATED,
            },
            q,
            prefix: q
                .name_prefix
                .as_deref()
                .map(search_key)
                .filter(|p| !p.is_empty()),
        };
        let partitions = keys::live_users_partitions(tenant);
        // About twice a shard's share of the page; a whole page when a filter drops items
        // after they are read, so a sparse filter fills its page in fewer rounds.
        let filtered =
            q.status.is_some() || (q.sort == SortBy::Created && listing.prefix.is_some());
        let share = if filtered {
            page_size
        } else {
            page_size.div_ceil(partitions.len()) * 2 + 1
        };
        let mut runs: Vec<Run> = partitions
            .into_iter()
            .map(|partition| Run {
                partition,
                buffer: std::collections::VecDeque::new(),
                start: None,
                done: false,
                read_limit: share.min(page_size),
            })
            .collect();
        let asc = q.order == SortOrder::Asc;
        let mut users = Vec::with_capacity(page_size);
        let mut last = None;
        loop {
            let reads = runs
                .iter_mut()
                .filter(|r| r.buffer.is_empty() && !r.done)
                .map(|run| listing.fill(self, run));
            futures::future::try_join_all(reads).await?;
            // Every run now has its next user at hand, or has none left.
            let next = runs
                .iter_mut()
                .filter_map(|r| r.buffer.front().map(|(k, _)| k.clone()).zip(Some(r)))
                .reduce(|a, b| if (b.0 < a.0) == asc { b } else { a });
            let Some((key, run)) = next else {
                // Every run is exhausted: no page after this one.
                return Ok(Page { users, next: None });
            };
            let Some((_, item)) = run.buffer.pop_front() else {
                continue;
            };
            if let Some(user) = items::user_from_item(item)? {
                users.push(user);
                last = Some(key);
            }
            if users.len() == page_size {
                let more = runs.iter().any(|r| !r.buffer.is_empty() || !r.done);
                return Ok(Page {
                    users,
                    next: last.filter(|_| more).map(|after| PageKey { after }),
                });
            }
        }
    }
}

impl Store {
    /// Every live user of the tenant, oldest first (for exports).
    #[instrument(skip_all, fields(tenant_id = %tenant))]
    pub async fn all_users(&self, tenant: &TenantId) -> Result<Vec<User>, StoreError> {
        let mut users = Vec::new();
        for partition in keys::live_users_partitions(tenant) {
            let query = self
                .client
                .query()
                .table_name(self.table.as_ref())
                .index_name(BY_CREATED.name)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", BY_CREATED.pk)
                .expression_attribute_values(":pk", AttributeValue::S(partition));
            self.query_all(query, |item| {
                if let Some(user) = items::user_from_item(item)? {
                    users.push(user);
                }
                Ok(())
            })
            .await?;
        }
        users.sort_by_key(|u| u.id);
        Ok(users)
    }
}

/// What one run of [`Store::move_to_listing_shards`] did for a tenant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardMove {
    /// Users (live and deleted) moved from the tenant's one partition into their shards.
    pub moved: u64,
    /// Users found there but moved or rewritten meanwhile (by another run, or by a write that
    /// put them in their shard): left as they are.
    pub skipped: u64,
}

/// Keys one moving run updates at once.
const MOVES_IN_FLIGHT: usize = 16;

impl Store {
    /// Moves a tenant's users out of the partitions the listing indexes had before sharding
    /// (`TENANT#{tid}`, `DELETED#{tid}`) into their shards: one conditional `UpdateItem` per
    /// user, setting only its index keys and only if they are still the old ones, so a run can
    /// stop anywhere and run again (it finds only what is left), runs may overlap, and a user
    /// written meanwhile (whose write put it in its shard already) is left alone. The user's
    /// version does not move: nothing about the user changes.
    #[instrument(skip_all, fields(tenant_id = %tenant))]
    pub async fn move_to_listing_shards(&self, tenant: &TenantId) -> Result<ShardMove, StoreError> {
        use futures::stream::{self, StreamExt as _, TryStreamExt as _};
        let mut report = ShardMove::default();
        for (old, live) in [
            (keys::legacy_live_users_pk(tenant), true),
            (keys::legacy_deleted_users_pk(tenant), false),
        ] {
            let mut start = None;
            loop {
                let out = self
                    .client
                    .query()
                    .table_name(self.table.as_ref())
                    .index_name(BY_CREATED.name)
                    .key_condition_expression("#pk = :pk")
                    .projection_expression("pk, sk, user_id")
                    .expression_attribute_names("#pk", BY_CREATED.pk)
                    .expression_attribute_values(":pk", AttributeValue::S(old.clone()))
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(StoreError::aws)?;
                let found = out.items.unwrap_or_default();
                let moved: Vec<bool> = stream::iter(found)
                    .map(|item| self.move_one(tenant, item, &old, live))
                    .buffer_unordered(MOVES_IN_FLIGHT)
                    .try_collect()
                    .await?;
                for m in moved {
                    if m {
                        report.moved += 1;
                    } else {
                        report.skipped += 1;
                    }
                }
                start = out.last_evaluated_key;
                if start.is_none() {
                    break;
                }
            }
        }
        Ok(report)
    }

    /// Moves one user found in the old partition `old`; `false` if its keys changed meanwhile.
    async fn move_one(
        &self,
        tenant: &TenantId,
        item: items::Item,
        old: &str,
        live: bool,
    ) -> Result<bool, StoreError> {
        let (Some(pk), Some(sk), Some(user)) = (
            items::string_attr(&item, "pk"),
            items::string_attr(&item, "sk"),
            items::string_attr(&item, "user_id").and_then(|u| crate::domain::UserId::parse(u).ok()),
        ) else {
            return Err(StoreError::Corrupt("a listed user without its keys".into()));
        };
        let shard = keys::listing_shard(&user);
        let mut update = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(items::key(pk.to_owned(), sk)))
            .condition_expression("#created = :old")
            .expression_attribute_names("#created", BY_CREATED.pk)
            .expression_attribute_values(":old", AttributeValue::S(old.to_owned()));
        update = if live {
            update
                .update_expression("SET #created = :shard, #name = :shard")
                .expression_attribute_names("#name", BY_NAME.pk)
                .expression_attribute_values(
                    ":shard",
                    AttributeValue::S(keys::live_users_pk(tenant, shard)),
                )
        } else {
            update
                .update_expression("SET #created = :shard")
                .expression_attribute_values(
                    ":shard",
                    AttributeValue::S(keys::deleted_users_pk(tenant, shard)),
                )
        };
        super::condition_held(update.send().await)
    }
}
