// The canvas's context menus: on the empty canvas (graph inputs and outputs, fit view) and on a node (rename,
// collapse, pin, a text.template's extra inputs; the library adds Clone and Remove). Only entries that work on a
// nodeforge graph are offered: none of the library's own (subgraphs, modes, properties), which the engine ignores.

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
    null,
    { content: "Fit view", callback: () => fitToNodes(editor) },
  ];
}
