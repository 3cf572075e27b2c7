// The view and its coordinates: fitting the view to the nodes, where a new node goes, page ⇄ graph points, and the
// page positions of sockets, widgets and titles (tests drag the real mouse to them).

import { arrange, titleHeight, widgetHeight } from "./canvas-litegraph.js";
import { widgetOf } from "./canvas-widgets.js";

/** Scale and scroll so every node is in view (no closer than 1:1, no further than 0.35). */
export function fitToNodes(editor) {
  const nodes = editor.nodes();
  if (!nodes.length) {
    editor.canvas.ds.reset();
    editor.canvas.setDirty(true, true);
    return;
  }
  const xs = nodes.flatMap((n) => [n.pos[0], n.pos[0] + n.size[0]]);
  const ys = nodes.flatMap((n) => [n.pos[1] - titleHeight(), n.pos[1] + n.size[1] + 40]);
  const [x0, y0, x1, y1] = [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)];
  const scale = Math.min(1, (editor.element.width - 60) / (x1 - x0), (editor.element.height - 60) / (y1 - y0));
  editor.canvas.ds.scale = Math.max(0.35, scale);
  editor.canvas.ds.offset = [30 / editor.canvas.ds.scale - x0, 30 / editor.canvas.ds.scale - y0];
  editor.canvas.setDirty(true, true);
}

/** Where a node added without a position goes: near the middle of the view, staggered. */
export function freeSpot(editor) {
  const [x, y] = editor.canvas.ds.convertCanvasToOffset([editor.element.width / 2 - 130, editor.element.height / 3]);
  const jitter = (editor.graph.nodes.length % 6) * 24;
  return [Math.round(x + jitter), Math.round(y + jitter)];
}

/** Graph coordinates of a point in the page. */
export function pageToGraph(editor, clientX, clientY) {
  const box = editor.element.getBoundingClientRect();
  return editor.canvas.ds.convertCanvasToOffset([clientX - box.left, clientY - box.top]);
}

/** Page coordinates of a point in the graph. */
export function graphToPage(editor, point) {
  const [x, y] = editor.canvas.ds.convertOffsetToCanvas(point);
  const box = editor.element.getBoundingClientRect();
  return { x: box.left + x, y: box.top + y };
}

/** Page coordinates of a port's socket: `direction` "out" or "in", the `nth` socket of a list input. */
export function socketPagePosition(editor, id, direction, name, nth) {
  const node = editor.findNode(id) ?? editor.findIo(direction === "out" ? "input" : "output", id);
  if (!node) throw new Error(`no node ${id}`);
  arrange(node);
  let point;
  if (direction === "out") {
    const index = node.nf.kind === "input" ? 0 : node.outputs.findIndex((slot) => slot.name === name);
    point = node.getOutputPos(index);
  } else {
    const slots = node.inputs.filter((slot) => (slot.nf_port ?? slot.name) === name);
    const slot = slots[nth];
    if (!slot) throw new Error(`no input ${name} on ${id}`);
    point = node.getInputSlotPos ? node.getInputSlotPos(slot) : node.getInputPos(node.inputs.indexOf(slot));
  }
  return graphToPage(editor, point);
}

/** Page coordinates of a widget's middle. */
export function widgetPagePosition(editor, id, name) {
  const node = editor.findNode(id) ?? editor.findIo("input", id) ?? editor.findIo("output", id);
  const widget = widgetOf(node, name);
  if (!widget) throw new Error(`no widget ${name} on ${id}`);
  return graphToPage(editor, [node.pos[0] + node.size[0] / 2, node.pos[1] + widget.y + widgetHeight() / 2]);
}

/** Page coordinates of a node's title bar. */
export function titlePagePosition(editor, id) {
  const node = editor.findNode(id) ?? editor.findIo("output", id) ?? editor.findIo("input", id);
  return graphToPage(editor, [node.pos[0] + 40, node.pos[1] - titleHeight() / 2]);
}
