// Work from other tools dropped or opened in the editor: a ComfyUI workflow (API or UI JSON, or a PNG ComfyUI
// saved) or a PNG A1111/Forge saved. The server turns it into a nodeforge graph (POST /api/import); this module
// tells such files from nodeforge's own and says what the import could not carry over.

import { ApiError } from "./api.js";
import { GRAPH_CHUNK, pngTexts } from "./png.js";

const FOREIGN_CHUNKS = ["prompt", "workflow", "parameters"];

/** Whether the bytes are another tool's work rather than a nodeforge graph (or a PNG nodeforge wrote). */
export async function isForeign(buffer, isPng) {
  if (isPng) {
    const texts = await pngTexts(buffer);
    return texts[GRAPH_CHUNK] === undefined && FOREIGN_CHUNKS.some((key) => texts[key] !== undefined);
  }
  let data;
  try {
    data = JSON.parse(new TextDecoder().decode(buffer));
  } catch {
    return false;
  }
  if (!data || typeof data !== "object" || Array.isArray(data) || data.schema) return false;
  if (Array.isArray(data.nodes)) return true; // ComfyUI's UI format
  const values = Object.values(data.prompt && typeof data.prompt === "object" ? data.prompt : data);
  return values.length > 0 && values.every((node) => node && typeof node === "object" && "class_type" in node);
}

/** The server's import of `file`: {document, source, warnings, unmapped}; an ApiError lists the nodes that do not
 * map in its issues. */
export async function importForeign(api, file) {
  const form = new FormData();
  form.append("file", file, file.name);
  return api.request("POST", "/api/import", form);
}

/** One line for a refused import: the reason, then each node that does not map. */
export function importProblem(error) {
  if (!(error instanceof ApiError) || !error.issues?.length) return error.message;
  const nodes = error.issues.map((issue) => `${issue.node}: ${issue.message}`);
  return `${error.message}: ${nodes.join("; ")}`;
}

/** What the toast after an import says: the source, and how many things only map approximately. */
export function importSummary(file, result) {
  const kind = result.source === "a1111" ? "A1111 parameters" : "ComfyUI workflow";
  const notes = result.warnings.length ? `; ${result.warnings.length} note(s): ${result.warnings.join(" · ")}` : "";
  const left = result.unmapped.length ? `; left out: ${result.unmapped.map((n) => n.id).join(", ")}` : "";
  return `Imported the ${kind} ${file.name} (not saved yet)${notes}${left}`;
}
