// Port types as the engine names them (engine/types.py) and which links fit. The rule itself is the engine's: GET
// /api/nodes sends it as a table (`links`: for each port type, the types its outputs may feed), learnt here once
// when the editor starts, so the editor refuses exactly what the engine's validation would refuse.

/** @type {Map<string, Set<string>>} */
const assignable = new Map();
export const MEDIA_TYPES = ["image", "audio", "video"];
/** Types that only come from a link: no literal widget. */
export const LINK_ONLY_TYPES = [...MEDIA_TYPES, "mask", "control"];
export const GRAPH_INPUT_TYPES = ["text", "int", "float", "bool", "json", "image", "audio", "video"];
/** The type of a graph output's slot and of outputs of unknown nodes: anything may go there. */
export const ANY = "*";

const COLOURS = {
  text: "#7ec699",
  int: "#6fa8dc",
  float: "#9fc5e8",
  bool: "#e06666",
  json: "#b4a7d6",
  image: "#f6b26b",
  audio: "#ffd966",
  video: "#e69ac0",
  mask: "#d9d9d9",
  control: "#76d7c4",
};

/** The item type of `list[x]`, else null. */
export function listItem(type) {
  return typeof type === "string" && type.startsWith("list[") && type.endsWith("]") ? type.slice(5, -1) : null;
}

/** Learn the engine's link table (`links` of GET /api/nodes). */
export function learnLinks(table) {
  assignable.clear();
  for (const [source, targets] of Object.entries(table ?? {})) assignable.set(source, new Set(targets));
}

/** Whether an output of type `source` may feed an input of type `target`, by the engine's table. */
export function isAssignable(source, target) {
  return source === target || Boolean(assignable.get(source)?.has(target));
}

/** The canvas rule: the engine's, plus the editor's wildcard slots. */
export function linkAllowed(source, target) {
  if (!source || !target || source === ANY || target === ANY) return true;
  return isAssignable(String(source), String(target));
}

/** Why a link does not fit, for the message shown where it was refused. */
export function refusal(source, target, what) {
  return `${what.from} is ${source}; ${what.to} takes ${target}`;
}

export function colourOf(type) {
  if (type === ANY) return "#cccccc";
  return COLOURS[listItem(type) ?? type] ?? "#999999";
}
