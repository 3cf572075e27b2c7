// A catalogue node's sockets: one per schema input (on its widget where the input takes literals), list inputs
// that keep one free socket at their end, outputs; and the ports that follow a text.template's `{names}` or the
// graph a graph.call calls.

import { GRID_SHAPE, moveInput, SLOT_INPUT, slotLook } from "./canvas-litegraph.js";
import { addWidgetFor, setLiteral, widgetOf } from "./canvas-widgets.js";
import { inputSpec } from "./schema.js";
import { ANY, listItem } from "./types.js";

/** One input port: a socket on a widget for literals, a plain socket for media, growing sockets for lists. */
export function addPort(editor, node, spec) {
  node.nf.specs.set(spec.name, spec);
  if (spec.kind === "slot") {
    node.addInput(spec.name, spec.type, { ...slotLook(spec.type), nf_port: spec.name, label: spec.name });
    return;
  }
  if (spec.kind === "list") {
    addListSlot(node, spec, node.inputs?.length ?? 0);
    if (spec.literal) {
      const widget = node.addWidget("text", spec.name, "", () => widgetChanged(editor, node, spec.name), {});
      widget.label = `${spec.name} (JSON list)`;
      widget.tooltip = spec.description;
    }
    return;
  }
  const widget = addWidgetFor(editor, node, spec, () => widgetChanged(editor, node, spec.name),
                              () => refreshCallPorts(editor, node));
  widget.tooltip = spec.description;
  node.addInput(spec.name, spec.type, { ...slotLook(spec.type), widget: { name: spec.name }, nf_port: spec.name });
}

/** One more socket of list input `spec`, at input position `index`. */
export function addListSlot(node, spec, index) {
  const count = node.inputs?.filter((slot) => slot.nf_port === spec.name).length ?? 0;
  const slot = node.addInput(spec.name, spec.type, {
    ...slotLook(spec.type), shape: GRID_SHAPE, nf_port: spec.name, nf_list: true,
    label: `${spec.name} ${count + 1}`,
  });
  moveInput(node, node.inputs.length - 1, index);
  return slot;
}

export function addOutputSlot(node, name, type) {
  node.addOutput(name, type, { ...slotLook(type), ...(listItem(type) ? { shape: GRID_SHAPE } : {}) });
}

/** List inputs keep exactly one free socket at their end; single links replace. */
export function connectionsChanged(editor, node, kind, index) {
  if (editor.loading || kind !== SLOT_INPUT) return editor.changed();
  const slot = node.inputs[index];
  if (!slot?.nf_list) return editor.changed();
  queueMicrotask(() => {
    tidyListSlots(editor, node, slot.nf_port);
    editor.changed();
  });
}

/** Drop the free sockets of list input `port` but one at its end, number them, lock its JSON widget if linked. */
export function tidyListSlots(editor, node, port) {
  const spec = node.nf.specs.get(port);
  const indices = () => node.inputs.map((s, i) => (s.nf_port === port ? i : -1)).filter((i) => i >= 0);
  let slots = indices();
  for (const i of [...slots].reverse()) {
    if (indices().length > 1 && node.inputs[i].link == null) node.removeInput(i);
  }
  slots = indices();
  const last = slots.at(-1);
  if (node.inputs[last].link != null) addListSlot(node, spec, last + 1);
  indices().forEach((i, n) => { node.inputs[i].label = `${port} ${n + 1}`; });
  const widget = widgetOf(node, port);
  if (widget) widget.disabled = indices().some((i) => node.inputs[i].link != null);
  node.setSize([node.size[0], Math.max(node.size[1], node.computeSize()[1])]);
  editor.canvas.setDirty(true, true);
}

/** An input the node's type takes beyond its schema (text.template's `{name}`s). */
export function addExtraInput(editor, node, name) {
  const type = node.nf.entry.extra_inputs ?? "text";
  const spec = inputSpec(name, { "x-nodeforge-type": type, description: `{${name}} in the template` }, true);
  node.nf.extras.push(name);
  addPort(editor, node, spec);
  node.setSize([node.size[0], node.computeSize()[1]]);
}

/** The input a node declares as a saved graph's name (`x-nodeforge-widget: graph`), if any: such a node runs the
 * graph, and its ports follow the graph's declared inputs and outputs. */
export function savedGraphSpec(node) {
  return [...node.nf.specs.values()].find((spec) => spec.kind === "graph") ?? null;
}

/** Ports of a node that runs a saved graph (graph.sweep: every input optional, as a swept or passed-through value,
 * and each output a list of the cells' values, plus `cells`). */
export async function refreshCallPorts(editor, node, values = {}) {
  const spec = savedGraphSpec(node);
  const name = spec ? widgetOf(node, spec.name)?.value : null;
  const document = name ? await editor.hooks.graphDocument(name) : null;
  for (const extra of [...node.nf.extras]) removeExtraInput(node, extra);
  while (node.outputs?.length) node.removeOutput(0);
  if (!document) return;
  const sweep = node.nf.type === "graph.sweep";
  for (const [input, decl] of Object.entries(document.inputs ?? {})) {
    const spec = inputSpec(input, { "x-nodeforge-type": decl.type, description: decl.description,
                                    ...(decl.default !== undefined ? { default: decl.default } : {}) },
                           !sweep && (decl.default === undefined || decl.default === null));
    node.nf.extras.push(input);
    addPort(editor, node, spec);
    if (input in values) setLiteral(editor, node, spec, values[input]);
  }
  if (sweep) addOutputSlot(node, "cells", "json");
  for (const [output, decl] of Object.entries(document.outputs ?? {})) {
    const type = outputTypeIn(editor, document, decl.from);
    addOutputSlot(node, output, sweep && type !== ANY && !listItem(type) ? `list[${type}]` : type);
  }
  node.setSize([Math.max(node.size[0], 260), node.computeSize()[1]]);
  editor.canvas.setDirty(true, true);
}

function widgetChanged(editor, node, name) {
  node.nf.explicit.add(name);
  if (node.nf.type === "text.template" && name === "template") syncTemplateInputs(editor, node);
  editor.changed();
}

/** text.template: an input for every `{name}` the template uses (unlinked, empty leftovers go away). */
function syncTemplateInputs(editor, node) {
  const template = String(widgetOf(node, "template")?.value ?? "");
  const wanted = [...template.matchAll(/\{([A-Za-z_][A-Za-z0-9_]*)\}/g)].map((m) => m[1]);
  for (const name of wanted) {
    if (!node.nf.specs.has(name)) addExtraInput(editor, node, name);
  }
  for (const name of [...node.nf.extras]) {
    const slot = node.inputs.find((s) => s.nf_port === name);
    const widget = widgetOf(node, name);
    if (!wanted.includes(name) && slot?.link == null && !widget?.value) removeExtraInput(node, name);
  }
}

function removeExtraInput(node, name) {
  const index = node.inputs.findIndex((slot) => slot.nf_port === name);
  if (index >= 0) node.removeInput(index);
  node.removeWidgetByName(name);
  node.nf.extras = node.nf.extras.filter((extra) => extra !== name);
  node.nf.specs.delete(name);
  node.nf.explicit.delete(name);
  node.setSize([node.size[0], node.computeSize()[1]]);
}

/** The type of a called graph's output `from` ("node.output"), as its node type declares it. */
function outputTypeIn(editor, document, from) {
  const [nodeId, output] = String(from ?? "").split(".");
  const entry = editor.entries.get(document.nodes?.[nodeId]?.type);
  return entry?.outputs?.properties?.[output]?.["x-nodeforge-type"] ?? ANY;
}
