// The canvas's context menus: on the empty canvas (graph inputs and outputs, fit view) and on a node (a
// text.template's extra inputs).

import { addExtraInput } from "./canvas-ports.js";
import { fitToNodes } from "./canvas-view.js";

/** The library's menu `options` for `node`, with the node's own entries added. */
export function nodeMenu(editor, node, options) {
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
