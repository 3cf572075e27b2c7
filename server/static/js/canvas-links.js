// Links and their types: which output a socket's link comes from, a graph input's new type dropping the links it
// no longer fits, a graph output's link taking its source's type, and saying why a dropped link was refused.

import { linkOf, slotLook } from "./canvas-litegraph.js";
import { addCatalogueNode } from "./canvas-nodes.js";
import { acceptingInput, quickSearch } from "./quick-search.js";
import { linkAllowed, refusal } from "./types.js";

/** {from: "node.output"} or {input: name} for the link into a slot. */
export function linkInto(editor, slot) {
  if (slot?.link == null) return null;
  const link = linkOf(editor.graph, slot.link);
  if (!link) return null;
  const origin = editor.graph.getNodeById(link.origin_id);
  if (!origin) return null;
  if (origin.nf.kind === "input") return { input: origin.nf.name };
  return { from: `${origin.nf.id}.${origin.outputs[link.origin_slot]?.name}` };
}

/** The port type of the output a slot's link comes from (null when unlinked). */
export function sourceType(editor, slot) {
  const link = slot?.link == null ? null : linkOf(editor.graph, slot.link);
  const origin = link && editor.graph.getNodeById(link.origin_id);
  return origin ? String(origin.outputs[link.origin_slot]?.type ?? "") : null;
}

/** A graph input's type changed: its socket follows, and links the new type does not fit are removed (and said). */
export function retypeInput(editor, node, type) {
  const slot = node.outputs[0];
  slot.type = type;
  Object.assign(slot, slotLook(type));
  for (const linkId of [...(slot.links ?? [])]) {
    const link = linkOf(editor.graph, linkId);
    const target = link && editor.graph.getNodeById(link.target_id);
    const input = target?.inputs[link.target_slot];
    if (input && !linkAllowed(type, input.type)) {
      target.disconnectInput(link.target_slot);
      const port = `${target.nf.id}.${input.nf_port ?? input.name}`;
      editor.hooks.refused(`graph input '${node.nf.name}' is now ${type}; ${port} takes ${input.type}, `
                           + "so that link was removed");
    }
  }
  editor.changed();
  editor.canvas.setDirty(true, true);
}

/** A link into a graph output (whose socket takes anything) is drawn in its source's type. */
export function takeSourceType(editor, link) {
  link.type = editor.graph.getNodeById(link.origin_id)?.outputs[link.origin_slot]?.type;
}

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
