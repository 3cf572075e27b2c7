// What the page says about a node: its description for the Node panel, and the tooltip for the port, output or
// title under the pointer.

import { pageToGraph } from "./canvas-view.js";
import { outputSpecs, prose } from "./schema.js";

/** A node's id, title, description, ports, issues and run state; null for none. */
export function describeNode(node) {
  if (!node?.nf) return null;
  if (node.nf.kind === "node") {
    const entry = node.nf.entry;
    return { kind: "node", id: node.nf.id, type: entry.type, title: `${node.nf.id} · ${entry.type}`,
             description: prose(entry.description), inputs: [...node.nf.specs.values()], outputs: outputSpecs(entry),
             issues: node.nf.issues, state: node.nf.state };
  }
  if (node.nf.kind === "unknown") {
    return { kind: "unknown", id: node.nf.id, title: node.nf.id, description: "a node type this server lacks" };
  }
  return { kind: node.nf.kind, id: node.nf.name, title: `graph ${node.nf.kind} '${node.nf.name}'`,
           description: node.nf.kind === "input" ? "A value the run is given (see the Run panel)."
             : "What the run returns under this name." };
}

/** Give the page's hover hook the tooltip for what is under the pointer (null for nothing). */
export function showHover(editor, event) {
  const [x, y] = pageToGraph(editor, event.clientX, event.clientY);
  const node = editor.graph.getNodeOnPos(x, y);
  if (!node?.nf) {
    editor.hooks.hover(null);
    return;
  }
  const info = describeNode(node);
  const slot = node.getInputOnPos?.([x, y]) ?? node.getSlotFromWidget?.(node.getWidgetOnPos?.(x, y, true));
  const output = node.getOutputOnPos?.([x, y]);
  let text = null;
  if (slot && node.nf.specs) {
    const spec = node.nf.specs.get(slot.nf_port ?? slot.name);
    if (spec) text = { title: `${spec.name} · ${spec.type}${spec.required ? " · required" : ""}`,
                       body: spec.description };
  } else if (output && node.nf.entry) {
    const schema = node.nf.entry.outputs.properties[output.name];
    text = { title: `${output.name} · ${output.type}`, body: schema?.description ?? "" };
  } else if (y < node.pos[1] && info) {
    text = { title: info.title, body: info.description };
  }
  editor.hooks.hover(text, event.clientX, event.clientY);
}
