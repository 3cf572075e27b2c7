// The graph document the canvas shows (design.md section 2): graph inputs, nodes with their inputs' bindings
// (links, literals; defaults left out), graph outputs, and the layout in `ui`.

import { looksLikeBinding, parseTyped, refOf } from "./bindings.js";
import { linkInto, sourceType } from "./canvas-links.js";
import { widgetOf } from "./canvas-widgets.js";
import { LORAS, SEED } from "./schema.js";
import { listItem } from "./types.js";

/** The document (`base` supplies name, description and unknown `ui` keys). */
export function documentOf(editor, base = {}) {
  const document = { schema: "nodeforge/graph@1", name: base.name ?? "", description: base.description ?? "",
                     inputs: {}, nodes: {}, outputs: {}, ui: { ...(base.ui ?? {}) } };
  const positions = {};
  const inputsAt = {};
  const outputsAt = {};
  const ordered = [...editor.nodes()].sort((a, b) => a.pos[0] - b.pos[0] || a.pos[1] - b.pos[1]);
  for (const node of ordered) {
    const at = [Math.round(node.pos[0]), Math.round(node.pos[1])];
    if (node.nf.kind === "input") {
      document.inputs[node.nf.name] = inputDecl(node);
      inputsAt[node.nf.name] = at;
    } else if (node.nf.kind === "output") {
      const link = linkInto(editor, node.inputs[0]);
      const description = String(widgetOf(node, "description").value ?? "");
      if (link?.from) document.outputs[node.nf.name] = { from: link.from, ...(description ? { description } : {}) };
      outputsAt[node.nf.name] = at;
    } else if (node.nf.kind === "unknown") {
      document.nodes[node.nf.id] = node.nf.raw;
      positions[node.nf.id] = at;
    } else {
      document.nodes[node.nf.id] = nodeDoc(editor, node);
      positions[node.nf.id] = at;
    }
  }
  const groups = editor.graph.groups.map((group) => ({ title: group.title, color: group.color,
                                                       bounding: [...group._bounding].map(Math.round) }));
  document.ui = { ...document.ui, positions, inputs: inputsAt, outputs: outputsAt, groups,
                  view: { offset: [...editor.canvas.ds.offset].map(Math.round), scale: editor.canvas.ds.scale } };
  return document;
}

function inputDecl(node) {
  const type = widgetOf(node, "type").value;
  const text = String(widgetOf(node, "default").value ?? "");
  const required = Boolean(widgetOf(node, "required").value);
  const description = String(widgetOf(node, "description").value ?? "");
  const decl = { type };
  if (!required) decl.default = parseTyped(type, text);
  if (description) decl.description = description;
  return decl;
}

/** A node as the document writes it; inputs its type does not know are kept as they were, for validation. */
export function nodeDoc(editor, node) {
  const inputs = { ...node.nf.strays };
  for (const spec of node.nf.specs.values()) {
    const binding = bindingOf(editor, node, spec);
    if (binding !== undefined) inputs[spec.name] = binding;
  }
  return { type: node.nf.type, ...(node.nf.version ? { version: node.nf.version } : {}), inputs,
           ...(node.nf.bypass ? { bypass: true } : {}) };
}

/** What the document says for input `spec`: its link(s), its literal, or undefined where the default serves. */
function bindingOf(editor, node, spec) {
  const slots = node.inputs.filter((slot) => slot.nf_port === spec.name);
  if (spec.kind === "list") {
    const linked = slots.filter((slot) => slot.link != null);
    const literals = node.nf.listLiterals[spec.name] ?? [];
    if (linked.length === 1 && !literals.length && listItem(sourceType(editor, linked[0]))) {
      return refOf(linkInto(editor, linked[0]));  // a whole list from one output (a sweep's pictures)
    }
    const items = linked.map((slot) => linkInto(editor, slot)).filter(Boolean).map(refOf);
    if (items.length) return [...items, ...literals];
    const text = String(widgetOf(node, spec.name)?.value ?? "").trim();
    if (!text) return undefined;
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }
  const linked = slots[0]?.link != null ? linkInto(editor, slots[0]) : null;
  if (linked) return refOf(linked);
  if (spec.kind === "slot") return undefined;
  const widget = widgetOf(node, spec.name);
  if (!widget) return undefined;
  if (spec.kind === SEED && widgetOf(node, `${spec.name}:random`)?.value) return -1;
  let value = spec.kind === LORAS ? (widget.nf_value ?? []) : widget.value;
  if (spec.kind === "json") {
    const text = String(value ?? "").trim();
    if (!text) return undefined;
    try {
      value = JSON.parse(text);
    } catch {
      return text;
    }
    if (looksLikeBinding(value)) value = { value };
  }
  const isDefault = JSON.stringify(value) === JSON.stringify(spec.default);
  if (!spec.required && !node.nf.explicit.has(spec.name) && (isDefault || spec.default == null)) {
    return undefined;
  }
  if (spec.kind === LORAS && !node.nf.explicit.has(spec.name) && !value.length) return undefined;
  return value;
}
