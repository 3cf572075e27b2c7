// Copies the canvas library makes of a node (Alt+drag, the menu's Clone, Ctrl+C then Ctrl+V): the library builds
// them from its own serialisation, which knows nothing of a node's id or which values were set. Each copy says
// which node it came from (`nf_source`, which canvas-nodes.js writes into the serialisation); when it is added, it
// gets an id of its own and the literal values of its source (links stay where they were: a copy starts unlinked,
// except for links between nodes pasted together, which the library remakes).

import { isReference } from "./bindings.js";
import { nodeDoc } from "./canvas-document.js";
import { baseName, uniqueId } from "./canvas-naming.js";
import { setBypass } from "./canvas-nodes.js";
import { addExtraInput } from "./canvas-ports.js";
import { setLiteral } from "./canvas-widgets.js";

/** A catalogue node just added without an id is a copy: give it one, and its source's literal values. */
export function adoptCopy(editor, node) {
  if (editor.loading || node.nf?.kind !== "node" || node.nf.id) return;
  const source = node.nf_source ? editor.findNode(node.nf_source) : null;
  delete node.nf_source;
  node.nf.id = uniqueId(editor, source?.nf.id.replace(/_\d+$/, "") ?? baseName(node.nf.type));
  node.title = node.nf.id;
  if (!source || source === node) return;
  node.nf.version = source.nf.version;
  if (source.nf.bypass) setBypass(editor, node, true);
  for (const name of source.nf.extras) if (!node.nf.specs.has(name)) addExtraInput(editor, node, name);
  const given = nodeDoc(editor, source).inputs;
  for (const [name, value] of Object.entries(given)) {
    if (isReference(value) || (Array.isArray(value) && value.some(isReference))) continue;
    const spec = node.nf.specs.get(name);
    if (spec) setLiteral(editor, node, spec, value);
    else node.nf.strays[name] = value;
  }
  node.setSize([Math.max(node.size[0], source.size[0]), node.computeSize()[1]]);
}
