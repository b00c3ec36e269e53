//! `GET /v1/blobs/{id}/graph`: the lineage graph laid out for drawing.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The lineage graph around a blob with a position for every node and a
/// line for every edge: top to bottom, ancestors above descendants.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Graph {
    /// The blob the walk started from.
    pub root: String,
    /// The whole drawing's width.
    pub width: f64,
    /// The whole drawing's height.
    pub height: f64,
    /// True when the walk or the drawing stopped at its node cap.
    pub truncated: bool,
    /// Every blob drawn, the root first.
    pub nodes: Vec<GraphNode>,
    /// Every edge between blobs drawn.
    pub edges: Vec<GraphEdge>,
}

/// One blob's box.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GraphNode {
    /// Blob id.
    pub id: String,
    /// Its schema.
    pub schema: String,
    /// The plugin that derived it; `null` for a blob created by a client.
    pub producer: Option<GraphProducer>,
    /// Left edge of the box.
    pub x: f64,
    /// Top edge of the box.
    pub y: f64,
    /// The box's width.
    pub width: f64,
    /// The box's height.
    pub height: f64,
}

/// Which plugin version derived a blob.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GraphProducer {
    /// Plugin name.
    pub plugin: String,
    /// Plugin version.
    pub version: String,
}

/// A parent → child line.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GraphEdge {
    /// The parent (input) blob.
    pub from: String,
    /// The child (derived) blob.
    pub to: String,
    /// The line's points, `[x, y]`: from the parent's bottom centre to the
    /// child's top centre.
    pub points: Vec<[f64; 2]>,
}
