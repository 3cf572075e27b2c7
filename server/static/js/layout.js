// Where nodes go when a document does not place them in `ui`, or places them on top of one another: a layered
// left-to-right layout of the graph (dagre), graph inputs on the left and outputs on the right, each node as big
// as it really is.

import { Graph, layout } from "../node_modules/@dagrejs/dagre/dist/dagre.esm.js";

const ORIGIN = [80, 80];
const GAP = 12;

/** The links of `document` as [from, to] keys: node ids, `input:<name>` and `output:<name>`. */
export function documentEdges(document) {
  const edges = [];
  for (const [id, doc] of Object.entries(document.nodes ?? {})) {
    const text = JSON.stringify(doc?.inputs ?? {});
    for (const match of text.matchAll(/"from":"([A-Za-z_][A-Za-z0-9_-]*)\./g)) edges.push([match[1], id]);
    for (const match of text.matchAll(/"input":"([A-Za-z_][A-Za-z0-9_]*)"/g)) edges.push([`input:${match[1]}`, id]);
  }
  for (const [name, decl] of Object.entries(document.outputs ?? {})) {
    const from = /^([A-Za-z_][A-Za-z0-9_-]*)\./.exec(String(decl?.from ?? ""));
    if (from) edges.push([from[1], `output:${name}`]);
  }
  return edges;
}

/** Top-left positions for boxes {key, width, height} (height includes the title) linked by `edges`. */
export function layeredPositions(boxes, edges) {
  const graph = new Graph();
  graph.setGraph({ rankdir: "LR", nodesep: 40, ranksep: 90, marginx: ORIGIN[0], marginy: ORIGIN[1] });
  graph.setDefaultEdgeLabel(() => ({}));
  for (const box of boxes) graph.setNode(box.key, { width: box.width, height: box.height });
  for (const [from, to] of edges) if (graph.hasNode(from) && graph.hasNode(to)) graph.setEdge(from, to);
  layout(graph);
  const places = new Map();
  for (const box of boxes) {
    const { x, y } = graph.node(box.key);
    places.set(box.key, [Math.round(x - box.width / 2), Math.round(y - box.height / 2)]);
  }
  return places;
}

/** Whether any two boxes {x, y, width, height} overlap (closer than a small gap). */
export function overlapping(boxes) {
  for (let i = 0; i < boxes.length; i += 1) {
    for (let j = i + 1; j < boxes.length; j += 1) {
      const a = boxes[i];
      const b = boxes[j];
      if (a.x < b.x + b.width + GAP && b.x < a.x + a.width + GAP
          && a.y < b.y + b.height + GAP && b.y < a.y + a.height + GAP) return true;
    }
  }
  return false;
}
