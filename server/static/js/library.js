// The graph library through the API (open, save, save as, rename, delete), JSON import and export, PNG drops
// that restore the graph a nodeforge image carries, and the unsaved-changes guard.

import { ApiError } from "./api.js";
import { importForeign, importProblem, importSummary, isForeign } from "./import-foreign.js";
import { graphFromPng } from "./png.js";
import { askText, confirmAction, h, modal, toast } from "./ui.js";

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;

export class Library {
  /** @param {object} editor the page's editor (api, canvas, document state, issue display) */
  constructor(editor) {
    this.editor = editor;
    this.current = { name: "", description: "", readonly: false, ui: {} };
    this.saved = null;
    this.refreshNames();
    window.addEventListener("beforeunload", (event) => {
      if (this.dirty()) {
        event.preventDefault();
        event.returnValue = "";
      }
    });
  }

  get api() { return this.editor.api; }
  get canvas() { return this.editor.canvas; }

  document() {
    return this.canvas.toDocument(this.current);
  }

  /** The document without the view (panning and zooming are not edits). */
  snapshot() {
    const { ui, ...rest } = this.document();
    const { view, ...layout } = ui ?? {};
    return JSON.stringify({ ...rest, ui: layout });
  }

  dirty() {
    return this.saved !== null && this.snapshot() !== this.saved;
  }

  markSaved() {
    this.saved = this.snapshot();
    this.editor.history.keepDraft();  // saved: no draft to offer after a reload
    this.editor.showTitle();
  }

  async refreshNames() {
    try {
      const { graphs } = await this.api.get("/api/graphs");
      this.graphs = graphs;
      this.canvas.setGraphNames(graphs.map((graph) => graph.name));
      return graphs;
    } catch {
      return this.graphs ?? [];
    }
  }

  /** Ask before work would be lost; true when it is fine to go on. */
  async mayDiscard(what) {
    if (!this.dirty()) return true;
    return confirmAction("Unsaved changes", `The graph has changes that are not saved. ${what} anyway?`,
                         "Discard changes", true);
  }

  async newGraph() {
    if (!(await this.mayDiscard("Start a new graph"))) return;
    await this.show({ nodes: {} }, { name: "", readonly: false });
  }

  /** Put a document on the canvas; `origin` says what it is (name, readonly) — a restored one is unsaved. */
  async show(document, { name = document.name ?? "", readonly = false, unsaved = false } = {}) {
    this.current = { name, description: document.description ?? "", readonly, ui: otherUi(document.ui) };
    this.editor.clearIssues();
    await this.canvas.load(document);
    this.saved = unsaved ? "" : this.snapshot();
    this.editor.history.reset();
    this.editor.graphChanged();
  }

  async openDialog() {
    if (!(await this.mayDiscard("Open another graph"))) return;
    const graphs = await this.refreshNames();
    const filter = h("input.field", { placeholder: "Filter graphs…", autofocus: true, spellcheck: false });
    const list = h("ul.graph-list");
    const render = () => {
      const words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
      list.replaceChildren(...graphs.filter((graph) => words.every((word) =>
        `${graph.name} ${graph.description}`.toLowerCase().includes(word))).map((graph) => h("li", {},
        h("button.graph-row", { type: "button", dataset: { name: graph.name }, onclick: () => pick(graph.name) },
          h("span.graph-name", {}, graph.name, graph.readonly ? h("span.tag", {}, "example") : null),
          h("span.graph-description", {}, graph.description || "—"),
          h("span.graph-io", {}, `inputs: ${Object.keys(graph.inputs).join(", ") || "none"} · outputs: `
            + `${graph.outputs.join(", ") || "every sink"}`)))));
    };
    let pick = () => {};
    filter.addEventListener("input", render);
    render();
    const name = await modal({
      title: "Open a graph", className: "wide",
      body: (done) => {
        pick = done;
        return h("div.stack", {}, filter, list);
      },
      buttons: [],
    });
    if (name) await this.open(name);
  }

  async open(name) {
    try {
      const response = await this.api.request("GET", `/api/graphs/${encodeURIComponent(name)}`, undefined,
                                              { raw: true });
      const readonly = response.headers.get("X-Graph-Readonly") === "true";
      await this.show(await response.json(), { name, readonly });
      toast(`Opened ${name}${readonly ? " (an example: saving makes your own copy)" : ""}`, "ok");
    } catch (error) {
      toast(`Cannot open ${name}: ${error.message}`, "error");
    }
  }

  async save() {
    if (!this.current.name) return this.saveAs();
    return this.saveTo(this.current.name);
  }

  async saveAs() {
    const name = await this.askName("Save as", this.current.name ? `${this.current.name}-copy` : "");
    if (!name) return false;
    if (this.graphs?.some((graph) => graph.name === name && !graph.readonly)
        && !(await confirmAction("Replace?", `A graph named '${name}' exists. Replace it?`, "Replace", true))) {
      return false;
    }
    return this.saveTo(name);
  }

  async askName(title, value) {
    for (;;) {
      const name = await askText(title, value, { label: "Graph name", placeholder: "letters, digits, _ . -" });
      if (name === null) return null;
      if (NAME.test(name.trim()) && !name.includes("..") && !name.toLowerCase().endsWith(".json")) return name.trim();
      toast("A name is 1-100 letters, digits, '_', '.', '-', starting with a letter or digit", "warn");
      value = name;
    }
  }

  /** PUT the document; 422 issues are shown on the nodes and nothing is saved. */
  async saveTo(name) {
    const document = { ...this.document(), name };
    try {
      await this.api.put(`/api/graphs/${encodeURIComponent(name)}`, document);
    } catch (error) {
      if (error instanceof ApiError && error.issues) {
        this.editor.showIssues(error.issues, `Not saved: ${error.message}`);
        return false;
      }
      toast(`Not saved: ${error.message}`, "error");
      return false;
    }
    this.editor.clearIssues();
    this.current = { ...this.current, name, readonly: false };
    this.markSaved();
    await this.refreshNames();
    toast(`Saved ${name}`, "ok");
    return true;
  }

  async rename() {
    const old = this.current.name;
    if (!old) return this.saveAs();
    const name = await this.askName(`Rename ${old}`, old);
    if (!name || name === old) return false;
    if (!(await this.saveTo(name))) return false;
    if (!this.current.readonly) {
      try {
        await this.api.delete(`/api/graphs/${encodeURIComponent(old)}`);
      } catch (error) {
        if (error.status !== 403) toast(`Saved as ${name}, but ${old} stays: ${error.message}`, "warn");
      }
    }
    await this.refreshNames();
    toast(`Renamed ${old} to ${name}`, "ok");
    return true;
  }

  async remove() {
    const name = this.current.name;
    if (!name) return;
    if (this.current.readonly) {
      toast(`${name} is a read-only example`, "warn");
      return;
    }
    if (!(await confirmAction("Delete graph", `Delete '${name}' from the library? This cannot be undone.`,
                              "Delete", true))) return;
    try {
      await this.api.delete(`/api/graphs/${encodeURIComponent(name)}`);
    } catch (error) {
      toast(`Not deleted: ${error.message}`, "error");
      return;
    }
    this.current = { ...this.current, name: "", readonly: false };
    this.saved = "";
    await this.refreshNames();
    this.editor.showTitle();
    toast(`Deleted ${name}; the canvas keeps it until you close it`, "ok");
  }

  exportJson() {
    const graph = this.document();
    const blob = new Blob([`${JSON.stringify(graph, null, 2)}\n`], { type: "application/json" });
    const link = h("a", { href: URL.createObjectURL(blob), download: `${this.current.name || "graph"}.json` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  }

  /** Load a dropped or chosen file: a graph JSON, a PNG that nodeforge wrote, or another tool's work (a ComfyUI
   * or A1111 PNG, a ComfyUI WebP; other pictures go to the server too, which says why it cannot read them). */
  async importFile(file) {
    if (!(await this.mayDiscard(`Open ${file.name}`))) return false;
    try {
      const buffer = await file.arrayBuffer();
      const isPng = new Uint8Array(buffer.slice(0, 4)).every((byte, i) => byte === [137, 80, 78, 71][i]);
      if (isOtherPicture(buffer) || await isForeign(buffer, isPng)) return await this.importForeign(file);
      const document = isPng ? await graphFromPng(buffer) : JSON.parse(new TextDecoder().decode(buffer));
      if (!document || typeof document !== "object" || typeof document.nodes !== "object") {
        throw new Error("it is not a nodeforge graph (no \"nodes\")");
      }
      const stem = file.name.replace(/\.[^.]+$/, "");
      await this.show(document, { name: isPng ? "" : (document.name || stem), unsaved: true });
      toast(isPng ? `Restored the graph from ${file.name}` : `Imported ${file.name} (not saved yet)`, "ok");
      return true;
    } catch (error) {
      toast(`Cannot open ${file.name}: ${error.message}`, "error");
      return false;
    }
  }

  /** A ComfyUI workflow or an A1111 PNG, as the graph the server imports it to. */
  async importForeign(file) {
    let result;
    try {
      result = await importForeign(this.api, file);
    } catch (error) {
      toast(`Cannot import ${file.name}: ${importProblem(error)}`, "error");
      return false;
    }
    await this.show(result.document, { name: result.document.name || "", unsaved: true });
    toast(importSummary(file, result), result.warnings.length ? "warn" : "ok");
    return true;
  }
}

/** `ui` keys the editor does not manage itself, kept as they were. */
function otherUi(ui) {
  const { positions, inputs, outputs, view, ...rest } = ui ?? {};
  return view ? { ...rest, view } : rest;
}

/** Whether the bytes are a WebP, JPEG, GIF, BMP or TIFF picture (not a graph, not a PNG). */
function isOtherPicture(buffer) {
  const bytes = new Uint8Array(buffer.slice(0, 12));
  const ascii = (from, to) => String.fromCharCode(...bytes.slice(from, to));
  return (ascii(0, 4) === "RIFF" && ascii(8, 12) === "WEBP") || (bytes[0] === 0xff && bytes[1] === 0xd8)
    || ascii(0, 4) === "GIF8" || ascii(0, 2) === "BM" || ascii(0, 4) === "II*\u0000" || ascii(0, 4) === "MM\u0000*";
}
