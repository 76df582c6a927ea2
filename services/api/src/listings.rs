//! What the api keeps of an orchestrator listing between requests (in
//! [`crate::state::Shared::orchestrator_listings`], a [`ReportCache`](crate::report_cache)).
//!
//! A listing filtered by status has to look at every candidate row to know its derived status
//! (it depends on `last_seen` and the time), so counting a 1,000-orchestrator organization, or
//! walking it to page 12, reads hundreds of scattered rows. The total is kept like a report,
//! and with it, when the listing is small enough, the ids in listing order: a page is then
//! its slice of ids read by primary key, with the filters applied again, so a row that
//! stopped matching since is left out (that page is short until the kept order is renewed)
//! and every row shown is read now. Larger listings keep only the total and walk to their page.

use moolai_protocol::Status;
use moolai_store::{
    OrchestratorQuery, OrchestratorRecord, Page, Store, StoreResult, page_bounds, page_offset,
};

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

    /// `q`'s page: its items by id from the kept order, or walked to (none without a query
    /// when the page starts past the kept total), and the kept total — which can be behind
    /// by as long as it is kept, but is never below what the page shows.
    ///
    /// # Errors
    /// The store's.
    pub async fn page(
        &self,
        store: &dyn Store,
        q: &OrchestratorQuery,
    ) -> StoreResult<Page<OrchestratorRecord>> {
        let (page, page_size) = page_bounds(q.page, q.page_size);
        let offset = page_offset(page, page_size);
        let items = self.items(store, q, offset, page_size).await?;
        let total = if items.is_empty() {
            self.total
        } else {
            let shown = i64::try_from(items.len()).unwrap_or(i64::MAX);
            self.total.max(offset.saturating_add(shown))
        };
        Ok(Page {
            items,
            total,
            page,
            page_size,
        })
    }

    async fn items(
        &self,
        store: &dyn Store,
        q: &OrchestratorQuery,
        offset: i64,
        page_size: u32,
    ) -> StoreResult<Vec<OrchestratorRecord>> {
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
                    store.orchestrators_in_order(q, &order[from..to]).await
                }
            }
            None if offset >= self.total => Ok(Vec::new()),
            None => store.orchestrator_page_items(q).await,
        }
    }
}
