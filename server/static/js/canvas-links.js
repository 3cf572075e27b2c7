// Links and their types: which output a socket's link comes from, a graph input's new type dropping the links it
// no longer fits, and a graph output's link taking its source's type. What a link dropped by the pointer does is
// in canvas-drop.js, a layer above the nodes.

import { linkOf, slotLook } from "./canvas-litegraph.js";
import { linkAllowed } from "./types.js";

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
