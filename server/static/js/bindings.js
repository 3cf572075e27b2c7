// Input values as the graph document writes them (design.md section 2): links {"from"}, graph inputs {"input"},
// literals (wrapped as {"value"} when they would look like a link), and graph-input defaults typed as text.

export function decimals(step) {
  const text = String(step);
  return text.includes(".") ? text.split(".")[1].length : 0;
}

export function isReference(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value)
    && Object.keys(value).length === 1 && ("from" in value || "input" in value);
}

export function looksLikeBinding(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value) && Object.keys(value).length === 1
    && ("from" in value || "input" in value || "value" in value);
}

export function unwrapValue(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value) && Object.keys(value).length === 1
    && "value" in value ? value.value : value;
}

export function refOf(link) {
  return "input" in link ? { input: link.input } : { from: link.from };
}

/** A graph input's default typed as text in the editor, as the document holds it. */
export function parseTyped(type, text) {
  const trimmed = text.trim();
  switch (type) {
    case "int": return trimmed === "" ? null : Number.parseInt(trimmed, 10);
    case "float": return trimmed === "" ? null : Number.parseFloat(trimmed);
    case "bool": return ["true", "yes", "1", "on"].includes(trimmed.toLowerCase());
    case "json":
      try {
        return trimmed === "" ? null : JSON.parse(trimmed);
      } catch {
        return trimmed;
      }
    case "text": return text;
    default: return trimmed === "" ? null : trimmed;
  }
}

export function formatTyped(value) {
  return typeof value === "string" ? value : JSON.stringify(value);
}
