// What editor control each node input gets, read from the input's JSON Schema in GET /api/nodes: the node declares
// what an input means (`x-nodeforge-widget`: seed, model, loras, file, folder, graph, multiline), never its name.
// Pure data: the canvas adapter turns these specs into widgets, the run panel into form fields.

import { LINK_ONLY_TYPES, listItem } from "./types.js";

/** The controls that keep a value of their own beyond the widget's (a seed's "random", a LoRA list). */
export const SEED = "seed";
export const LORAS = "loras";

/**
 * The control of one input:
 *   {kind: "slot"}                       media: a link or a graph input only
 *   {kind: "list", item, literal}        several links (one slot each); `literal`: a JSON list may be typed
 *   {kind: "number", integer, min, max, step}
 *   {kind: "seed"}                       integer with "random each run" and a randomise button
 *   {kind: "combo", values}              enums
 *   {kind: "toggle"}
 *   {kind: "text", multiline, file}      file: "read" for a file to read (a choose-and-upload button goes with it)
 *   {kind: "model", kinds, extra}        a picker fed by GET /api/models, for an input the node declares as a model,
 *                                        of the families it declares (`x-nodeforge-models`), plus the names the node
 *                                        handles itself (`x-nodeforge-model-names`)
 *   {kind: "loras"}                      [{model, weight}] edited in a dialog
 *   {kind: "graph"}                      a saved graph's name
 *   {kind: "json"}
 * plus name, type, required, default (undefined when none), description, title.
 */
export function inputSpec(name, schema, required) {
  const type = schema["x-nodeforge-type"] ?? "json";
  const widget = schema["x-nodeforge-widget"] ?? null;
  const base = {
    name, type, required,
    default: "default" in schema ? schema.default : undefined,
    description: schema.description ?? "",
    title: schema.title ?? name,
  };
  const item = listItem(type);
  if (LINK_ONLY_TYPES.includes(type)) return { ...base, kind: "slot" };
  if (item !== null) return { ...base, kind: "list", item, literal: !LINK_ONLY_TYPES.includes(item) };
  if (widget === SEED && type === "int") return { ...base, kind: SEED };
  const values = schema.enum ?? schema.items?.enum;
  if (Array.isArray(values) && type === "text") return { ...base, kind: "combo", values: values.map(String) };
  if (type === "int" || type === "float") {
    const min = schema.minimum ?? (schema.exclusiveMinimum !== undefined ? schema.exclusiveMinimum : undefined);
    const max = schema.maximum ?? (schema.exclusiveMaximum !== undefined ? schema.exclusiveMaximum : undefined);
    return { ...base, kind: "number", integer: type === "int", min, max, step: numberStep(schema, type, min, max) };
  }
  if (type === "bool") return { ...base, kind: "toggle" };
  if (type === "text" && widget === "model") {
    const kinds = schema["x-nodeforge-models"];
    const extra = schema["x-nodeforge-model-names"] ?? [];
    return { ...base, kind: "model", kinds: kinds?.length ? kinds : null, extra };
  }
  if (type === "text" && widget === "graph") return { ...base, kind: "graph" };
  if (type === "text") {
    return { ...base, kind: "text", multiline: widget === "multiline", file: schema["x-nodeforge-file"] ?? null };
  }
  if (widget === LORAS) return { ...base, kind: LORAS };
  return { ...base, kind: "json" };
}

function numberStep(schema, type, min, max) {
  if (typeof schema.multipleOf === "number") return schema.multipleOf;
  if (type === "int") return 1;
  if (min !== undefined && max !== undefined && max - min <= 2) return 0.01;
  return 0.1;
}

/** Every input spec of a catalogue entry, in the schema's order. */
export function inputSpecs(entry) {
  const properties = entry.inputs?.properties ?? {};
  const required = new Set(entry.inputs?.required ?? []);
  return Object.entries(properties).map(([name, schema]) => inputSpec(name, schema, required.has(name)));
}

export function outputSpecs(entry) {
  return Object.entries(entry.outputs?.properties ?? {}).map(([name, schema]) => ({
    name, type: schema["x-nodeforge-type"] ?? "json", description: schema.description ?? "",
  }));
}

/** The model names a picker offers: matching kinds first, then the extras; `current` is kept when unknown. */
export function modelChoices(spec, models, current) {
  const names = models.filter((model) => !spec.kinds || spec.kinds.includes(model.kind)).map((model) => model.name);
  const all = [...names, ...spec.extra];
  if (typeof current === "string" && current && !all.includes(current)) all.unshift(current);
  return all;
}

/** The value an input starts with on a new node. */
export function initialValue(spec) {
  if (spec.default !== undefined && spec.default !== null) return spec.default;
  switch (spec.kind) {
    case "number": return spec.min !== undefined && spec.min > 0 ? spec.min : 0;
    case "seed": return 0;
    case "toggle": return false;
    case "combo": return spec.values[0];
    case "loras": return [];
    case "json": return null;
    case "list": return null;
    default: return "";
  }
}

/** A docstring as prose: wrapped lines joined, blank lines kept, reStructuredText quotes dropped. */
export function prose(text) {
  return String(text ?? "").replace(/``/g, "`").split(/\n\s*\n/)
    .map((paragraph) => paragraph.replace(/\s*\n\s*/g, " ").trim()).join("\n\n");
}
