// The pointer adding or linking on the canvas: a link dropped where it does not fit says why; a link dropped on the
// empty canvas, or a double-click there, searches the node types and adds the chosen one (linked to the dropped
// link's output).

import { addCatalogueNode } from "./canvas-nodes.js";
import { acceptingInput, quickSearch } from "./quick-search.js";
import { linkAllowed, refusal } from "./types.js";

/** After a link drag ends over a slot that does not fit, say why where it happened. */
export function afterDrop(editor, { renderLinks, event }) {
  const link = renderLinks?.[0];
  if (!link || !event) return;
  const node = editor.graph.getNodeOnPos(event.canvasX, event.canvasY);
  if (!node && link.toType === "input") {
    dropSearch(editor, link, event);
    return;
  }
  if (!node || node === link.node) return;
  const point = [event.canvasX, event.canvasY];
  if (link.toType === "input") {
    const slot = node.getInputOnPos(point) ?? node.getSlotFromWidget(node.getWidgetOnPos(...point, true));
    const from = link.fromSlot;
    if (slot && !linkAllowed(from.type, slot.type)) {
      editor.hooks.refused(refusalOf(link.node, from, node, slot), event.clientX, event.clientY);
    } else if (!slot && node.inputs?.length && !node.inputs.some((s) => linkAllowed(from.type, s.type))) {
      editor.hooks.refused(`no input of '${node.nf.id ?? node.nf.name}' takes ${from.type}`, event.clientX,
                           event.clientY);
    }
  } else if (link.toType === "output") {
    const slot = node.getOutputOnPos(point);
    if (slot && !linkAllowed(slot.type, link.fromSlot.type)) {
      editor.hooks.refused(refusalOf(node, slot, link.node, link.fromSlot), event.clientX, event.clientY);
    }
  }
}

/** A link from an output dropped on the empty canvas: search the node types that take it, add one there, link. */
async function dropSearch(editor, link, event) {
  const from = link.fromSlot;
  const type = await quickSearch([...editor.entries.values()], event.clientX, event.clientY, from.type);
  if (!type) return;
  const id = addCatalogueNode(editor, type, [event.canvasX, event.canvasY]);
  const target = editor.findNode(id);
  const port = acceptingInput(editor.entries.get(type), from.type);
  const index = target.inputs.findIndex((slot) => slot.nf_port === port);
  if (index >= 0) link.node.connect(link.node.outputs.indexOf(from), target, index);
  editor.changed();
}

/** A double-click on the empty canvas: search the node types and add the chosen one where the pointer is. */
export async function searchAtPointer(editor, event) {
  const [x, y] = editor.toGraphPoint(event.clientX, event.clientY);
  if (editor.graph.getNodeOnPos(x, y)) return;
  const type = await quickSearch([...editor.entries.values()], event.clientX, event.clientY);
  if (type) addCatalogueNode(editor, type, [x, y]);
}

/** Why output `from` of `source` may not feed input `slot` of `target`, naming both as the user knows them. */
function refusalOf(source, from, target, slot) {
  const fromName = source.nf.kind === "input" ? `graph input '${source.nf.name}'` : `'${source.nf.id}.${from.name}'`;
  const toName = target.nf.kind === "output" ? `graph output '${target.nf.name}'`
    : `input '${target.nf.id}.${slot.nf_port ?? slot.name}'`;
  return refusal(from.type, slot.type, { from: fromName, to: toName });
}
