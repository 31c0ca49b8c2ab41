//! Listing a tenant's users through the tenant indexes: by name or by creation, either way,
//! optionally filtered by status or by a name prefix, a page at a time.
//!
//! One page is one `Query` unless a filter leaves it short, in which case the store reads on
//! until the page is full or the tenant is exhausted. The position is a [`PageKey`], which the
//! API seals into an opaque cursor with [`super::CursorSigner`].

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use tracing::instrument;

use super::schema::{self, BY_CREATED, BY_NAME, Index};
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

/// A position in a listing: the keys of the last user returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageKey {
    pk: String,
    sk: String,
    ipk: String,
    isk: String,
}

/// One page of users.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The users, in the order asked for.
    pub users: Vec<User>,
    /// Where the next page starts, if there may be one.
    pub next: Option<PageKey>,
}

impl PageKey {
    fn of(item: &items::Item, index: Index) -> Option<PageKey> {
        Some(PageKey {
            pk: items::string_attr(item, schema::PK)?.to_owned(),
            sk: items::string_attr(item, schema::SK)?.to_owned(),
            ipk: items::string_attr(item, index.pk)?.to_owned(),
            isk: items::string_attr(item, index.sk)?.to_owned(),
        })
    }

    fn into_item(self, index: Index) -> items::Item {
        items::Item::from([
            (schema::PK.into(), AttributeValue::S(self.pk)),
            (schema::SK.into(), AttributeValue::S(self.sk)),
            (index.pk.into(), AttributeValue::S(self.ipk)),
            (index.sk.into(), AttributeValue::S(self.isk)),
        ])
    }
}

impl Store {
    /// Lists a page of a tenant's live users.
    #[instrument(skip_all, fields(tenant_id = %tenant))]
    pub async fn list_users(&self, tenant: &TenantId, q: &ListQuery) -> Result<Page, StoreError> {
        let page_size = q.page_size.clamp(ListQuery::MIN_PAGE, ListQuery::MAX_PAGE);
        let index = match q.sort {
            SortBy::Name => BY_NAME,
            SortBy::Created => BY_CREATED,
        };
        let prefix = q
            .name_prefix
            .as_deref()
            .map(search_key)
            .filter(|p| !p.is_empty());
        let mut key_condition = "#ipk = :t".to_owned();
        let mut filters = Vec::new();
        if prefix.is_some() {
            match q.sort {
                SortBy::Name => key_condition.push_str(" AND begins_with(#isk, :p)"),
                SortBy::Created => filters.push("begins_with(name_key, :p)"),
            }
        }
        if q.status.is_some() {
            filters.push("#state = :s");
        }

        let mut users = Vec::with_capacity(page_size);
        let mut start = q.after.clone().map(|k| k.into_item(index));
        let mut next = None;
        // With a filter, each further query reads four times as many items as the last (up to
        // MAX_FILTER_READ), so a sparse filter fills its page in a few round trips, not one per
        // page size of items scanned.
        let mut read_limit = page_size;
        loop {
            let mut req = self
                .client
                .query()
                .table_name(self.table.as_ref())
                .index_name(index.name)
                .key_condition_expression(&key_condition)
                .expression_attribute_names("#ipk", index.pk)
                .expression_attribute_values(":t", AttributeValue::S(keys::tenant_pk(tenant)))
                .scan_index_forward(q.order == SortOrder::Asc)
                .limit(i32::try_from(read_limit).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take());
            if let Some(p) = &prefix {
                req = req.expression_attribute_values(":p", AttributeValue::S(p.clone()));
                if q.sort == SortBy::Name {
                    req = req.expression_attribute_names("#isk", index.sk);
                }
            }
            if let Some(s) = q.status {
                req = req
                    .expression_attribute_names("#state", "state")
                    .expression_attribute_values(":s", AttributeValue::S(s.as_str().into()));
            }
            if !filters.is_empty() {
                req = req.filter_expression(filters.join(" AND "));
            }
            let out = req.send().await.map_err(StoreError::aws)?;
            let more = out.last_evaluated_key.is_some();
            let mut left_over = false;
            for item in out.items.unwrap_or_default() {
                if users.len() == page_size {
                    left_over = true;
                    break;
                }
                let key = PageKey::of(&item, index);
                if let Some(user) = items::user_from_item(item)? {
                    users.push(user);
                    next = key;
                }
            }
            if users.len() == page_size {
                if !more && !left_over {
                    next = None;
                }
                break;
            }
            if !more {
                next = None;
                break;
            }
            start = out.last_evaluated_key;
            read_limit = (read_limit * 4).min(MAX_FILTER_READ);
        }
        Ok(Page { users, next })
    }
}

impl Store {
    /// Every live user of the tenant, oldest first (for exports).
    #[instrument(skip_all, fields(tenant_id = %tenant))]
    pub async fn all_users(&self, tenant: &TenantId) -> Result<Vec<User>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(self.table.as_ref())
            .index_name(BY_CREATED.name)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", BY_CREATED.pk)
            .expression_attribute_values(":pk", AttributeValue::S(keys::tenant_pk(tenant)));
        let mut users = Vec::new();
        self.query_all(query, |item| {
            if let Some(user) = items::user_from_item(item)? {
                users.push(user);
            }
            Ok(())
        })
        .await?;
        Ok(users)
    }
}
