//! The lineage graph's drawing: Sugiyama's layered layout (the
//! `rust-sugiyama` crate) of fixed-size node boxes, top to bottom (a parent
//! above its children), each connected part laid out on its own and the
//! parts placed side by side. Coordinates start at (0, 0) plus a margin.

use rust_sugiyama::configure::Config;

/// Width of a node's box.
pub(crate) const NODE_WIDTH: f64 = 200.0;
/// Height of a node's box.
pub(crate) const NODE_HEIGHT: f64 = 56.0;
/// Free space between two boxes of one layer.
const GAP_X: f64 = 24.0;
/// Free space between two layers (room for the edges' arrows).
const GAP_Y: f64 = 48.0;
/// Free space around the drawing and between its connected parts.
const MARGIN: f64 = 16.0;

/// A point of the drawing.
pub(crate) type Point = [f64; 2];

/// Where everything goes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Drawing {
    /// Top-left corner of each node's box, in the order given.
    pub nodes: Vec<Point>,
    /// Each edge's line, from the parent's bottom centre to the child's top
    /// centre, in the order given.
    pub edges: Vec<Vec<Point>>,
    /// The whole drawing's width.
    pub width: f64,
    /// The whole drawing's height.
    pub height: f64,
}

/// Lays out `count` nodes joined by `edges` (parent index, child index):
/// ancestors above descendants, no two boxes overlapping. Indexes out of
/// range and self-loops are left out of the layout (their line is still
/// drawn between the two boxes).
pub(crate) fn lay_out(count: usize, edges: &[(usize, usize)]) -> Drawing {
    let mut centres = vec![[0.0, 0.0]; count];
    if count > 0 {
        let vertices: Vec<(u32, (f64, f64))> = (0..count)
            .map(|i| (index(i), (NODE_WIDTH + GAP_X, NODE_HEIGHT + GAP_Y)))
            .collect();
        let links: Vec<(u32, u32)> = edges
            .iter()
            .filter(|&&(p, c)| p != c && p < count && c < count)
            .map(|&(p, c)| (index(p), index(c)))
            .collect();
        let config = Config {
            // The gaps are in the vertex sizes above.
            vertex_spacing: 0.0,
            ..Config::default()
        };
        let parts = rust_sugiyama::from_vertices_and_edges(&vertices, &links, &config);
        // Side by side, left to right, each part's top-left at the margin.
        let mut left = MARGIN;
        for (positions, _, _) in parts {
            let min_x = positions
                .iter()
                .map(|(_, (x, _))| *x)
                .fold(f64::INFINITY, f64::min);
            let max_x = positions
                .iter()
                .map(|(_, (x, _))| *x)
                .fold(f64::NEG_INFINITY, f64::max);
            let min_y = positions
                .iter()
                .map(|(_, (_, y))| *y)
                .fold(f64::INFINITY, f64::min);
            if positions.is_empty() {
                continue;
            }
            for (id, (x, y)) in positions {
                if let Some(centre) = centres.get_mut(id) {
                    *centre = [
                        left + NODE_WIDTH / 2.0 + (x - min_x),
                        MARGIN + NODE_HEIGHT / 2.0 + (y - min_y),
                    ];
                }
            }
            left += (max_x - min_x) + NODE_WIDTH + MARGIN;
        }
    }
    let nodes: Vec<Point> = centres
        .iter()
        .map(|[x, y]| [x - NODE_WIDTH / 2.0, y - NODE_HEIGHT / 2.0])
        .collect();
    let width = nodes
        .iter()
        .map(|[x, _]| x + NODE_WIDTH + MARGIN)
        .fold(0.0, f64::max);
    let height = nodes
        .iter()
        .map(|[_, y]| y + NODE_HEIGHT + MARGIN)
        .fold(0.0, f64::max);
    let edges = edges
        .iter()
        .map(|&(p, c)| match (centres.get(p), centres.get(c)) {
            (Some([px, py]), Some([cx, cy])) => {
                vec![[*px, py + NODE_HEIGHT / 2.0], [*cx, cy - NODE_HEIGHT / 2.0]]
            }
            _ => Vec::new(),
        })
        .collect();
    Drawing {
        nodes,
        edges,
        width,
        height,
    }
}

/// The graph is bounded far below `u32::MAX` nodes (the lineage walk's cap).
fn index(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlap(a: Point, b: Point) -> bool {
        a[0] < b[0] + NODE_WIDTH
            && b[0] < a[0] + NODE_WIDTH
            && a[1] < b[1] + NODE_HEIGHT
            && b[1] < a[1] + NODE_HEIGHT
    }

    fn assert_sound(count: usize, edges: &[(usize, usize)], drawing: &Drawing) {
        assert_eq!(drawing.nodes.len(), count);
        assert_eq!(drawing.edges.len(), edges.len());
        for (i, a) in drawing.nodes.iter().enumerate() {
            assert!(
                a[0] >= MARGIN && a[1] >= MARGIN,
                "node {i} at {a:?} is off the drawing"
            );
            assert!(a[0] + NODE_WIDTH <= drawing.width && a[1] + NODE_HEIGHT <= drawing.height);
            for (j, b) in drawing.nodes.iter().enumerate().skip(i + 1) {
                assert!(!overlap(*a, *b), "nodes {i} {a:?} and {j} {b:?} overlap");
            }
        }
        for (k, &(p, c)) in edges.iter().enumerate() {
            let (parent, child) = (drawing.nodes[p], drawing.nodes[c]);
            assert!(
                parent[1] + NODE_HEIGHT <= child[1],
                "edge {p}->{c}: the parent is not above"
            );
            let line = &drawing.edges[k];
            assert_eq!(
                line.first(),
                Some(&[parent[0] + NODE_WIDTH / 2.0, parent[1] + NODE_HEIGHT])
            );
            assert_eq!(line.last(), Some(&[child[0] + NODE_WIDTH / 2.0, child[1]]));
        }
    }

    #[test]
    fn one_node_sits_at_the_margin() {
        let drawing = lay_out(1, &[]);
        assert_eq!(drawing.nodes, vec![[MARGIN, MARGIN]]);
        assert_eq!(drawing.width, NODE_WIDTH + 2.0 * MARGIN);
        assert_eq!(drawing.height, NODE_HEIGHT + 2.0 * MARGIN);
        assert!(drawing.edges.is_empty());
    }

    #[test]
    fn a_chain_goes_down_and_a_fan_out_goes_across() {
        // 0 -> 1 -> 2, and 1 -> 3, 1 -> 4.
        let edges = [(0, 1), (1, 2), (1, 3), (1, 4)];
        let drawing = lay_out(5, &edges);
        assert_sound(5, &edges, &drawing);
        let y: Vec<f64> = drawing.nodes.iter().map(|p| p[1]).collect();
        assert!(y[0] < y[1] && y[1] < y[2]);
        assert_eq!(y[2], y[3]);
        assert_eq!(y[3], y[4]);
    }

    #[test]
    fn separate_parts_are_placed_side_by_side() {
        let edges = [(0, 1), (2, 3)];
        let drawing = lay_out(4, &edges);
        assert_sound(4, &edges, &drawing);
        let (a, b) = (&drawing.nodes[0], &drawing.nodes[2]);
        assert_eq!(a[1], b[1], "both parts start at the top");
        assert!(drawing.width >= 2.0 * NODE_WIDTH + 3.0 * MARGIN);
    }

    #[test]
    fn three_hundred_nodes_do_not_overlap_and_keep_every_edge() {
        // A book: 34 inputs, each expanded into a text and a chapter; stats
        // of each; the chapters compiled in threes, and the books into one.
        let mut edges = Vec::new();
        let mut next = 0;
        let mut new = || {
            next += 1;
            next - 1
        };
        let mut chapters = Vec::new();
        for _ in 0..34 {
            let (input, expanded, chapter) = (new(), new(), new());
            edges.extend([(input, expanded), (input, chapter)]);
            for source in [input, expanded, chapter] {
                let stats = new();
                edges.push((source, stats));
            }
            let extra = new();
            edges.push((expanded, extra));
            let extra2 = new();
            edges.push((chapter, extra2));
            let extra3 = new();
            edges.push((extra2, extra3));
            chapters.push(chapter);
        }
        let all = new();
        for group in chapters.chunks(3) {
            let book = new();
            for &c in group {
                edges.push((c, book));
            }
            edges.push((book, all));
        }
        let count = next;
        assert!(count >= 300, "{count} nodes");
        let drawing = lay_out(count, &edges);
        assert_sound(count, &edges, &drawing);
    }
}
