// The editor page: loads the catalogue and the model list, builds the canvas, palette, library and run panels,
// and wires the top bar, the side tabs, drops and shortcuts. `window.editor` exposes it (tests drive the page
// with real mouse and keyboard input and read state through it).

import { Api } from "./api.js";
import { openCompareDialog } from "./compare-dialog.js";
import { GraphCanvas } from "./canvas.js";
import { History } from "./history.js";
import { paintMask } from "./mask.js";
import { Library } from "./library.js";
import { DRAG_TYPE, Palette } from "./palette.js";
import { Runs } from "./run.js";
import { GRAPH_INPUT_TYPES, learnLinks } from "./types.js";
import { askText, confirmAction, h, installTooltips, modal, showTooltip, toast } from "./ui.js";

class Editor {
  constructor() {
    this.ready = false;
    this.api = new Api(() => this.askToken());
  }

  async start() {
    const [catalogue, models] = await Promise.all([this.api.get("/api/nodes"),
                                                   this.api.get("/api/models").catch(() => ({ models: [] }))]);
    this.catalogue = catalogue;
    learnLinks(catalogue.links);
    const element = document.getElementById("graph-canvas");
    this.canvas = new GraphCanvas(element, catalogue, models.models, {
      changed: () => this.graphChanged(),
      selected: (info) => this.showNode(info),
      refused: (message, x, y) => toast(`Cannot connect: ${message}`, "error",
                                        Number.isFinite(x) ? { x, y } : null),
      hover: (text, x, y) => showTooltip(text, x, y),
      askText: (title, value) => askText(title, value),
      editLoras: (loras) => this.editLoras(loras),
      graphDocument: (name) => this.api.get(`/api/graphs/${encodeURIComponent(name)}`).catch(() => null),
      addIo: (kind) => this.addIo(kind),
      chooseFile: () => this.chooseUpload(),
      paintMask: (path) => this.paintMaskOn(path),
    });
    this.history = new History(this);
    this.library = new Library(this);
    this.runs = new Runs(this);
    this.palette = new Palette(document.getElementById("palette"), catalogue, (type) => this.addNode(type));
    if (catalogue.problems?.length) {
      toast(`Plugin problems: ${catalogue.problems.map((p) => `${p.plugin}: ${p.reason}`).join("; ")}`, "warn");
    }
    this.wire(element);
    installTooltips(document.body);
    new ResizeObserver(() => this.canvas.resize()).observe(element.parentElement);
    await this.library.show({ nodes: {} }, { name: "" });
    this.runs.loadHistory();
    this.ready = true;
    document.body.dataset.ready = "true";
    await this.offerDraft();
  }

  wire(element) {
    const actions = {
      "new-button": () => this.library.newGraph(),
      "open-button": () => this.library.openDialog(),
      "save-button": () => this.library.save(),
      "save-as-button": () => this.library.saveAs(),
      "rename-button": () => this.library.rename(),
      "delete-button": () => this.library.remove(),
      "export-button": () => this.library.exportJson(),
      "import-button": () => document.getElementById("import-file").click(),
      "add-input-button": () => this.addIo("input"),
      "add-output-button": () => this.addIo("output"),
      "fit-button": () => this.canvas.fit(),
      "compare-button": () => openCompareDialog(this),
    };
    for (const [id, action] of Object.entries(actions)) document.getElementById(id).addEventListener("click", action);
    document.getElementById("import-file").addEventListener("change", async (event) => {
      const [file] = event.target.files;
      if (file) await this.library.importFile(file);
      event.target.value = "";
    });
    document.getElementById("graph-description").addEventListener("input", (event) => {
      this.library.current.description = event.target.value;
      this.graphChanged();
    });
    for (const tab of document.querySelectorAll("[data-tab]")) {
      tab.addEventListener("click", () => this.showTab(tab.dataset.tab));
    }
    document.addEventListener("keydown", (event) => {
      const key = event.key.toLowerCase();
      if (event.key === "?" && !typing(event.target) && !document.querySelector(".backdrop")) {
        event.preventDefault();
        showShortcuts();
        return;
      }
      if (!(event.ctrlKey || event.metaKey)) return;
      if (key === "s") {
        event.preventDefault();
        if (event.shiftKey) this.library.saveAs();
        else this.library.save();
      } else if (key === "g" && !typing(event.target)) {
        event.preventDefault();
        this.canvas.groupSelected();
      } else if (key === "b" && !typing(event.target)) {
        event.preventDefault();
        this.canvas.toggleBypassSelected();
      } else if ((key === "z" || key === "y") && !typing(event.target)) {
        event.preventDefault();
        event.stopPropagation();
        if (key === "y" || event.shiftKey) this.history.redo();
        else this.history.undo();
      }
    }, true);
    const wrap = element.parentElement;
    wrap.addEventListener("dragover", (event) => {
      event.preventDefault();
      wrap.classList.add("drop-target");
    });
    wrap.addEventListener("dragleave", () => wrap.classList.remove("drop-target"));
    wrap.addEventListener("drop", async (event) => {
      event.preventDefault();
      event.stopPropagation();
      wrap.classList.remove("drop-target");
      const type = event.dataTransfer.getData(DRAG_TYPE);
      if (type) {
        this.addNode(type, this.canvas.toGraphPoint(event.clientX, event.clientY));
        return;
      }
      const [file] = event.dataTransfer.files;
      if (file) await this.library.importFile(file);
    }, true);
  }

  addNode(type, pos = null) {
    const id = this.canvas.addNode(type, pos);
    this.showTab("node");
    return id;
  }

  async addIo(kind) {
    const taken = new Set(Object.keys(this.library.document()[`${kind}s`] ?? {}));
    let suggestion = kind === "input" ? "prompt" : "result";
    for (let n = 2; taken.has(suggestion); n++) suggestion = `${kind === "input" ? "prompt" : "result"}_${n}`;
    const name = h("input.field", { value: suggestion, autofocus: true, spellcheck: false });
    const type = h("select.field", {}, GRAPH_INPUT_TYPES.map((t) => h("option", { value: t }, t)));
    const body = h("div.stack", {}, h("label.stack", {}, "Name", name),
                   kind === "input" ? h("label.stack", {}, "Type", type) : null,
                   h("p.hint", {}, kind === "input"
                     ? "Link its socket to the inputs it feeds; runs ask for its value."
                     : "Link a node's output into it; runs return that value under this name."));
    const ok = await modal({ title: `Add a graph ${kind}`, body, buttons: [{ label: "Add", value: true, primary: true }] });
    if (!ok) return null;
    const value = name.value.trim();
    if (!/^[A-Za-z_][A-Za-z0-9_-]*$/.test(value) || taken.has(value)) {
      toast(`'${value}' cannot be used: not a valid name, or already a graph ${kind}`, "warn");
      return null;
    }
    if (kind === "input") this.canvas.addGraphInput(value, type.value);
    else this.canvas.addGraphOutput(value);
    return value;
  }

  async editLoras(loras) {
    const rows = h("div.lora-rows");
    const addRow = (lora = { model: "", weight: 1 }) => {
      const row = h("div.lora-row", {},
        h("input.field.lora-model", { value: lora.model ?? "", placeholder: "file, folder or Hub id",
                                      spellcheck: false }),
        h("input.field.lora-weight", { type: "number", step: 0.05, value: lora.weight ?? 1 }),
        h("button.small", { type: "button", title: "remove", onclick: () => row.remove() }, "✕"));
      rows.append(row);
    };
    loras.forEach((lora) => addRow(lora));
    const body = h("div.stack", {}, rows,
                   h("button.small", { type: "button", onclick: () => addRow() }, "+ Add a LoRA"),
                   h("p.hint", {}, "Each LoRA: a .safetensors file, a folder or a Hub id, and its weight."));
    return modal({ title: "LoRAs", body, buttons: [{ label: "OK", primary: true, value: () =>
      [...rows.querySelectorAll(".lora-row")].map((row) => ({
        model: row.querySelector(".lora-model").value.trim(),
        weight: Number(row.querySelector(".lora-weight").value || 1),
      })).filter((lora) => lora.model) }] });
  }

  askToken() {
    const input = h("input.field", { type: "password", autofocus: true, autocomplete: "current-password" });
    return modal({
      title: "This server needs a token",
      body: h("label.stack", {}, "The token given to nodeforge serve (--token or NODEFORGE_TOKEN). It is kept "
                                 + "for this browser tab only.", input),
      buttons: [{ label: "Use token", value: () => input.value.trim() || undefined, primary: true }],
    });
  }

  // ------------------------------------------------------------------------------------------- page updates
  /** Pick a picture, sound or video on this computer and upload it; its artifact id, or null. */
  chooseUpload() {
    return new Promise((resolve) => {
      const input = h("input", { type: "file", accept: "image/*,audio/*,video/*", hidden: true });
      document.body.append(input);  // a chooser in the page opens more reliably than a detached one
      input.addEventListener("cancel", () => {
        input.remove();
        resolve(null);
      });
      input.addEventListener("change", async () => {
        input.remove();
        const [file] = input.files;
        if (!file) {
          resolve(null);
          return;
        }
        try {
          const uploaded = await this.api.upload(file);
          toast(`Uploaded ${uploaded.filename}`, "ok");
          resolve(uploaded.artifact);
        } catch (error) {
          toast(`Upload failed: ${error.message}`, "error");
          resolve(null);
        }
      });
      input.click();
    });
  }

  /** Paint a mask on the uploaded picture `path` names; the masked copy's artifact id, or null. */
  async paintMaskOn(path) {
    const artifact = /^(?:\/api\/artifacts\/)?([0-9a-f]{32})$/.exec(path.trim())?.[1];
    if (!artifact) {
      toast("Choose the picture with 'choose file…' first: masks are painted on an uploaded picture", "warn");
      return null;
    }
    return paintMask(this.api, artifact);
  }

  /** The unsaved work this tab had before a reload, offered back. */
  async offerDraft() {
    const draft = History.draft();
    if (!draft?.document) return;
    const name = draft.name || "untitled";
    const restore = await confirmAction("Unsaved changes from before the reload",
                                        `Restore your unsaved changes to ${name}?`, "Restore");
    if (restore) await this.library.show(draft.document, { name: draft.name, readonly: draft.readonly, unsaved: true });
    else this.history.keepDraft();
  }

  graphChanged() {
    this.history?.record();
    this.showTitle();
    if (this.library && this.runs) {
      const document = this.library.document();
      this.runs.renderInputs(document);
      const description = document.description ?? "";
      const field = window.document.getElementById("graph-description");
      if (field.value !== description && window.document.activeElement !== field) field.value = description;
    }
  }

  showTitle() {
    if (!this.library) return;
    const { name, readonly } = this.library.current;
    window.document.getElementById("graph-name").textContent = name || "untitled";
    window.document.getElementById("readonly-tag").hidden = !readonly;
    const dirty = this.library.dirty();
    window.document.getElementById("dirty-mark").hidden = !dirty;
    window.document.title = `${dirty ? "• " : ""}${name || "untitled"} — nodeforge`;
  }

  showTab(name) {
    for (const tab of document.querySelectorAll("[data-tab]")) {
      tab.setAttribute("aria-selected", String(tab.dataset.tab === name));
    }
    for (const panel of document.querySelectorAll("[data-panel]")) panel.hidden = panel.dataset.panel !== name;
  }

  showNode(info) {
    const root = document.getElementById("node-info");
    if (!info) {
      root.replaceChildren(h("p.hint", {}, "Select a node to see its documentation. Double-click a title to "
                                           + "rename; right-click for more."));
      return;
    }
    root.replaceChildren(h("div.node-doc", {},
      h("h3", {}, info.title),
      h("p.doc", {}, info.description || ""),
      info.inputs?.length ? h("h4", {}, "Inputs") : null,
      info.inputs?.length ? h("dl.ports", {}, info.inputs.flatMap((spec) => [
        h("dt", {}, spec.name, h("span.input-type", {}, spec.type), spec.required ? h("span.tag", {}, "required") : null),
        h("dd", {}, spec.description || "—")])) : null,
      info.outputs?.length ? h("h4", {}, "Outputs") : null,
      info.outputs?.length ? h("dl.ports", {}, info.outputs.flatMap((spec) => [
        h("dt", {}, spec.name, h("span.input-type", {}, spec.type)), h("dd", {}, spec.description || "—")])) : null,
      info.issues?.length ? h("div.issues", {}, info.issues.map((issue) =>
        h("p.error-line", {}, issue.input ? `${issue.input}: ${issue.message}` : issue.message))) : null));
  }

  /** Validation issues from the API: on the nodes and inputs they name, and listed in the Run panel. */
  showIssues(issues, headline) {
    const loose = this.canvas.setIssues(issues);
    const list = document.getElementById("issues");
    list.hidden = false;
    list.replaceChildren(h("h3", {}, headline), h("ul", {}, issues.map((issue) => h("li", {
      dataset: { node: issue.node ?? "", input: issue.input ?? "", code: issue.code },
      onclick: () => issue.node && this.canvas.select(issue.node),
    }, h("code", {}, [issue.node, issue.input].filter(Boolean).join(".") || "graph"), " ", issue.message))));
    toast(`${headline}${loose.length ? ` — ${loose.map((issue) => issue.message).join("; ")}` : ""}`, "error");
    this.showTab("run");
  }

  clearIssues() {
    this.canvas?.clearIssues();
    const list = document.getElementById("issues");
    list.hidden = true;
    list.replaceChildren();
  }
}

const editor = new Editor();
window.editor = editor;
editor.start().catch((error) => {
  console.error(error);
  toast(`The editor could not start: ${error.message}`, "error");
  document.body.dataset.ready = "failed";
});

/** Whether a key went to a text field (its own undo applies there, not the graph's). */
function typing(target) {
  return target instanceof HTMLElement
    && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
}

const SHORTCUTS = [
  ["Ctrl+Enter", "run the graph"], ["Ctrl+S / Ctrl+Shift+S", "save / save as"],
  ["Ctrl+Z / Ctrl+Shift+Z, Ctrl+Y", "undo / redo"], ["Ctrl+C / Ctrl+V", "copy / paste the selected nodes"],
  ["Alt+drag a node", "clone it"], ["Delete", "remove the selected nodes"], ["Ctrl+B", "bypass the selected nodes"],
  ["Ctrl+G", "group the selected nodes"], ["double-click the canvas", "search a node type, add it there"],
  ["drop a link on the canvas", "search the types that take it, add one linked"],
  ["double-click a title", "rename the node"], ["drag the canvas / wheel", "pan / zoom"], ["?", "this list"],
];

/** The keyboard and mouse shortcuts, in a dialog (the ? key). */
function showShortcuts() {
  const rows = SHORTCUTS.map(([keys, what]) => h("tr", {}, h("th", {}, keys), h("td", {}, what)));
  modal({ title: "Shortcuts", body: h("table.shortcuts", {}, h("tbody", {}, rows)), cancel: null,
          buttons: [{ label: "Close", value: true, primary: true }] });
}
