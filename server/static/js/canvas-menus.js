// The canvas's context menus: on the empty canvas (graph inputs and outputs, fit view) and on a node (rename,
// collapse, pin, a text.template's extra inputs; the library adds Clone and Remove). Only entries that work on a
// nodeforge graph are offered: none of the library's own (subgraphs, modes, properties), which the engine ignores.

import { createGroup, titleHeight } from "./canvas-litegraph.js";
import { renameNode } from "./canvas-naming.js";
import { setBypass } from "./canvas-nodes.js";
import { addExtraInput } from "./canvas-ports.js";
import { fitToNodes } from "./canvas-view.js";

/** The menu of `node` (the library appends Clone and Remove). */
export function nodeMenu(editor, node) {
  const options = [
    { content: "Rename…", callback: () => renameNode(editor, node) },
    { content: node.collapsed ? "Expand" : "Collapse", callback: () => node.collapse() },
    { content: node.pinned ? "Unpin" : "Pin", callback: () => node.pin() },
    { content: node.nf.bypass ? "Stop bypassing" : "Bypass (Ctrl+B)", callback: () => setBypass(editor, node,
                                                                                             !node.nf.bypass) },
  ];
  if (node.nf.type === "text.template") {
    options.push({ content: "Add input…", callback: async () => {
      const name = await editor.hooks.askText("Name of the new input (used as {name})", "");
      if (!name) return;
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name) || node.nf.specs.has(name)) {
        editor.hooks.refused(`'${name}' cannot be added: not a valid name, or already an input`);
        return;
      }
      addExtraInput(editor, node, name);
      node.nf.explicit.add(name);
      editor.changed();
    } });
  }
  return options;
}

export function canvasMenu(editor) {
  return [
    { content: "Add graph input…", callback: () => editor.hooks.addIo?.("input") },
    { content: "Add graph output…", callback: () => editor.hooks.addIo?.("output") },
    { content: "Group the selected nodes (Ctrl+G)", callback: () => groupSelected(editor) },
    null,
    { content: "Fit view", callback: () => fitToNodes(editor) },
  ];
}

const GROUP_PADDING = 20;

/** A titled group around the selected nodes (asks for the title). */
export async function groupSelected(editor) {
  const nodes = Object.values(editor.canvas.selected_nodes ?? {});
  if (!nodes.length) {
    editor.hooks.refused("select the nodes to group first (click, Ctrl+click or drag a box)");
    return;
  }
  const title = await editor.hooks.askText("Title of the group", "Group");
  if (!title) return;
  const top = titleHeight();
  const left = Math.min(...nodes.map((n) => n.pos[0])) - GROUP_PADDING;
  const upper = Math.min(...nodes.map((n) => n.pos[1] - top)) - GROUP_PADDING - top * 1.5;
  const right = Math.max(...nodes.map((n) => n.pos[0] + n.size[0])) + GROUP_PADDING;
  const lower = Math.max(...nodes.map((n) => n.pos[1] + n.size[1])) + GROUP_PADDING;
  editor.graph.add(createGroup(title, [left, upper, right - left, lower - upper]));
  editor.canvas.setDirty(true, true);
  editor.changed();
}
