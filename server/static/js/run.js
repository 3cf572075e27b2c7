// Runs: the graph's inputs as a form, Run (button or Ctrl+Enter) and Cancel, the live state of every node from
// the run's server-sent events, the outputs (images, audio, video, text) and the history of past runs.

import { ApiError } from "./api.js";
import { comparePageButton } from "./compare-dialog.js";
import { inputField } from "./run-inputs.js";
import { h, lightbox, toast } from "./ui.js";

const FINAL = new Set(["succeeded", "failed", "cancelled", "interrupted"]);

export class Runs {
  constructor(editor) {
    this.editor = editor;
    this.values = {};
    this.active = null;
    this.inputsRoot = document.getElementById("run-inputs");
    this.outputsRoot = document.getElementById("outputs");
    this.historyRoot = document.getElementById("history-list");
    this.statusLine = document.getElementById("run-status");
    this.runButton = document.getElementById("run-button");
    this.cancelButton = document.getElementById("cancel-button");
    this.runButton.addEventListener("click", () => this.run());
    this.cancelButton.addEventListener("click", () => this.cancel());
    document.getElementById("history-refresh").addEventListener("click", () => this.loadHistory());
    document.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        this.run();
      }
    }, true);
  }

  get api() { return this.editor.api; }
  get canvas() { return this.editor.canvas; }

  // ------------------------------------------------------------------------------------------- the inputs form
  /** Rebuild the form for the graph's declared inputs (values typed so far are kept by name). */
  renderInputs(document) {
    const inputs = Object.entries(document.inputs ?? {});
    if (!inputs.length) {
      this.inputsRoot.replaceChildren(h("p.hint", {}, "This graph declares no inputs. Add one from the canvas "
                                                       + "menu (right click) or the palette's Graph section."));
      return;
    }
    const field = ([name, decl]) => inputField(name, decl, {
      value: name in this.values ? this.values[name] : decl.default,
      set: (value) => { this.values[name] = value; },
      upload: (file) => this.api.upload(file),
    });
    this.inputsRoot.replaceChildren(...inputs.map(field));
  }

  /** Inputs for the submission: what was typed; declared defaults fill the rest on the server. */
  submissionInputs(document) {
    const inputs = {};
    for (const name of Object.keys(document.inputs ?? {})) {
      if (this.values[name] !== undefined) inputs[name] = this.values[name];
    }
    return inputs;
  }

  // --------------------------------------------------------------------------------------------------- running
  /** Validate and queue the canvas's graph; follow it live. */
  async run() {
    const queued = await this.submit().catch(() => null);  // a refusal is already shown
    if (queued) await this.follow(queued.id, queued.document);
  }

  /** Validate and queue the canvas's graph with `extra` request fields (a sweep): resolves to {id, document};
   * rejects, after showing why (issues on the nodes and in the Run tab), when it is refused or a run is going. */
  async submit(extra = {}) {
    if (this.active && !FINAL.has(this.active.status)) {
      toast("A run is already going; cancel it first", "warn");
      throw new Error("a run is already going; cancel it first");
    }
    const document = this.editor.library.document();
    this.canvas.clearStates();
    this.editor.clearIssues();
    this.setStatus("validating…", "busy");
    try {
      const queued = await this.api.post("/api/runs", { graph: document, inputs: this.submissionInputs(document),
                                                        ...extra });
      for (const id of Object.keys(document.nodes)) this.canvas.setNodeState(id, { status: "queued" });
      return { id: queued.id, document };
    } catch (error) {
      if (error instanceof ApiError && error.issues) {
        this.setStatus(`not run: ${error.issues.length} issue(s)`, "failed");
        this.editor.showIssues(error.issues, `Not run: ${error.message}`);
      } else {
        this.setStatus(`not run: ${error.message}`, "failed");
        toast(`Not run: ${error.message}`, "error");
      }
      throw error;
    }
  }

  async follow(runId, document) {
    const controller = new AbortController();
    this.active = { id: runId, status: "queued", controller, texts: new Map(), streamed: new Map(), document,
                    previews: new Map() };
    this.setStatus(`run ${runId}: queued`, "busy");
    this.runButton.disabled = true;
    this.cancelButton.disabled = false;
    this.outputsRoot.replaceChildren(h("p.hint", {}, `Run ${runId} is queued…`));
    this.loadHistory();
    this.editor.showTab("outputs");
    try {
      await this.api.followRun(runId, (event) => this.onEvent(this.active, event), controller.signal);
    } catch (error) {
      toast(`Lost the run's events: ${error.message}`, "error");
    }
    await this.finish(runId);
  }

  onEvent(run, event) {
    const node = event.node;
    // The engine's one rule from an event to node status, as GET /api/nodes gives it.
    const status = this.editor.catalogue.node_status?.[event.kind];
    if (status) {
      for (const id of event.nodes ?? (node ? [node] : [])) this.canvas.setNodeState(id, { status });
    }
    switch (event.kind) {
      case "run.started":
        run.status = "running";
        this.setStatus(`run ${run.id}: running`, "busy");
        if (!run.texts.size) this.outputsRoot.replaceChildren(h("p.hint", {}, `Run ${run.id} is running…`));
        break;
      case "node.started":
        this.canvas.setNodeState(node, { device: event.device, step: 0, total: null });
        break;
      case "node.progress": {
        // Streamed text arrives as deltas (the stream is replayed from the start, so joining them rebuilds it);
        // `text` is a status line that replaces the last one.
        const text = event.delta != null ? (run.streamed.get(node) ?? "") + event.delta : event.text;
        this.canvas.setNodeState(node, { step: event.step, total: event.total, ...(text != null ? { text } : {}) });
        if (event.delta != null) run.streamed.set(node, text);
        if (text != null) this.showLiveText(run, node, text);
        break;
      }
      case "node.preview":
        this.showStepPreview(run, node, event);
        break;
      case "node.finished":
        this.canvas.setNodeState(node, { seconds: event.seconds });
        break;
      case "node.failed": {
        this.canvas.setNodeState(node, { error: event.error });
        const input = /input '([A-Za-z_][A-Za-z0-9_]*)'/.exec(event.error ?? "")?.[1];
        if (input) this.canvas.flagInput(node, input);
        break;
      }
      case "node.skipped":
        this.canvas.setNodeState(node, { error: event.error ?? null });
        break;
      case "node.warning": {
        const warnings = [...(this.canvas.nodeState(node)?.warnings ?? []), event.text];
        this.canvas.setNodeState(node, { warnings });
        break;
      }
      case "run.finished":
        run.status = event.status;
        run.error = event.error ?? null;
        break;
      default:
        break;
    }
  }

  showLiveText(run, node, text) {
    let block = run.texts.get(node);
    if (!block) {
      if (!run.texts.size) this.outputsRoot.replaceChildren();
      block = h("pre.output-text.live", { dataset: { node } });
      this.outputsRoot.append(h("section.output", {}, h("h3", {}, `${node} `, h("span.tag", {}, "streaming")), block));
      run.texts.set(node, block);
    }
    block.textContent = text;
  }

  async finish(runId) {
    const run = this.active;
    this.runButton.disabled = false;
    this.cancelButton.disabled = true;
    let view;
    try {
      view = await this.api.get(`/api/runs/${runId}`);
    } catch (error) {
      this.setStatus(`run ${runId}: ${run?.status ?? "unknown"}`, run?.status);
      return;
    }
    if (run) run.status = view.status;
    for (const [id, state] of Object.entries(view.nodes)) {
      if (["failed", "cancelled", "skipped"].includes(state.status)) {
        this.canvas.setNodeState(id, { status: state.status, error: state.error });
      }
    }
    for (const node of Object.keys(run?.document?.nodes ?? {})) {
      const shown = this.canvas.nodeState(node)?.status;
      if (shown === "queued" || (shown === "running" && !(node in view.nodes))) this.canvas.setNodeState(node, null);
    }
    const summary = view.error ? `${view.status}: ${view.error}` : view.status;
    this.setStatus(`run ${runId}: ${summary}`, view.status);
    if (view.status !== "succeeded") toast(`Run ${view.status}${view.error ? `: ${view.error}` : ""}`, "warn");
    await this.renderOutputs(view, run?.texts);
    if (run) run.previewsDone = true;  // the final pictures replace the step previews from here on
    if (run?.document) await this.showPreviews(view, run.document);
    this.loadHistory();
  }

  /** A node's step preview, drawn on it while the run goes unless a newer one (or the run's final pictures) came
   * first; one the server no longer keeps (it keeps each node's last few) is left out. */
  async showStepPreview(run, node, event) {
    run.previews.set(node, event.seq);
    const image = new Image();
    try {
      image.src = await this.api.mediaUrl(event.link);
      await image.decode();
    } catch {
      return;
    } finally {
      if (image.src.startsWith("blob:")) URL.revokeObjectURL(image.src);
    }
    if (run.previews.get(node) === event.seq && !run.previewsDone) this.canvas.setNodePreview(node, image);
  }

  /** Each image the run returned, drawn on the node that made it. */
  async showPreviews(view, document) {
    for (const [name, value] of Object.entries(view.outputs ?? {})) {
      const source = String(document.outputs?.[name]?.from ?? "").split(".")[0];
      if (!source || !value?.url || !String(value.media_type).startsWith("image/")) continue;
      const image = new Image();
      image.src = await this.api.mediaUrl(value.url);
      await image.decode().catch(() => null);
      if (image.naturalWidth) this.canvas.setNodePreview(source, image);
    }
  }

  async cancel() {
    const run = this.active;
    if (!run || FINAL.has(run.status)) return;
    try {
      const answer = await this.api.post(`/api/runs/${run.id}/cancel`);
      this.setStatus(`run ${run.id}: ${answer.status}`, "busy");
    } catch (error) {
      toast(`Cannot cancel: ${error.message}`, "warn");
    }
  }

  setStatus(text, kind) {
    this.statusLine.textContent = text;
    this.statusLine.title = text;
    this.statusLine.dataset.kind = kind ?? "";
  }

  // --------------------------------------------------------------------------------------------------- outputs
  async renderOutputs(view, live = null) {
    const sections = [];
    for (const [name, value] of Object.entries(view.outputs ?? {})) {
      sections.push(h("section.output", { dataset: { output: name } }, h("h3", {}, name),
                      ...(await this.renderValue(value, name))));
    }
    const failed = Object.entries(view.nodes ?? {}).filter(([, node]) => node.status === "failed");
    const header = h("div.output-head", {},
      h("span.pill", { dataset: { status: view.status } }, view.status),
      h("span", {}, `${view.graph} · run ${view.id}`),
      Object.keys(view.seeds ?? {}).length
        ? h("span.hint", {}, `seeds: ${Object.entries(view.seeds).map(([k, v]) => `${k}=${v}`).join(", ")}`) : null,
      comparePageButton(this.api, view));
    const errors = failed.map(([id, node]) => h("p.error-line", {}, `${id}: ${node.error}`));
    const streamed = live && live.size && !sections.length
      ? [...live].map(([node, block]) => h("section.output", {}, h("h3", {}, node), block)) : [];
    const empty = sections.length || streamed.length ? [] : [h("p.hint", {}, "No outputs.")];
    this.outputsRoot.replaceChildren(header, ...errors, ...sections, ...streamed, ...empty);
  }

  async renderValue(value, name) {
    if (Array.isArray(value)) {
      const parts = [];
      for (const [i, item] of value.entries()) parts.push(...(await this.renderValue(item, `${name}_${i}`)));
      return [h("div.output-list", {}, parts)];
    }
    if (value && typeof value === "object" && value.url && value.media_type) {
      const src = await this.api.mediaUrl(value.url);
      const filename = value.filename ?? name;
      const kind = value.media_type.split("/")[0];
      const download = h("a.button.small", { href: src, download: filename }, "Download");
      if (kind === "image") {
        const image = h("img.output-image", { src, alt: name, title: "click to enlarge",
                                              onclick: () => lightbox(src, filename) });
        return [h("figure", {}, image, h("figcaption", {}, filename, " ", download))];
      }
      if (kind === "audio") return [h("audio", { controls: true, src, preload: "metadata" }), download];
      if (kind === "video") return [h("video", { controls: true, src, preload: "metadata", loop: true }), download];
      return [download];
    }
    if (typeof value === "string") return [h("pre.output-text", {}, value)];
    return [h("pre.output-text", {}, JSON.stringify(value, null, 2))];
  }

  // --------------------------------------------------------------------------------------------------- history
  async loadHistory() {
    let runs;
    try {
      ({ runs } = await this.api.get("/api/runs?limit=50"));
    } catch (error) {
      this.historyRoot.replaceChildren(h("p.hint", {}, `History unavailable: ${error.message}`));
      return;
    }
    if (!runs.length) {
      this.historyRoot.replaceChildren(h("p.hint", {}, "No runs yet."));
      return;
    }
    const waiting = runs.filter((run) => run.status === "queued" || run.status === "running");
    const queue = waiting.length ? h("li.history-queue", {}, `Queue: ${waiting.filter((r) => r.status === "running")
      .length} running, ${waiting.filter((r) => r.status === "queued").length} queued`) : null;
    this.historyRoot.replaceChildren(queue ?? "", ...runs.map((run) => h("li.history-row", { dataset: { run: run.id } },
      h("span.pill", { dataset: { status: run.status } }, run.status),
      h("span.history-graph", {}, run.graph),
      h("span.history-time", { title: run.created_at ?? "" }, shortTime(run.created_at)),
      h("span.history-actions", {},
        waiting.includes(run)
          ? h("button.small.danger", { type: "button", onclick: () => this.cancelRun(run.id) }, "Cancel") : null,
        h("button.small", { type: "button", onclick: () => this.showRun(run.id) }, "Outputs"),
        h("button.small", { type: "button", onclick: () => this.reopen(run.id) }, "Open graph")),
      run.error ? h("p.error-line", {}, run.error) : null)));
    clearTimeout(this.historyTimer);
    if (waiting.length) this.historyTimer = setTimeout(() => this.loadHistory(), 1500);  // the queue moves on
  }

  /** Cancel a queued or running run from the history's queue. */
  async cancelRun(runId) {
    try {
      const { status } = await this.api.post(`/api/runs/${runId}/cancel`);
      toast(`Run ${runId}: ${status}`, "ok");
    } catch (error) {
      toast(`Cannot cancel run ${runId}: ${error.message}`, "error");
    }
    this.loadHistory();
  }

  /** A past run's outputs in the Outputs panel. */
  async showRun(runId) {
    try {
      const view = await this.api.get(`/api/runs/${runId}`);
      await this.renderOutputs(view);
      this.editor.showTab("outputs");
      return view;
    } catch (error) {
      toast(`Cannot show run ${runId}: ${error.message}`, "error");
      return null;
    }
  }

  /** A past run's graph back on the canvas (unsaved), with its node states and outputs. */
  async reopen(runId) {
    if (!(await this.editor.library.mayDiscard("Open that run's graph"))) return;
    try {
      const document = await this.api.get(`/api/runs/${runId}/graph`);
      const view = await this.api.get(`/api/runs/${runId}`);
      await this.editor.library.show(document, { name: "", unsaved: true });
      this.values = { ...view.inputs };
      this.renderInputs(document);
      for (const [id, node] of Object.entries(view.nodes)) {
        this.canvas.setNodeState(id, { status: node.status, error: node.error, seconds: node.seconds });
      }
      await this.renderOutputs(view);
      this.editor.showTab("outputs");
      toast(`Opened the graph of run ${runId} (${view.graph}); save it to keep it`, "ok");
    } catch (error) {
      toast(`Cannot open run ${runId}: ${error.message}`, "error");
    }
  }
}

function shortTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}
