//! What the api keeps of an orchestrator listing between requests (in
//! [`crate::state::Shared::orchestrator_listings`], a [`ReportCache`](crate::report_cache)).
//!
//! A listing filtered by status has to look at every candidate row to know its derived status
//! (it depends on `last_seen` and the time), so counting a 1,000-orchestrator organization, or
//! walking it to page 12, reads hundreds of scattered rows. The total is kept like a report,
//! and with it, when the listing is small enough, the ids in listing order: a page is then
//! its slice of ids read by primary key, with the filters applied again, so a row that
//! stopped matching since is left out (that page is short until the kept order is renewed).
//! The rows' versions and statuses come from the fleet view ([`crate::fleet_view`]) when it
//! can answer, else from the database, and only records not kept at those versions
//! ([`crate::row_cache`]) are read in full. Larger listings keep only the total and walk to
//! their page.

use bytes::Bytes;
use moolai_protocol::Status;
use moolai_store::{
    OrchestratorQuery, OrchestratorRecord, Store, StoreResult, page_bounds, page_offset,
};

use crate::error::ApiError;
use crate::fleet_view::{FleetView, Lookup};
use crate::responses::SerializedData;
use crate::row_cache::{self, RowCache};

/// Listings kept at once; past it the cache starts over. With [`KEPT_ORDER_BYTES`], at most
/// 24 MiB of ids.
pub const KEPT_LISTINGS: usize = 256;
/// A listing's order is kept when it has at most this many ids…
pub const KEPT_ORDER_IDS: usize = 2_000;
/// …taking at most this much memory (2,000 ids of up to ~24 bytes; longer ids, fewer).
const KEPT_ORDER_BYTES: usize = 96 * 1024;

/// What the orchestrators in a listing depend on: its filters and the caller's scope, not
/// the page.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrchestratorListingKey {
    pub status: Option<Status>,
    pub organization_id: Option<String>,
    pub search: Option<String>,
    pub scope: Option<Vec<String>>,
}

impl OrchestratorListingKey {
    #[must_use]
    pub fn of(q: &OrchestratorQuery) -> Self {
        Self {
            status: q.status,
            organization_id: q.organization_id.clone(),
            search: q.search.clone(),
            scope: q.scope.clone(),
        }
    }
}

/// A listing as kept: how many match and, when few enough, which in what order.
#[derive(Debug)]
pub struct KeptListing {
    pub total: i64,
    pub order: Option<Vec<String>>,
}

impl KeptListing {
    /// Reads what to keep of `q`'s listing (its page is ignored).
    ///
    /// # Errors
    /// The store's.
    pub async fn read(store: &dyn Store, q: &OrchestratorQuery) -> StoreResult<Self> {
        let Some(mut order) = store.orchestrator_order(q, KEPT_ORDER_IDS).await? else {
            return Ok(Self {
                total: store.count_orchestrators(q).await?,
                order: None,
            });
        };
        order.shrink_to_fit();
        let bytes: usize = order
            .iter()
            .map(|id| id.capacity() + size_of::<String>())
            .sum();
        Ok(Self {
            total: i64::try_from(order.len()).unwrap_or(i64::MAX),
            order: (bytes <= KEPT_ORDER_BYTES).then_some(order),
        })
    }

    /// `q`'s page as the response body (`{"success":true,"data":<Page>}`): its items by id
    /// from the kept order (those kept in `rows` at their current version taken from there,
    /// the versions from `view` when it can answer),
    /// or walked to (none without a query when the page starts past the kept total), and the
    /// kept total — which can be behind by as long as it is kept, but is never below what the
    /// page shows.
    ///
    /// # Errors
    /// The store's, and serializing a record (a bug).
    pub async fn page(
        &self,
        store: &dyn Store,
        rows: &RowCache,
        view: &FleetView,
        q: &OrchestratorQuery,
    ) -> Result<SerializedData, ApiError> {
        let (page, page_size) = page_bounds(q.page, q.page_size);
        let offset = page_offset(page, page_size);
        let items = self.items(store, rows, view, q, offset, page_size).await?;
        let total = if items.is_empty() {
            self.total
        } else {
            let shown = i64::try_from(items.len()).unwrap_or(i64::MAX);
            self.total.max(offset.saturating_add(shown))
        };
        Ok(page_body(&items, total, page, page_size))
    }

    async fn items(
        &self,
        store: &dyn Store,
        rows: &RowCache,
        view: &FleetView,
        q: &OrchestratorQuery,
        offset: i64,
        page_size: u32,
    ) -> Result<Vec<Bytes>, ApiError> {
        match &self.order {
            Some(order) => {
                let from = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(order.len());
                let to = from
                    .saturating_add(usize::try_from(page_size).unwrap_or(usize::MAX))
                    .min(order.len());
                if from == to {
                    Ok(Vec::new())
                } else {
                    by_id(store, rows, view, q, &order[from..to]).await
                }
            }
            None if offset >= self.total => Ok(Vec::new()),
            None => to_json(&store.orchestrator_page_items(q).await?),
        }
    }
}

/// The orchestrators of `ids` that still match `q`, in order: those kept in `rows` at the
/// version and status `view` or else the store gives now from there, the others read (and
/// kept when their version is known).
async fn by_id(
    store: &dyn Store,
    rows: &RowCache,
    view: &FleetView,
    q: &OrchestratorQuery,
    ids: &[String],
) -> Result<Vec<Bytes>, ApiError> {
    if !rows.enabled() {
        return to_json(&store.orchestrators_in_order(q, ids).await?);
    }
    // How long a kept record is trusted: longer when the view checked lately that the
    // database did not go back (see `fleet_view`).
    let (lookups, max_age) = if let Some(lookups) = view.lookup(q, ids) {
        metrics::counter!("api_listing_versions_total", "source" => "view").increment(1);
        (lookups, row_cache::MAX_AGE_CHECKED)
    } else {
        let asked = std::time::Instant::now();
        let Some(versions) = store.orchestrator_versions_in_order(q, ids).await? else {
            return to_json(&store.orchestrators_in_order(q, ids).await?);
        };
        view.database_page(asked.elapsed());
        metrics::counter!("api_listing_versions_total", "source" => "database").increment(1);
        let lookups = versions.into_iter().map(Lookup::Current).collect();
        (lookups, row_cache::MAX_AGE)
    };
    let mut items: Vec<Option<Bytes>> = lookups
        .iter()
        .map(|l| match l {
            Lookup::Current(v) => rows.get(v, max_age),
            Lookup::Excluded | Lookup::Unknown(_) => None,
        })
        .collect();
    // What to read in full: the id, and the version to keep it under when known.
    let missing: Vec<(usize, &str, Option<i64>)> = lookups
        .iter()
        .zip(&items)
        .enumerate()
        .filter_map(|(i, (l, kept))| match l {
            Lookup::Current(v) if kept.is_none() => {
                Some((i, v.orchestrator_id.as_str(), Some(v.version)))
            }
            Lookup::Unknown(id) => Some((i, id.as_str(), None)),
            Lookup::Current(_) | Lookup::Excluded => None,
        })
        .collect();
    let listed = lookups
        .iter()
        .filter(|l| !matches!(l, Lookup::Excluded))
        .count();
    metrics::counter!("api_orchestrator_records_total", "source" => "kept")
        .increment((listed - missing.len()) as u64);
    metrics::counter!("api_orchestrator_records_total", "source" => "read")
        .increment(missing.len() as u64);
    if !missing.is_empty() {
        let ids: Vec<String> = missing.iter().map(|(_, id, _)| (*id).to_owned()).collect();
        let mut read: std::collections::HashMap<String, OrchestratorRecord> = store
            .orchestrators_in_order(q, &ids)
            .await?
            .into_iter()
            .map(|r| (r.orchestrator_id.clone(), r))
            .collect();
        for (i, id, version) in missing {
            // Not read: deleted, or no longer matching since its version was read.
            if let Some(record) = read.remove(id) {
                let json = record_json(&record)?;
                if let Some(version) = version {
                    rows.put(id, version, record.status, json.clone());
                }
                items[i] = Some(json);
            }
        }
    }
    Ok(items.into_iter().flatten().collect())
}

fn record_json(record: &OrchestratorRecord) -> Result<Bytes, ApiError> {
    serde_json::to_vec(record)
        .map(Bytes::from)
        .map_err(|e| ApiError::Internal(format!("serializing an orchestrator: {e}")))
}

fn to_json(records: &[OrchestratorRecord]) -> Result<Vec<Bytes>, ApiError> {
    records.iter().map(record_json).collect()
}

/// `{"success":true,"data":{"items":[…],"total":…,"page":…,"page_size":…}}` around records
/// already serialized: the bytes `DataResponse<Page<OrchestratorRecord>>` serializes to.
fn page_body(items: &[Bytes], total: i64, page: u32, page_size: u32) -> SerializedData {
    let mut body = Vec::with_capacity(items.iter().map(|i| i.len() + 1).sum::<usize>() + 96);
    body.extend_from_slice(br#"{"success":true,"data":{"items":["#);
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(item);
    }
    body.extend_from_slice(
        format!(r#"],"total":{total},"page":{page},"page_size":{page_size}}}}}"#).as_bytes(),
    );
    SerializedData::from_bytes(body.into())
}

#[cfg(test)]
mod tests {
    use axum::response::IntoResponse;
    use moolai_store::Page;
    use serde_json::json;

    use super::*;
    use crate::responses::DataResponse;

    async fn body_of(data: SerializedData) -> Vec<u8> {
        axum::body::to_bytes(data.into_response().into_body(), usize::MAX)
            .await
            .expect("body")
            .to_vec()
    }

    /// The page assembled around serialized items is byte for byte what serializing the
    /// whole page gives.
    #[tokio::test]
    async fn a_page_body_is_the_serialized_page() {
        let items = [
            json!({"orchestrator_id": "o1", "metadata": {"a": [1, 2]}, "name": "x\"y"}),
            json!({"orchestrator_id": "o2", "metadata": {}}),
        ];
        for (shown, total, page, page_size) in [(2, 7, 3, 2), (0, 0, 1, 50), (1, 1, 1, 100)] {
            let shown: Vec<serde_json::Value> = items[..shown].to_vec();
            let serialized: Vec<Bytes> = shown
                .iter()
                .map(|v| Bytes::from(serde_json::to_vec(v).expect("item")))
                .collect();
            let expected = serde_json::to_vec(&DataResponse {
                success: true,
                data: Page {
                    items: shown,
                    total,
                    page,
                    page_size,
                },
            })
            .expect("page");
            assert_eq!(
                String::from_utf8(body_of(page_body(&serialized, total, page, page_size)).await)
                    .expect("utf-8"),
                String::from_utf8(expected).expect("utf-8")
            );
        }
    }
}
