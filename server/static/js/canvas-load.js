// Showing a graph document on the canvas: its graph inputs, nodes and their literals, graph outputs, the links
// between them, and the layout from `ui` (laid out in layers when it places too little or piles nodes up, see
// layout.js).

import { formatTyped, isReference } from "./bindings.js";
import { arrange, catalogueType, createGroup, createNode, slotLook, titleHeight } from "./canvas-litegraph.js";
import { addInputNode, addOutputNode, addUnknownNode, setBypass } from "./canvas-nodes.js";
import { addExtraInput, addListSlot, refreshCallPorts, savedGraphSpec, tidyListSlots } from "./canvas-ports.js";
import { fitToNodes } from "./canvas-view.js";
import { setLiteral, widgetOf } from "./canvas-widgets.js";
import { documentEdges, layeredPositions, overlapping } from "./layout.js";
import { ANY } from "./types.js";

/** Replace what the canvas shows with `document`. */
export async function loadDocument(editor, document, { keepLayout = false } = {}) {
  editor.loading = true;
  try {
    editor.graph.clear();
    const ui = document.ui ?? {};
    const positions = ui.positions ?? {};
    const unplaced = new Map();
    const nodes = document.nodes ?? {};
    for (const [name, decl] of Object.entries(document.inputs ?? {})) {
      const node = addInputNode(editor, name, decl.type ?? "text", ui.inputs?.[name] ?? [0, 0]);
      if (!ui.inputs?.[name]) unplaced.set(`input:${name}`, node);
      const required = decl.default === undefined || decl.default === null;
      widgetOf(node, "required").value = required;
      widgetOf(node, "default").value = required ? "" : formatTyped(decl.default);
      widgetOf(node, "description").value = decl.description ?? "";
    }
    for (const [id, doc] of Object.entries(nodes)) {
      const at = positions[id] ?? [0, 0];
      if (!editor.entries.has(doc?.type)) {
        const unknown = addUnknownNode(editor, id, doc, at);
        if (!positions[id]) unplaced.set(id, unknown);
        continue;
      }
      const node = createNode(catalogueType(editor.entries.get(doc.type)));
      node.nf.id = id;
      node.nf.version = doc.version ?? null;
      if (doc.bypass) setBypass(editor, node, true);
      node.title = id;
      node.pos = at;
      editor.graph.add(node);
      if (!positions[id]) unplaced.set(id, node);
      const given = doc.inputs ?? {};
      if (node.nf.entry.extra_inputs && !node.nf.entry.dynamic_ports) {
        for (const name of Object.keys(given)) if (!node.nf.specs.has(name)) addExtraInput(editor, node, name);
      }
      const graphSpec = savedGraphSpec(node);
      if (graphSpec) {
        setLiteral(editor, node, graphSpec, given[graphSpec.name]);
        await refreshCallPorts(editor, node, given);
      }
      for (const [name, value] of Object.entries(given)) {
        const spec = node.nf.specs.get(name);
        if (!spec) node.nf.strays[name] = value;
        else if (!isReference(value)) setLiteral(editor, node, spec, value);
      }
    }
    for (const [name, decl] of Object.entries(document.outputs ?? {})) {
      const node = addOutputNode(editor, name, ui.outputs?.[name] ?? [0, 0]);
      if (!ui.outputs?.[name]) unplaced.set(`output:${name}`, node);
      widgetOf(node, "description").value = decl.description ?? "";
    }
    loadLinks(editor, document);
    for (const group of Array.isArray(ui.groups) ? ui.groups : []) {
      if (Array.isArray(group?.bounding) && group.bounding.length === 4) {
        editor.graph.add(createGroup(String(group.title ?? "Group"), group.bounding, group.color ?? null));
      }
    }
    for (const node of editor.nodes()) {
      if (node.nf.kind === "node") {
        for (const spec of node.nf.specs.values()) if (spec.kind === "list") tidyListSlots(editor, node, spec.name);
        node.setSize([node.size[0], Math.max(node.size[1], node.computeSize()[1])]);
      }
    }
    for (const node of editor.nodes()) arrange(node);
    if (!keepLayout || unplaced.size) layOutIfNeeded(editor, document, unplaced.size > 0);
    if (ui.view?.offset && typeof ui.view.scale === "number") {
      editor.canvas.ds.offset = ui.view.offset;
      editor.canvas.ds.scale = ui.view.scale;
    } else {
      fitToNodes(editor);
    }
  } finally {
    editor.loading = false;
  }
  editor.canvas.setDirty(true, true);
}

/** Lay the whole graph out in layers when some node has no position or two nodes overlap (titles included). */
function layOutIfNeeded(editor, document, missing) {
  const title = titleHeight();
  const keyed = editor.nodes().map((node) => {
    const key = node.nf.kind === "input" ? `input:${node.nf.name}`
      : node.nf.kind === "output" ? `output:${node.nf.name}` : node.nf.id;
    return { key, node, x: node.pos[0], y: node.pos[1] - title, width: node.size[0], height: node.size[1] + title };
  });
  if (!missing && !overlapping(keyed)) return;
  const places = layeredPositions(keyed, documentEdges(document));
  for (const { key, node } of keyed) {
    const [x, y] = places.get(key);
    node.pos = [x, y + title];
  }
}

function loadLinks(editor, document) {
  for (const [id, doc] of Object.entries(document.nodes ?? {})) {
    const node = editor.findNode(id);
    if (!node || node.nf.kind !== "node") continue;
    for (const [name, value] of Object.entries(doc.inputs ?? {})) {
      const spec = node.nf.specs.get(name);
      if (!spec) continue;
      const refs = spec.kind === "list" ? (Array.isArray(value) ? value : [value]).filter(isReference)
        : (isReference(value) ? [value] : []);
      refs.forEach((ref, n) => {
        let slots = node.inputs.filter((slot) => slot.nf_port === name);
        if (spec.kind === "list" && n >= slots.length) {
          addListSlot(node, spec, node.inputs.indexOf(slots.at(-1)) + 1);
          slots = node.inputs.filter((slot) => slot.nf_port === name);
        }
        connectRef(editor, ref, node, node.inputs.indexOf(slots[spec.kind === "list" ? n : 0]));
      });
    }
  }
  for (const [name, decl] of Object.entries(document.outputs ?? {})) {
    const node = editor.findIo("output", name);
    if (node) connectRef(editor, { from: decl.from }, node, 0);
  }
}

/** Link reference `ref` ({from} or {input}) into input `index` of `target`; a missing graph input is added. */
function connectRef(editor, ref, target, index) {
  if (index < 0) return;
  if ("input" in ref) {
    const source = editor.findIo("input", ref.input)
      ?? addInputNode(editor, ref.input, target.inputs[index].type, [target.pos[0] - 320, target.pos[1]]);
    source.connect(0, target, index);
    return;
  }
  const [id, output] = String(ref.from).split(".");
  const source = editor.findNode(id);
  if (!source) return;
  let slot = source.outputs.findIndex((out) => out.name === output);
  if (slot < 0 && source.nf.kind === "unknown") {
    source.addOutput(output, ANY, slotLook(ANY));
    slot = source.outputs.length - 1;
  }
  if (slot >= 0) source.connect(slot, target, index);
}
