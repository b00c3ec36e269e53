//! `GET /v1/blobs/{id}/graph`: the lineage walk of `/v1/blobs/{id}/lineage`
//! (same parameters, bounds and tenant scoping), laid out for drawing
//! ([`layout`]) on the blocking pool.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use reyna_engine::Lineage;
use tokio::sync::Semaphore;

use super::blobs::walk_lineage;
use crate::AppState;
use crate::auth::Reader;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Path, QueryParams};
use crate::wire::{Graph, GraphEdge, GraphNode, GraphProducer, LineageParams};

mod layout;

/// Most nodes drawn: a drawing past a few hundred boxes is not read, and
/// the layout's cost grows faster than the node count. The walk's nodes past
/// it (the farthest from the blob) are left out, and `truncated` is set.
const MAX_GRAPH_NODES: usize = 1000;
/// Layouts computed at once, each on a blocking thread.
const MAX_LAYOUTS: usize = 2;
/// Longest a layout may take, its wait for a slot included, before the
/// request is answered 503.
const LAYOUT_DEADLINE: Duration = Duration::from_secs(10);

/// Held by a layout until it finishes, even past its deadline (a blocking
/// thread cannot be stopped), so at most [`MAX_LAYOUTS`] ever run.
static LAYOUTS: LazyLock<Arc<Semaphore>> = LazyLock::new(|| Arc::new(Semaphore::new(MAX_LAYOUTS)));

/// Each tenant's gate: one layout of a tenant at a time, so a tenant's
/// burst queues behind itself and never holds every slot of [`LAYOUTS`].
static TURNS: LazyLock<Mutex<HashMap<String, Arc<Semaphore>>>> = LazyLock::new(Mutex::default);

/// A tenant's place at its gate. Dropped (after its permit), it removes the
/// gate when no one else holds or waits at it: gates are cloned only under
/// the map's lock, so the count it reads there cannot grow meanwhile.
struct TenantTurn {
    tenant: String,
    gate: Arc<Semaphore>,
}

impl TenantTurn {
    fn new(tenant: &str) -> Self {
        let mut turns = TURNS.lock().unwrap_or_else(PoisonError::into_inner);
        let gate = Arc::clone(
            turns
                .entry(tenant.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(1))),
        );
        Self {
            tenant: tenant.to_owned(),
            gate,
        }
    }
}

impl Drop for TenantTurn {
    fn drop(&mut self) {
        let mut turns = TURNS.lock().unwrap_or_else(PoisonError::into_inner);
        // The map's and this one: nobody else holds or waits.
        if Arc::strong_count(&self.gate) == 2 {
            turns.remove(&self.tenant);
        }
    }
}

/// The lineage graph around a blob laid out for drawing: every node's box
/// (top-left corner and size) and every edge's line, ancestors above
/// descendants, parts side by side. At most 1,000 nodes are drawn (the
/// nearest to the blob; then `truncated` is set).
#[utoipa::path(get, path = "/v1/blobs/{id}/graph", tag = "blobs", security(("bearer" = [])),
    params(("id" = String, Path, description = "Blob id"), LineageParams),
    responses(
        (status = 200, description = "Nodes with their boxes, edges with their lines", body = Graph),
        (status = "4XX", description = "Not found, bad parameter, or refused", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn graph(
    Reader(caller): Reader,
    State(state): State<AppState>,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<LineageParams>,
) -> ApiResult<Json<Graph>> {
    let lineage = walk_lineage(&state, &caller.tenant, &id, q).await?;
    // The deadline covers the wait for a layout slot too: a burst of
    // requests (one tenant's, say) makes the others wait at most this long,
    // then answers 503 rather than queueing without end.
    let layout = async {
        let stopping = |_| ApiError::Unavailable("the host is stopping".into());
        let turn = TenantTurn::new(caller.tenant.as_str());
        let mine = Arc::clone(&turn.gate)
            .acquire_owned()
            .await
            .map_err(stopping)?;
        let permit = LAYOUTS.clone().acquire_owned().await.map_err(stopping)?;
        tokio::task::spawn_blocking(move || {
            let graph = draw(lineage);
            // The permits first, then the turn (which may remove the gate).
            drop((permit, mine));
            drop(turn);
            graph
        })
        .await
        .map_err(|e| ApiError::Internal(format!("the graph layout failed: {e}")))
    };
    match tokio::time::timeout(LAYOUT_DEADLINE, layout).await {
        Ok(graph) => Ok(Json(graph?)),
        Err(_) => Err(ApiError::Unavailable(format!(
            "graph layouts are busy: this one did not finish within {} s; retry later",
            LAYOUT_DEADLINE.as_secs()
        ))),
    }
}

/// Cuts the walk to [`MAX_GRAPH_NODES`] (it lists nodes nearest first) and
/// lays it out.
fn draw(lineage: Lineage) -> Graph {
    let mut truncated = lineage.truncated;
    let mut nodes = lineage.nodes;
    if nodes.len() > MAX_GRAPH_NODES {
        nodes.truncate(MAX_GRAPH_NODES);
        truncated = true;
    }
    let index: HashMap<_, usize> = nodes.iter().enumerate().map(|(i, n)| (n.id, i)).collect();
    let edges: Vec<(usize, usize)> = lineage
        .edges
        .iter()
        .filter_map(|e| Some((*index.get(&e.parent)?, *index.get(&e.child)?)))
        .collect();
    let drawing = layout::lay_out(nodes.len(), &edges);
    Graph {
        root: lineage.root.to_string(),
        width: drawing.width,
        height: drawing.height,
        truncated,
        edges: edges
            .iter()
            .zip(drawing.edges)
            .map(|(&(p, c), points)| GraphEdge {
                from: nodes[p].id.to_string(),
                to: nodes[c].id.to_string(),
                points,
            })
            .collect(),
        nodes: nodes
            .into_iter()
            .zip(drawing.nodes)
            .map(|(n, [x, y])| GraphNode {
                id: n.id.to_string(),
                schema: n.schema,
                producer: n.producer.map(|p| GraphProducer {
                    plugin: p.plugin,
                    version: p.version,
                }),
                x,
                y,
                width: layout::NODE_WIDTH,
                height: layout::NODE_HEIGHT,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use reyna_engine::{BlobId, BlobMeta, Digest, Edge, Lineage};

    use super::*;

    #[test]
    fn a_tenant_waits_behind_its_own_layout_and_leaves_the_others_a_slot() {
        let first = TenantTurn::new("graph-test-a");
        let held = Arc::clone(&first.gate).try_acquire_owned().unwrap();
        let second = TenantTurn::new("graph-test-a");
        assert!(
            Arc::clone(&second.gate).try_acquire_owned().is_err(),
            "a tenant's second layout waits for its first"
        );
        let other = TenantTurn::new("graph-test-b");
        let other_permit = Arc::clone(&other.gate).try_acquire_owned().unwrap();
        drop((other_permit, other));
        drop((held, first));
        let present = |t: &str| TURNS.lock().unwrap().contains_key(t);
        assert!(!present("graph-test-b"), "an unused gate is removed");
        assert!(present("graph-test-a"), "kept while a layout waits at it");
        drop(second);
        assert!(!present("graph-test-a"));
    }

    fn blob(key: u128) -> BlobMeta {
        BlobMeta {
            id: BlobId::from_key(key),
            tenant: "acme".to_owned(),
            schema: "note-v1".to_owned(),
            digest: Digest::of(b"{}"),
            size: 2,
            created_at: 0,
            parents: Vec::new(),
            hop: 0,
            producer: None,
        }
    }

    #[test]
    fn a_walk_past_the_node_cap_is_cut_and_marked_truncated() {
        // A chain of MAX_GRAPH_NODES + 5 blobs, nearest first.
        let count = MAX_GRAPH_NODES as u128 + 5;
        let lineage = Lineage {
            root: BlobId::from_key(1),
            nodes: (1..=count).map(blob).collect(),
            edges: (1..count)
                .map(|k| Edge {
                    parent: BlobId::from_key(k),
                    child: BlobId::from_key(k + 1),
                })
                .collect(),
            truncated: false,
        };
        let graph = draw(lineage);
        assert!(graph.truncated);
        assert_eq!(graph.nodes.len(), MAX_GRAPH_NODES);
        assert_eq!(graph.nodes[0].id, BlobId::from_key(1).to_string());
        // Only edges between drawn nodes.
        assert_eq!(graph.edges.len(), MAX_GRAPH_NODES - 1);
        let last = BlobId::from_key(MAX_GRAPH_NODES as u128).to_string();
        assert!(graph.edges.iter().all(|e| e.from != last));
    }

    #[test]
    fn a_walk_within_the_cap_keeps_its_truncated_flag() {
        let lineage = Lineage {
            root: BlobId::from_key(1),
            nodes: vec![blob(1)],
            edges: Vec::new(),
            truncated: true,
        };
        let graph = draw(lineage);
        assert!(graph.truncated, "the walk's own cut");
        assert_eq!(graph.nodes.len(), 1);
        assert_eq!((graph.nodes[0].x, graph.nodes[0].y), (16.0, 16.0));
    }
}
