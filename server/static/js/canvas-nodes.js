// The four kinds of node on the canvas (catalogue nodes, graph inputs, graph outputs, nodes of a type this server
// lacks): the `nf` record each carries, its look and callbacks, and adding one to the graph.

import { retypeInput, takeSourceType } from "./canvas-links.js";
import {
  badge, catalogueType, createNode, INPUT_TYPE, OUTPUT_TYPE, slotLook, UNKNOWN_TYPE,
} from "./canvas-litegraph.js";
import { baseName, renameNode, uniqueId } from "./canvas-naming.js";
import { addOutputSlot, addPort, connectionsChanged } from "./canvas-ports.js";
import { drawNodeState, reserveTextArea } from "./canvas-state.js";
import { freeSpot } from "./canvas-view.js";
import { widgetOf } from "./canvas-widgets.js";
import { inputSpecs, outputSpecs } from "./schema.js";
import { ANY, GRAPH_INPUT_TYPES } from "./types.js";

/** A new node of catalogue `entry`: its ports and widgets from the entry's schema; `menu()` gives its context menu
 * (canvas-menus.js, a layer above this one). */
export function setUpNode(editor, node, entry, menu) {
  node.nf = { kind: "node", type: entry.type, entry, id: "", version: null, explicit: new Set(), specs: new Map(),
              extras: [], state: null, issues: [], listLiterals: {}, strays: {}, bypass: false };
  node.title = entry.type;
  node.color = "#2b2f36";
  node.bgcolor = "#1e2126";
  node.badges = [badge({ text: entry.type, fgColor: "#c9d1d9", bgColor: "#3a3f48" })];
  for (const spec of inputSpecs(entry)) addPort(editor, node, spec);
  for (const output of outputSpecs(entry)) addOutputSlot(node, output.name, output.type);
  node.onConnectionsChange = (kind, index) => connectionsChanged(editor, node, kind, index);
  node.onDrawForeground = (ctx) => drawNodeState(node, ctx);
  node.onNodeTitleDblClick = () => renameNode(editor, node);
  node.getMenuOptions = menu;
  markSource(node);
  node.size = node.computeSize();
  node.size[0] = Math.max(node.size[0], 260);
  if (entry.accelerator && outputSpecs(entry).some((output) => output.type === "text")) reserveTextArea(node);
}

/** Make a catalogue node's serialisation name its source, so a copy built from it can find its values
 * (canvas-copies.js adopts the copy). */
function markSource(node) {
  const serialize = node.serialize.bind(node);
  node.serialize = () => ({ ...serialize(), nf_source: node.nf.id || node.nf_source });
}

/** Bypass a node (it does not run; each output takes its first input of the same type) or stop bypassing it. */
export function setBypass(editor, node, bypass) {
  node.nf.bypass = bypass;
  node.color = bypass ? "#5b3f75" : "#2b2f36";
  node.bgcolor = bypass ? "#2e2438" : "#1e2126";
  node.badges = [badge({ text: bypass ? `${node.nf.type} · bypassed` : node.nf.type, fgColor: "#c9d1d9",
                         bgColor: bypass ? "#5b3f75" : "#3a3f48" })];
  editor.canvas.setDirty(true, true);
  editor.changed();
}

/** A new graph input: one output socket, and widgets for its type, default, whether required, description. */
export function setUpInputNode(editor, node) {
  node.nf = { kind: "input", name: "input", state: null, issues: [] };
  node.color = "#24402f";
  node.bgcolor = "#1b2a21";
  node.addOutput("value", "text", slotLook("text"));
  const typeWidget = node.addWidget("combo", "type", "text", (value) => retypeInput(editor, node, value),
                                    { values: GRAPH_INPUT_TYPES });
  typeWidget.tooltip = "the input's type";
  node.addWidget("text", "default", "", () => editor.changed(), {});
  node.addWidget("toggle", "required", false, () => editor.changed(), { on: "yes", off: "no (uses the default)" });
  node.addWidget("text", "description", "", () => editor.changed(), {});
  node.onNodeTitleDblClick = () => renameNode(editor, node);
  node.onDrawForeground = (ctx) => drawNodeState(node, ctx);
  node.size = [260, node.computeSize()[1]];
}

/** A new graph output: one input socket that takes anything, and a description widget. */
export function setUpOutputNode(editor, node) {
  node.nf = { kind: "output", name: "output", state: null, issues: [] };
  node.color = "#402f24";
  node.bgcolor = "#2a211b";
  node.addInput("value", ANY, slotLook(ANY));
  node.addWidget("text", "description", "", () => editor.changed(), {});
  node.onConnectionsChange = (kind, index, connected, link) => {
    if (connected && link) takeSourceType(editor, link);
    editor.changed();
  };
  node.onNodeTitleDblClick = () => renameNode(editor, node);
  node.onDrawForeground = (ctx) => drawNodeState(node, ctx);
  node.size = [240, node.computeSize()[1]];
}

/** A new node of a catalogue type; at `pos` (graph coordinates) or the middle of the view. Returns its id. */
export function addCatalogueNode(editor, type, pos = null, id = null) {
  const entry = editor.entries.get(type);
  if (!entry) throw new Error(`unknown node type ${type}`);
  const node = createNode(catalogueType(entry));
  node.nf.id = id ?? uniqueId(editor, baseName(type));
  node.title = node.nf.id;
  node.pos = pos ?? freeSpot(editor);
  editor.graph.add(node);
  editor.canvas.selectNode(node);
  editor.changed();
  return node.nf.id;
}

export function addInputNode(editor, name, type = "text", pos = null) {
  const node = createNode(INPUT_TYPE);
  node.nf.name = name;
  node.title = `input: ${name}`;
  widgetOf(node, "type").value = type;
  retypeInput(editor, node, type);
  node.pos = pos ?? freeSpot(editor);
  editor.graph.add(node);
  editor.changed();
  return node;
}

export function addOutputNode(editor, name, pos = null) {
  const node = createNode(OUTPUT_TYPE);
  node.nf.name = name;
  node.title = `output: ${name}`;
  node.pos = pos ?? freeSpot(editor);
  editor.graph.add(node);
  editor.changed();
  return node;
}

/** A document's node of a type this server lacks: kept as written (`raw`), shown in red. */
export function addUnknownNode(editor, id, doc, at) {
  const node = createNode(UNKNOWN_TYPE);
  node.nf = { kind: "unknown", id, raw: doc, state: null, issues: [],
              note: `unknown node type '${doc?.type}': kept as written` };
  node.title = id;
  node.color = "#5c2b2b";
  node.pos = at;
  node.onDrawForeground = (ctx) => drawNodeState(node, ctx);
  editor.graph.add(node);
  return node;
}
