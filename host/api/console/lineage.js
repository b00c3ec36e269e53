// The lineage view: the graph around a blob as the host lays it out
// (`GET /v1/blobs/{id}/graph`: every node's box, every edge's line), drawn
// as SVG. Each node is a link to its blob's page. Text goes in as text
// nodes only; styles through the CSS object model (the console's
// Content-Security-Policy allows no inline style).

import { api, navigate } from "./app.js";

const SVG = "http://www.w3.org/2000/svg";
/** Below this scale a drawing scrolls in its box instead of shrinking further. */
const MIN_SCALE = 0.5;
/** Characters that fit on a line of a node's box. */
const LINE_CHARS = 24;

const STYLES = `
.lineage-scroll { max-width: 100%; max-height: 75vh; overflow: auto; }
#lineage { display: block; height: auto; }
#lineage .node { cursor: pointer; }
#lineage .node rect { fill: var(--surface, #fff); stroke: var(--border, #ccc); stroke-width: 1.5; }
#lineage .node.current rect { stroke: var(--accent, #2457c5); stroke-width: 3; }
#lineage .node:hover rect, #lineage .node:focus rect { stroke: var(--accent, #2457c5); }
#lineage .node:focus { outline: none; }
#lineage .node:focus-visible rect { stroke-width: 4; }
#lineage .node .schema { fill: var(--text, #1b1f24); font: 600 13px system-ui, sans-serif; }
#lineage .node .producer { fill: var(--muted, #5b6470); font: 12px system-ui, sans-serif; }
#lineage .edge { fill: none; stroke: var(--muted, #5b6470); stroke-width: 1.5; }
#lineage .arrow { fill: var(--muted, #5b6470); }
`;

const adopted = new Set();
/**
 * Adds `css` to the document once, as a constructed style sheet: the
 * console's Content-Security-Policy (`style-src 'self'`) refuses inline
 * `<style>` elements, not sheets built through the CSS object model.
 */
export function adoptStyles(css) {
  if (adopted.has(css)) return;
  adopted.add(css);
  const sheet = new CSSStyleSheet();
  sheet.replaceSync(css);
  document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  return node;
}

function clip(text) {
  return text.length > LINE_CHARS ? `${text.slice(0, LINE_CHARS - 1)}…` : text;
}

/** The node's second line: the plugin version that derived it, or "created". */
function madeBy(node) {
  return node.producer ? `${node.producer.plugin}@${node.producer.version}` : "created";
}

function drawNode(node, current) {
  const target = `#/blobs/${node.id}`;
  const g = svg("g", {
    class: node.id === current ? "node current" : "node",
    "data-blob-id": node.id,
    tabindex: 0,
    role: "link",
    "aria-label": `${node.schema}, ${madeBy(node)}, blob ${node.id}`,
    transform: `translate(${node.x} ${node.y})`,
  });
  const title = svg("title");
  title.textContent = `${node.schema} · ${madeBy(node)}\n${node.id}`;
  const box = svg("rect", { width: node.width, height: node.height, rx: 6 });
  const schema = svg("text", { class: "schema", x: 12, y: node.height / 2 - 4 });
  schema.textContent = clip(node.schema);
  const producer = svg("text", { class: "producer", x: 12, y: node.height / 2 + 14 });
  producer.textContent = clip(madeBy(node));
  g.append(title, box, schema, producer);
  g.addEventListener("click", () => navigate(target));
  g.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      navigate(target);
    }
  });
  return g;
}

function drawEdge(edge) {
  const [first, ...rest] = edge.points;
  const d = [`M ${first[0]} ${first[1]}`, ...rest.map(([x, y]) => `L ${x} ${y}`)].join(" ");
  const path = svg("path", { class: "edge", d, "marker-end": "url(#lineage-arrow)", "data-from": edge.from, "data-to": edge.to });
  return path;
}

/** Draws a laid-out graph (the `/graph` JSON) as `svg#lineage`. */
export function drawGraph(graph, current) {
  const { width, height } = graph;
  const root = svg("svg", {
    id: "lineage",
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: "group",
    "aria-label": `Lineage of blob ${current}: ${graph.nodes.length} blobs`,
  });
  // As wide as the drawing; narrower to fit its box, down to MIN_SCALE;
  // past that it keeps its size and its box scrolls.
  root.style.width = `min(${width}px, max(100%, ${width * MIN_SCALE}px))`;
  const arrow = svg("marker", {
    id: "lineage-arrow",
    viewBox: "0 0 10 10",
    refX: 10,
    refY: 5,
    markerWidth: 8,
    markerHeight: 8,
    orient: "auto-start-reverse",
  });
  arrow.append(svg("path", { class: "arrow", d: "M 0 0 L 10 5 L 0 10 z" }));
  const defs = svg("defs");
  defs.append(arrow);
  const edges = svg("g", { class: "edges" });
  for (const edge of graph.edges) {
    if (edge.points.length >= 2) edges.append(drawEdge(edge));
  }
  const nodes = svg("g", { class: "nodes" });
  for (const node of graph.nodes) nodes.append(drawNode(node, current));
  root.append(defs, edges, nodes);
  return root;
}

/**
 * Fetches the lineage graph around `blobId` and draws it into `container`
 * (replacing what was there): `svg#lineage` in a box that scrolls when the
 * drawing is large, with a note when the host cut the graph.
 */
export async function renderLineage(container, blobId) {
  adoptStyles(STYLES);
  const graph = await api(`/v1/blobs/${encodeURIComponent(blobId)}/graph`);
  const scroll = document.createElement("div");
  scroll.className = "lineage-scroll";
  scroll.append(drawGraph(graph, blobId));
  const parts = [scroll];
  if (graph.truncated) {
    const note = document.createElement("p");
    note.className = "muted";
    note.textContent = `Showing the ${graph.nodes.length} blobs nearest to this one; the lineage goes on.`;
    parts.push(note);
  }
  container.replaceChildren(...parts);
  // A drawing wider than its box opens on the page's own blob.
  const current = graph.nodes.find((n) => n.id === blobId);
  if (current && scroll.scrollWidth > scroll.clientWidth) {
    const scale = scroll.scrollWidth / graph.width;
    scroll.scrollLeft = (current.x + current.width / 2) * scale - scroll.clientWidth / 2;
  }
}
