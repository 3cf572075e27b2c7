// Where nodes go when a document has no positions in `ui`: one column per depth (graph inputs first, outputs
// last), stacked by their real heights.

const COLUMN_GAP = 80;
const ROW_GAP = 70;
const ORIGIN = [80, 80];

/** Column of each node id, `input:<name>` and `output:<name>`. */
export function layoutColumns(document) {
  const nodes = document.nodes ?? {};
  const depth = new Map();
  const upstream = (doc) => [...JSON.stringify(doc?.inputs ?? {})
    .matchAll(/"from":"([A-Za-z_][A-Za-z0-9_-]*)\./g)].map((match) => match[1]);
  const visit = (id, seen) => {
    if (depth.has(id)) return depth.get(id);
    if (seen.has(id) || !(id in nodes)) return 0;
    seen.add(id);
    const ups = upstream(nodes[id]);
    const d = ups.length ? 1 + Math.max(...ups.map((up) => visit(up, seen))) : 0;
    depth.set(id, d);
    return d;
  };
  for (const id of Object.keys(nodes)) visit(id, new Set());
  const columns = new Map();
  for (const name of Object.keys(document.inputs ?? {})) columns.set(`input:${name}`, 0);
  for (const id of Object.keys(nodes)) columns.set(id, (depth.get(id) ?? 0) + 1);
  const last = Math.max(0, ...depth.values()) + 2;
  for (const name of Object.keys(document.outputs ?? {})) columns.set(`output:${name}`, last);
  return columns;
}

/** Positions for boxes {key, column, width, height}: columns side by side, each stacked top-down. */
export function placeInColumns(boxes, titleHeight) {
  const used = [...new Set(boxes.map((box) => box.column))].sort((a, b) => a - b);
  const widths = new Map(used.map((column) => [column, Math.max(...boxes.filter((b) => b.column === column)
    .map((b) => b.width))]));
  const places = new Map();
  let x = ORIGIN[0];
  for (const column of used) {
    let y = ORIGIN[1];
    for (const box of boxes.filter((b) => b.column === column)) {
      places.set(box.key, [x, y]);
      y += box.height + titleHeight + ROW_GAP;
    }
    x += widths.get(column) + COLUMN_GAP;
  }
  return places;
}
