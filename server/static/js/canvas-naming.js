// Node ids and graph input/output names: the id a new node starts from, a unique id for it, and renaming
// (double-click on a title) with its checks.

const NODE_ID = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** The id a new node of `type` starts from: `generate`, `upscale`, `text` for text.value... */
export function baseName(type) {
  const [family, name] = type.split(".");
  return name === "value" ? family : name;
}

/** An id no node, graph input or graph output uses yet, made from `base`. */
export function uniqueId(editor, base) {
  const taken = new Set(editor.nodes().map((node) => node.nf.id ?? node.nf.name));
  const stem = base.replace(/[^A-Za-z0-9_-]/g, "_").replace(/^[^A-Za-z_]/, "n$&") || "node";
  if (!taken.has(stem)) return stem;
  for (let n = 2; ; n++) if (!taken.has(`${stem}_${n}`)) return `${stem}_${n}`;
}

/** Ask for a node's new id (a graph input's or output's new name) and take it if it is valid and free. */
export async function renameNode(editor, node) {
  const isIo = node.nf.kind === "input" || node.nf.kind === "output";
  const current = isIo ? node.nf.name : node.nf.id;
  const what = isIo ? `graph ${node.nf.kind}` : "node id";
  const name = await editor.hooks.askText(`Rename ${what} '${current}'`, current);
  if (name === null || name === current) return;
  const problem = nameProblem(editor, node, name);
  if (problem) {
    editor.hooks.refused(problem);
    return;
  }
  rename(editor, node, name);
}

function nameProblem(editor, node, name) {
  if (!NODE_ID.test(name)) return `'${name}' is not a valid name: a letter or _, then letters, digits, _ or -`;
  const kind = node.nf.kind;
  const clash = editor.nodes().some((other) => other !== node && (kind === "node" || kind === "unknown"
    ? (other.nf.kind === "node" || other.nf.kind === "unknown") && other.nf.id === name
    : other.nf.kind === kind && other.nf.name === name));
  return clash ? `'${name}' is already used` : null;
}

function rename(editor, node, name) {
  if (node.nf.kind === "input" || node.nf.kind === "output") {
    node.nf.name = name;
    node.title = `${node.nf.kind}: ${name}`;
  } else {
    node.nf.id = name;
    node.title = name;
  }
  editor.changed();
  editor.canvas.setDirty(true, true);
}
