// The one module that knows the canvas library (@comfyorg/litegraph). Everything else talks to `GraphCanvas`
// in terms of the graph document (design.md section 2): node ids, named ports, links, graph inputs and outputs,
// layout in `ui`. Swapping the library means rewriting this file only.

import {
  LGraph, LGraphBadge, LGraphCanvas, LGraphNode, LiteGraph, RenderShape,
} from "../node_modules/@comfyorg/litegraph/dist/litegraph.es.js";
import { decimals, formatTyped, isReference, looksLikeBinding, parseTyped, refOf, unwrapValue } from "./bindings.js";
import { drawNotes } from "./drawing.js";
import { layoutColumns, placeInColumns } from "./layout.js";
import { initialValue, inputSpec, inputSpecs, modelChoices, outputSpecs, prose } from "./schema.js";
import { ANY, colourOf, GRAPH_INPUT_TYPES, linkAllowed, listItem, refusal } from "./types.js";

const INPUT_TYPE = "nodeforge/graph input";
const OUTPUT_TYPE = "nodeforge/graph output";
const UNKNOWN_TYPE = "nodeforge/unknown";
const OTHER_MODEL = "other…";
const NODE_ID = /^[A-Za-z_][A-Za-z0-9_-]*$/;
const SLOT_INPUT = 1;
const STATUS_COLOURS = {
  queued: "#8a8a8a", running: "#4aa3ff", cached: "#8e7cc3", succeeded: "#6aa84f", failed: "#e06666",
  skipped: "#777777", cancelled: "#f1c232",
};
const STATUS_LABELS = { succeeded: "done" };

/** Hooks the page gives the canvas (dialogs and panels live outside the adapter). */
const NO_HOOKS = {
  changed() {}, selected() {}, refused() {}, hover() {},
  askText: async () => null, editLoras: async () => null, graphDocument: async () => null,
};

export class GraphCanvas {
  /**
   * @param {HTMLCanvasElement} element
   * @param {{nodes: object[]}} catalogue GET /api/nodes
   * @param {object[]} models GET /api/models `models`
   * @param {object} hooks see NO_HOOKS
   */
  constructor(element, catalogue, models, hooks) {
    this.element = element;
    this.entries = new Map(catalogue.nodes.map((entry) => [entry.type, entry]));
    this.models = models;
    this.hooks = { ...NO_HOOKS, ...hooks };
    this.graphNames = [];
    this.loading = false;
    configureLibrary();
    this.graph = new LGraph();
    this.canvas = new LGraphCanvas(element, this.graph, { skip_render: false });
    this.canvas.allow_searchbox = false;
    this.canvas.render_canvas_border = false;
    this.canvas.show_info = false;
    this.canvas.links_render_mode = LiteGraph.SPLINE_LINK;
    this.canvas.default_connection_color_byType = Object.fromEntries(GRAPH_INPUT_TYPES.map((t) => [t, colourOf(t)]));
    this.canvas.default_connection_color_byTypeOff = this.canvas.default_connection_color_byType;
    this.canvas.onNodeSelected = (node) => this.hooks.selected(this.describe(node));
    this.canvas.onNodeDeselected = () => this.hooks.selected(null);
    this.canvas.getCanvasMenuOptions = () => this.canvasMenu();
    this.graph.onNodeAdded = () => this.changed();
    this.graph.onNodeRemoved = () => this.changed();
    this.canvas.linkConnector.events.addEventListener("after-drop-links", (event) => this.afterDrop(event.detail));
    element.addEventListener("pointermove", (event) => this.hover(event));
    element.addEventListener("pointerleave", () => this.hooks.hover(null));
    element.addEventListener("pointerup", () => this.changed());
    this.registerTypes();
    this.resize();
  }

  // ---------------------------------------------------------------------------------------------------- set-up
  registerTypes() {
    for (const entry of this.entries.values()) {
      const editor = this;
      class CatalogueNode extends LGraphNode {
        constructor(title) {
          super(title ?? entry.type);
          editor.setUpNode(this, entry);
        }
      }
      CatalogueNode.title = entry.title;
      LiteGraph.registerNodeType(`${entry.category}/${entry.type}`, CatalogueNode);
    }
    const editor = this;
    class GraphInputNode extends LGraphNode {
      constructor(title) {
        super(title ?? "input");
        editor.setUpInputNode(this);
      }
    }
    class GraphOutputNode extends LGraphNode {
      constructor(title) {
        super(title ?? "output");
        editor.setUpOutputNode(this);
      }
    }
    class UnknownNode extends LGraphNode {}
    LiteGraph.registerNodeType(INPUT_TYPE, GraphInputNode);
    LiteGraph.registerNodeType(OUTPUT_TYPE, GraphOutputNode);
    LiteGraph.registerNodeType(UNKNOWN_TYPE, UnknownNode);
  }

  resize() {
    const box = this.element.parentElement.getBoundingClientRect();
    this.canvas.resize(Math.max(1, Math.floor(box.width)), Math.max(1, Math.floor(box.height)));
    this.canvas.setDirty(true, true);
  }

  /** The choices a model picker offers: the registry's models of its kinds, its current value, "other…". */
  refreshChoices(widget) {
    widget.options.values = [...modelChoices(widget.nf_models, this.models, widget.value), OTHER_MODEL];
  }

  setGraphNames(names) {
    this.graphNames = names;
    for (const node of this.nodes()) {
      for (const widget of node.widgets ?? []) if (widget.nf_graphs) widget.options.values = names;
    }
  }

  // ------------------------------------------------------------------------------------------------ node set-up
  setUpNode(node, entry) {
    node.nf = { kind: "node", type: entry.type, entry, id: "", version: null, explicit: new Set(), specs: new Map(),
                extras: [], state: null, issues: [], listLiterals: {}, strays: {} };
    node.title = entry.type;
    node.color = "#2b2f36";
    node.bgcolor = "#1e2126";
    node.badges = [new LGraphBadge({ text: entry.type, fgColor: "#c9d1d9", bgColor: "#3a3f48" })];
    for (const spec of inputSpecs(entry)) this.addPort(node, spec);
    for (const output of outputSpecs(entry)) this.addOutputSlot(node, output.name, output.type);
    node.onConnectionsChange = (kind, index, connected) => this.connectionsChanged(node, kind, index, connected);
    node.onDrawForeground = (ctx) => this.drawNodeState(node, ctx);
    node.onNodeTitleDblClick = () => this.renameNode(node);
    node.getExtraMenuOptions = (_, options) => this.nodeMenu(node, options);
    node.size = node.computeSize();
    node.size[0] = Math.max(node.size[0], 260);
  }

  setUpInputNode(node) {
    node.nf = { kind: "input", name: "input", state: null, issues: [] };
    node.color = "#24402f";
    node.bgcolor = "#1b2a21";
    node.addOutput("value", "text", slotLook("text"));
    const typeWidget = node.addWidget("combo", "type", "text", (value) => this.retypeInput(node, value),
                                      { values: GRAPH_INPUT_TYPES });
    typeWidget.tooltip = "the input's type";
    node.addWidget("text", "default", "", () => this.changed(), {});
    node.addWidget("toggle", "required", false, () => this.changed(), { on: "yes", off: "no (uses the default)" });
    node.addWidget("text", "description", "", () => this.changed(), {});
    node.onNodeTitleDblClick = () => this.renameNode(node);
    node.onDrawForeground = (ctx) => this.drawNodeState(node, ctx);
    node.size = [260, node.computeSize()[1]];
  }

  setUpOutputNode(node) {
    node.nf = { kind: "output", name: "output", state: null, issues: [] };
    node.color = "#402f24";
    node.bgcolor = "#2a211b";
    node.addInput("value", ANY, slotLook(ANY));
    node.addWidget("text", "description", "", () => this.changed(), {});
    node.onConnectionsChange = (kind, index, connected, link) => {
      if (connected && link) link.type = this.graph.getNodeById(link.origin_id)?.outputs[link.origin_slot]?.type;
      this.changed();
    };
    node.onNodeTitleDblClick = () => this.renameNode(node);
    node.onDrawForeground = (ctx) => this.drawNodeState(node, ctx);
    node.size = [240, node.computeSize()[1]];
  }

  /** One input port: a socket on a widget for literals, a plain socket for media, growing sockets for lists. */
  addPort(node, spec) {
    node.nf.specs.set(spec.name, spec);
    if (spec.kind === "slot") {
      node.addInput(spec.name, spec.type, { ...slotLook(spec.type), nf_port: spec.name, label: spec.name });
      return;
    }
    if (spec.kind === "list") {
      this.addListSlot(node, spec, node.inputs?.length ?? 0);
      if (spec.literal) {
        const widget = node.addWidget("text", spec.name, "", () => this.widgetChanged(node, spec.name), {});
        widget.label = `${spec.name} (JSON list)`;
        widget.tooltip = spec.description;
      }
      return;
    }
    const widget = this.addWidgetFor(node, spec);
    widget.tooltip = spec.description;
    node.addInput(spec.name, spec.type, { ...slotLook(spec.type), widget: { name: spec.name }, nf_port: spec.name });
  }

  addWidgetFor(node, spec) {
    const changed = () => this.widgetChanged(node, spec.name);
    const value = initialValue(spec);
    switch (spec.kind) {
      case "number": {
        const widget = node.addWidget("number", spec.name, value, (v) => {
          if (spec.integer && Number.isFinite(v) && !Number.isInteger(v)) widget.value = Math.round(v);
          changed();
        }, { min: spec.min, max: spec.max, step2: spec.step, precision: spec.integer ? 0 : decimals(spec.step) });
        return widget;
      }
      case "seed": {
        const widget = node.addWidget("number", spec.name, value, (v) => {
          if (!Number.isInteger(v)) widget.value = Math.round(v);
          changed();
        }, { min: 0, max: 2 ** 32 - 1, step2: 1, precision: 0 });
        const random = node.addWidget("toggle", `${spec.name}:random`, false, (on) => {
          widget.disabled = on;
          changed();
        }, { on: "random each run", off: "fixed" });
        random.label = "seed mode";
        random.tooltip = "random each run: a new seed every run (the run records it)";
        const dice = node.addWidget("button", `${spec.name}:new`, null, () => {
          widget.value = Math.floor(Math.random() * 2 ** 31);
          random.value = false;
          widget.disabled = false;
          changed();
          node.setDirtyCanvas(true, true);
        }, {});
        dice.label = "randomise seed";
        return widget;
      }
      case "combo":
        return node.addWidget("combo", spec.name, value, changed, { values: spec.values });
      case "toggle":
        return node.addWidget("toggle", spec.name, Boolean(value), changed, {});
      case "model": {
        const widget = node.addWidget("combo", spec.name, value, (v) => {
          if (v !== OTHER_MODEL) {
            changed();
            return;
          }
          widget.value = widget.nf_previous ?? "";
          this.hooks.askText(`Model for ${node.nf.id}.${spec.name} (a name, a Hub id or a path)`, widget.value)
            .then((text) => {
              if (text === null) return;
              widget.value = text.trim();
              widget.nf_previous = widget.value;
              this.refreshChoices(widget);
              changed();
              node.setDirtyCanvas(true, true);
            });
        }, { values: [] });
        widget.nf_models = spec;
        const remember = widget.callback;
        widget.callback = (v, ...rest) => {
          remember(v, ...rest);
          if (v !== OTHER_MODEL) widget.nf_previous = widget.value;
          this.refreshChoices(widget);
        };
        widget.nf_previous = value;
        this.refreshChoices(widget);
        return widget;
      }
      case "graph": {
        const widget = node.addWidget("combo", spec.name, value, () => {
          changed();
          this.refreshCallPorts(node);
        }, { values: this.graphNames });
        widget.nf_graphs = true;
        return widget;
      }
      case "loras": {
        const widget = node.addWidget("button", spec.name, [], () => {
          this.hooks.editLoras(widget.nf_value ?? []).then((loras) => {
            if (loras === null) return;
            setLoras(widget, loras);
            changed();
            node.setDirtyCanvas(true, true);
          });
        }, {});
        setLoras(widget, []);
        return widget;
      }
      case "json":
        return node.addWidget("text", spec.name, value === null ? "" : JSON.stringify(value), changed,
                              { multiline: true });
      default:
        return node.addWidget("text", spec.name, value, changed, { multiline: Boolean(spec.multiline) });
    }
  }

  addListSlot(node, spec, index) {
    const count = node.inputs?.filter((slot) => slot.nf_port === spec.name).length ?? 0;
    const slot = node.addInput(spec.name, spec.type, {
      ...slotLook(spec.type), shape: RenderShape.GRID, nf_port: spec.name, nf_list: true,
      label: `${spec.name} ${count + 1}`,
    });
    moveInput(node, node.inputs.length - 1, index);
    return slot;
  }

  addOutputSlot(node, name, type) {
    node.addOutput(name, type, { ...slotLook(type), ...(listItem(type) ? { shape: RenderShape.GRID } : {}) });
  }

  widgetChanged(node, name) {
    node.nf.explicit.add(name);
    if (node.nf.type === "text.template" && name === "template") this.syncTemplateInputs(node);
    this.changed();
  }

  /** text.template: an input for every `{name}` the template uses (unlinked, empty leftovers go away). */
  syncTemplateInputs(node) {
    const template = String(widgetOf(node, "template")?.value ?? "");
    const wanted = [...template.matchAll(/\{([A-Za-z_][A-Za-z0-9_]*)\}/g)].map((m) => m[1]);
    for (const name of wanted) {
      if (!node.nf.specs.has(name)) this.addExtraInput(node, name);
    }
    for (const name of [...node.nf.extras]) {
      const slot = node.inputs.find((s) => s.nf_port === name);
      const widget = widgetOf(node, name);
      if (!wanted.includes(name) && slot?.link == null && !widget?.value) this.removeExtraInput(node, name);
    }
  }

  addExtraInput(node, name) {
    const type = node.nf.entry.extra_inputs ?? "text";
    const spec = inputSpec(node.nf.type, name, { "x-nodeforge-type": type, description: `{${name}} in the template` },
                           true);
    node.nf.extras.push(name);
    this.addPort(node, spec);
    node.setSize([node.size[0], node.computeSize()[1]]);
  }

  removeExtraInput(node, name) {
    const index = node.inputs.findIndex((slot) => slot.nf_port === name);
    if (index >= 0) node.removeInput(index);
    node.removeWidgetByName(name);
    node.nf.extras = node.nf.extras.filter((extra) => extra !== name);
    node.nf.specs.delete(name);
    node.nf.explicit.delete(name);
    node.setSize([node.size[0], node.computeSize()[1]]);
  }

  /** graph.call: ports follow the called graph's declared inputs and outputs. */
  async refreshCallPorts(node, values = {}) {
    const name = widgetOf(node, "graph")?.value;
    const document = name ? await this.hooks.graphDocument(name) : null;
    for (const extra of [...node.nf.extras]) this.removeExtraInput(node, extra);
    while (node.outputs?.length) node.removeOutput(0);
    if (!document) return;
    for (const [input, decl] of Object.entries(document.inputs ?? {})) {
      const spec = inputSpec("graph.call", input, { "x-nodeforge-type": decl.type, description: decl.description,
                                                    ...(decl.default !== undefined ? { default: decl.default } : {}) },
                             decl.default === undefined || decl.default === null);
      node.nf.extras.push(input);
      this.addPort(node, spec);
      if (input in values) this.setLiteral(node, spec, values[input]);
    }
    for (const [output, decl] of Object.entries(document.outputs ?? {})) {
      this.addOutputSlot(node, output, this.outputTypeIn(document, decl.from));
    }
    node.setSize([Math.max(node.size[0], 260), node.computeSize()[1]]);
    this.canvas.setDirty(true, true);
  }

  outputTypeIn(document, from) {
    const [nodeId, output] = String(from ?? "").split(".");
    const entry = this.entries.get(document.nodes?.[nodeId]?.type);
    return entry?.outputs?.properties?.[output]?.["x-nodeforge-type"] ?? ANY;
  }

  retypeInput(node, type) {
    const slot = node.outputs[0];
    slot.type = type;
    Object.assign(slot, slotLook(type));
    for (const linkId of [...(slot.links ?? [])]) {
      const link = this.graph.links.get?.(linkId) ?? this.graph.links[linkId];
      const target = link && this.graph.getNodeById(link.target_id);
      const input = target?.inputs[link.target_slot];
      if (input && !linkAllowed(type, input.type)) {
        target.disconnectInput(link.target_slot);
        this.hooks.refused(`graph input '${node.nf.name}' is now ${type}; ${target.nf.id}.${input.nf_port ?? input.name} `
                           + `takes ${input.type}, so that link was removed`);
      }
    }
    this.changed();
    this.canvas.setDirty(true, true);
  }

  /** List inputs keep exactly one free socket at their end; single links replace. */
  connectionsChanged(node, kind, index, connected) {
    if (this.loading || kind !== SLOT_INPUT) return this.changed();
    const slot = node.inputs[index];
    if (!slot?.nf_list) return this.changed();
    queueMicrotask(() => {
      this.tidyListSlots(node, slot.nf_port);
      this.changed();
    });
  }

  tidyListSlots(node, port) {
    const spec = node.nf.specs.get(port);
    const indices = () => node.inputs.map((s, i) => (s.nf_port === port ? i : -1)).filter((i) => i >= 0);
    let slots = indices();
    for (const i of [...slots].reverse()) {
      if (indices().length > 1 && node.inputs[i].link == null) node.removeInput(i);
    }
    slots = indices();
    const last = slots.at(-1);
    if (node.inputs[last].link != null) this.addListSlot(node, spec, last + 1);
    indices().forEach((i, n) => { node.inputs[i].label = `${port} ${n + 1}`; });
    const widget = widgetOf(node, port);
    if (widget) widget.disabled = indices().some((i) => node.inputs[i].link != null);
    node.setSize([node.size[0], Math.max(node.size[1], node.computeSize()[1])]);
    this.canvas.setDirty(true, true);
  }

  // ----------------------------------------------------------------------------------------------- adding nodes
  uniqueId(base) {
    const taken = new Set(this.nodes().map((node) => node.nf.id ?? node.nf.name));
    const stem = base.replace(/[^A-Za-z0-9_-]/g, "_").replace(/^[^A-Za-z_]/, "n$&") || "node";
    if (!taken.has(stem)) return stem;
    for (let n = 2; ; n++) if (!taken.has(`${stem}_${n}`)) return `${stem}_${n}`;
  }

  /** A new node of a catalogue type; at `pos` (graph coordinates) or the middle of the view. Returns its id. */
  addNode(type, pos = null, id = null) {
    const entry = this.entries.get(type);
    if (!entry) throw new Error(`unknown node type ${type}`);
    const node = LiteGraph.createNode(`${entry.category}/${entry.type}`);
    const [family, name] = type.split(".");
    node.nf.id = id ?? this.uniqueId(name === "value" ? family : name);
    node.title = node.nf.id;
    node.pos = pos ?? this.freeSpot();
    this.graph.add(node);
    this.canvas.selectNode(node);
    this.changed();
    return node.nf.id;
  }

  addGraphInput(name, type = "text", pos = null) {
    const node = LiteGraph.createNode(INPUT_TYPE);
    node.nf.name = name;
    node.title = `input: ${name}`;
    widgetOf(node, "type").value = type;
    this.retypeInput(node, type);
    node.pos = pos ?? this.freeSpot();
    this.graph.add(node);
    this.changed();
    return node;
  }

  addGraphOutput(name, pos = null) {
    const node = LiteGraph.createNode(OUTPUT_TYPE);
    node.nf.name = name;
    node.title = `output: ${name}`;
    node.pos = pos ?? this.freeSpot();
    this.graph.add(node);
    this.changed();
    return node;
  }

  freeSpot() {
    const [x, y] = this.canvas.ds.convertCanvasToOffset([this.element.width / 2 - 130, this.element.height / 3]);
    const jitter = (this.graph.nodes.length % 6) * 24;
    return [Math.round(x + jitter), Math.round(y + jitter)];
  }

  /** Graph coordinates of a point in the page (for drops from the palette). */
  toGraphPoint(clientX, clientY) {
    const box = this.element.getBoundingClientRect();
    return this.canvas.ds.convertCanvasToOffset([clientX - box.left, clientY - box.top]);
  }

  // ------------------------------------------------------------------------------------------------ the document
  nodes() {
    return this.graph.nodes;
  }

  findNode(id) {
    return this.nodes().find((node) => node.nf?.kind === "node" && node.nf.id === id)
      ?? this.nodes().find((node) => node.nf?.kind === "unknown" && node.nf.id === id) ?? null;
  }

  findIo(kind, name) {
    return this.nodes().find((node) => node.nf?.kind === kind && node.nf.name === name) ?? null;
  }

  /** The graph document the canvas shows (`base` supplies name, description and unknown `ui` keys). */
  toDocument(base = {}) {
    const document = { schema: "nodeforge/graph@1", name: base.name ?? "", description: base.description ?? "",
                       inputs: {}, nodes: {}, outputs: {}, ui: { ...(base.ui ?? {}) } };
    const positions = {};
    const inputsAt = {};
    const outputsAt = {};
    const ordered = [...this.nodes()].sort((a, b) => a.pos[0] - b.pos[0] || a.pos[1] - b.pos[1]);
    for (const node of ordered) {
      const at = [Math.round(node.pos[0]), Math.round(node.pos[1])];
      if (node.nf.kind === "input") {
        document.inputs[node.nf.name] = this.inputDecl(node);
        inputsAt[node.nf.name] = at;
      } else if (node.nf.kind === "output") {
        const link = this.linkInto(node, node.inputs[0]);
        const description = String(widgetOf(node, "description").value ?? "");
        if (link?.from) document.outputs[node.nf.name] = { from: link.from, ...(description ? { description } : {}) };
        outputsAt[node.nf.name] = at;
      } else if (node.nf.kind === "unknown") {
        document.nodes[node.nf.id] = node.nf.raw;
        positions[node.nf.id] = at;
      } else {
        document.nodes[node.nf.id] = this.nodeDoc(node);
        positions[node.nf.id] = at;
      }
    }
    document.ui = { ...document.ui, positions, inputs: inputsAt, outputs: outputsAt,
                    view: { offset: [...this.canvas.ds.offset].map(Math.round), scale: this.canvas.ds.scale } };
    return document;
  }

  inputDecl(node) {
    const type = widgetOf(node, "type").value;
    const text = String(widgetOf(node, "default").value ?? "");
    const required = Boolean(widgetOf(node, "required").value);
    const description = String(widgetOf(node, "description").value ?? "");
    const decl = { type };
    if (!required) decl.default = parseTyped(type, text);
    if (description) decl.description = description;
    return decl;
  }

  /** A node as the document writes it; inputs its type does not know are kept as they were, for validation. */
  nodeDoc(node) {
    const inputs = { ...node.nf.strays };
    for (const spec of node.nf.specs.values()) {
      const binding = this.bindingOf(node, spec);
      if (binding !== undefined) inputs[spec.name] = binding;
    }
    return { type: node.nf.type, ...(node.nf.version ? { version: node.nf.version } : {}), inputs };
  }

  bindingOf(node, spec) {
    const slots = node.inputs.filter((slot) => slot.nf_port === spec.name);
    if (spec.kind === "list") {
      const items = slots.filter((slot) => slot.link != null).map((slot) => this.linkInto(node, slot))
        .filter(Boolean).map(refOf);
      if (items.length) return [...items, ...(node.nf.listLiterals[spec.name] ?? [])];
      const text = String(widgetOf(node, spec.name)?.value ?? "").trim();
      if (!text) return undefined;
      try {
        return JSON.parse(text);
      } catch {
        return text;
      }
    }
    const linked = slots[0]?.link != null ? this.linkInto(node, slots[0]) : null;
    if (linked) return refOf(linked);
    if (spec.kind === "slot") return undefined;
    const widget = widgetOf(node, spec.name);
    if (!widget) return undefined;
    if (spec.kind === "seed" && widgetOf(node, `${spec.name}:random`)?.value) return -1;
    let value = spec.kind === "loras" ? (widget.nf_value ?? []) : widget.value;
    if (spec.kind === "json") {
      const text = String(value ?? "").trim();
      if (!text) return undefined;
      try {
        value = JSON.parse(text);
      } catch {
        return text;
      }
      if (looksLikeBinding(value)) value = { value };
    }
    const isDefault = JSON.stringify(value) === JSON.stringify(spec.default);
    if (!spec.required && !node.nf.explicit.has(spec.name) && (isDefault || spec.default === undefined)) {
      return undefined;
    }
    if (spec.kind === "loras" && !node.nf.explicit.has(spec.name) && !value.length) return undefined;
    return value;
  }

  /** {from: "node.output"} or {input: name} for the link into a slot. */
  linkInto(node, slot) {
    if (slot?.link == null) return null;
    const link = this.graph.links.get?.(slot.link) ?? this.graph.links[slot.link];
    if (!link) return null;
    const origin = this.graph.getNodeById(link.origin_id);
    if (!origin) return null;
    if (origin.nf.kind === "input") return { input: origin.nf.name };
    return { from: `${origin.nf.id}.${origin.outputs[link.origin_slot]?.name}` };
  }

  /** Show a document: nodes, links, graph inputs and outputs, layout from `ui` (or laid out when absent). */
  async load(document) {
    this.loading = true;
    try {
      this.graph.clear();
      const ui = document.ui ?? {};
      const positions = ui.positions ?? {};
      const unplaced = new Map();
      const nodes = document.nodes ?? {};
      for (const [name, decl] of Object.entries(document.inputs ?? {})) {
        const node = this.addGraphInput(name, decl.type ?? "text", ui.inputs?.[name] ?? [0, 0]);
        if (!ui.inputs?.[name]) unplaced.set(`input:${name}`, node);
        const required = decl.default === undefined || decl.default === null;
        widgetOf(node, "required").value = required;
        widgetOf(node, "default").value = required ? "" : formatTyped(decl.default);
        widgetOf(node, "description").value = decl.description ?? "";
      }
      for (const [id, doc] of Object.entries(nodes)) {
        const at = positions[id] ?? [0, 0];
        if (!this.entries.has(doc?.type)) {
          const unknown = this.addUnknown(id, doc, at);
          if (!positions[id]) unplaced.set(id, unknown);
          continue;
        }
        const node = LiteGraph.createNode(`${this.entries.get(doc.type).category}/${doc.type}`);
        node.nf.id = id;
        node.nf.version = doc.version ?? null;
        node.title = id;
        node.pos = at;
        this.graph.add(node);
        if (!positions[id]) unplaced.set(id, node);
        const given = doc.inputs ?? {};
        if (node.nf.entry.extra_inputs && !node.nf.entry.dynamic_ports) {
          for (const name of Object.keys(given)) if (!node.nf.specs.has(name)) this.addExtraInput(node, name);
        }
        if (doc.type === "graph.call") {
          this.setLiteral(node, node.nf.specs.get("graph"), given.graph);
          await this.refreshCallPorts(node, given);
        }
        for (const [name, value] of Object.entries(given)) {
          const spec = node.nf.specs.get(name);
          if (!spec) node.nf.strays[name] = value;
          else if (!isReference(value)) this.setLiteral(node, spec, value);
        }
      }
      for (const [name, decl] of Object.entries(document.outputs ?? {})) {
        const node = this.addGraphOutput(name, ui.outputs?.[name] ?? [0, 0]);
        if (!ui.outputs?.[name]) unplaced.set(`output:${name}`, node);
        widgetOf(node, "description").value = decl.description ?? "";
      }
      this.loadLinks(document);
      for (const node of this.nodes()) {
        if (node.nf.kind === "node") {
          for (const spec of node.nf.specs.values()) if (spec.kind === "list") this.tidyListSlots(node, spec.name);
          node.setSize([node.size[0], Math.max(node.size[1], node.computeSize()[1])]);
        }
      }
      for (const node of this.nodes()) arrange(node);
      if (unplaced.size) {
        const columns = layoutColumns(document);
        const boxes = [...unplaced].map(([key, node]) => ({ key, column: columns.get(key) ?? 0,
                                                             width: node.size[0], height: node.size[1] }));
        const places = placeInColumns(boxes, LiteGraph.NODE_TITLE_HEIGHT);
        for (const [key, node] of unplaced) node.pos = places.get(key);
      }
      if (ui.view?.offset && typeof ui.view.scale === "number") {
        this.canvas.ds.offset = ui.view.offset;
        this.canvas.ds.scale = ui.view.scale;
      } else {
        this.fit();
      }
    } finally {
      this.loading = false;
    }
    this.canvas.setDirty(true, true);
  }

  addUnknown(id, doc, at) {
    const node = LiteGraph.createNode(UNKNOWN_TYPE);
    node.nf = { kind: "unknown", id, raw: doc, state: null, issues: [],
                note: `unknown node type '${doc?.type}': kept as written` };
    node.title = id;
    node.color = "#5c2b2b";
    node.pos = at;
    node.onDrawForeground = (ctx) => this.drawNodeState(node, ctx);
    this.graph.add(node);
    return node;
  }

  setLiteral(node, spec, value) {
    if (!spec) return;
    node.nf.explicit.add(spec.name);
    if (spec.kind === "list") {
      const items = Array.isArray(value) ? value : [value];
      const literals = items.filter((item) => !isReference(item));
      if (items.some(isReference)) node.nf.listLiterals[spec.name] = literals;
      else if (widgetOf(node, spec.name)) widgetOf(node, spec.name).value = JSON.stringify(value);
      return;
    }
    const widget = widgetOf(node, spec.name);
    if (!widget) return;
    if (spec.kind === "seed" && (value === -1 || value === "random")) {
      widgetOf(node, `${spec.name}:random`).value = true;
      widget.disabled = true;
      return;
    }
    if (spec.kind === "loras") setLoras(widget, Array.isArray(value) ? value : []);
    else if (spec.kind === "json") widget.value = JSON.stringify(unwrapValue(value), null, 0);
    else if (spec.kind === "text" && typeof value !== "string") widget.value = JSON.stringify(value);
    else widget.value = value;
    if (spec.kind === "model") {
      widget.nf_previous = value;
      this.refreshChoices(widget);
    }
  }

  loadLinks(document) {
    for (const [id, doc] of Object.entries(document.nodes ?? {})) {
      const node = this.findNode(id);
      if (!node || node.nf.kind !== "node") continue;
      for (const [name, value] of Object.entries(doc.inputs ?? {})) {
        const spec = node.nf.specs.get(name);
        if (!spec) continue;
        const refs = spec.kind === "list" ? (Array.isArray(value) ? value : [value]).filter(isReference)
          : (isReference(value) ? [value] : []);
        refs.forEach((ref, n) => {
          let slots = node.inputs.filter((slot) => slot.nf_port === name);
          if (spec.kind === "list" && n >= slots.length) {
            this.addListSlot(node, spec, node.inputs.indexOf(slots.at(-1)) + 1);
            slots = node.inputs.filter((slot) => slot.nf_port === name);
          }
          this.connectRef(ref, node, node.inputs.indexOf(slots[spec.kind === "list" ? n : 0]));
        });
      }
    }
    for (const [name, decl] of Object.entries(document.outputs ?? {})) {
      const node = this.findIo("output", name);
      if (node) this.connectRef({ from: decl.from }, node, 0);
    }
  }

  connectRef(ref, target, index) {
    if (index < 0) return;
    if ("input" in ref) {
      const source = this.findIo("input", ref.input)
        ?? this.addGraphInput(ref.input, target.inputs[index].type, [target.pos[0] - 320, target.pos[1]]);
      source.connect(0, target, index);
      return;
    }
    const [id, output] = String(ref.from).split(".");
    const source = this.findNode(id);
    if (!source) return;
    let slot = source.outputs.findIndex((out) => out.name === output);
    if (slot < 0 && source.nf.kind === "unknown") {
      source.addOutput(output, ANY, slotLook(ANY));
      slot = source.outputs.length - 1;
    }
    if (slot >= 0) source.connect(slot, target, index);
  }

  fit() {
    const nodes = this.nodes();
    if (!nodes.length) {
      this.canvas.ds.reset();
      this.canvas.setDirty(true, true);
      return;
    }
    const xs = nodes.flatMap((n) => [n.pos[0], n.pos[0] + n.size[0]]);
    const ys = nodes.flatMap((n) => [n.pos[1] - LiteGraph.NODE_TITLE_HEIGHT, n.pos[1] + n.size[1] + 40]);
    const [x0, y0, x1, y1] = [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)];
    const scale = Math.min(1, (this.element.width - 60) / (x1 - x0), (this.element.height - 60) / (y1 - y0));
    this.canvas.ds.scale = Math.max(0.35, scale);
    this.canvas.ds.offset = [30 / this.canvas.ds.scale - x0, 30 / this.canvas.ds.scale - y0];
    this.canvas.setDirty(true, true);
  }

  // ---------------------------------------------------------------------------------- connecting (and refusing)
  reason(source, from, target, slot) {
    const fromName = source.nf.kind === "input" ? `graph input '${source.nf.name}'` : `'${source.nf.id}.${from.name}'`;
    const toName = target.nf.kind === "output" ? `graph output '${target.nf.name}'`
      : `input '${target.nf.id}.${slot.nf_port ?? slot.name}'`;
    return refusal(from.type, slot.type, { from: fromName, to: toName });
  }

  /** After a link drag ends over a slot that does not fit, say why where it happened. */
  afterDrop({ renderLinks, event }) {
    const link = renderLinks?.[0];
    if (!link || !event) return;
    const node = this.graph.getNodeOnPos(event.canvasX, event.canvasY);
    if (!node || node === link.node) return;
    const point = [event.canvasX, event.canvasY];
    if (link.toType === "input") {
      const slot = node.getInputOnPos(point) ?? node.getSlotFromWidget(node.getWidgetOnPos(...point, true));
      const from = link.fromSlot;
      if (slot && !linkAllowed(from.type, slot.type)) {
        this.hooks.refused(this.reason(link.node, from, node, slot), event.clientX, event.clientY);
      } else if (!slot && node.inputs?.length && !node.inputs.some((s) => linkAllowed(from.type, s.type))) {
        this.hooks.refused(`no input of '${node.nf.id ?? node.nf.name}' takes ${from.type}`, event.clientX,
                           event.clientY);
      }
    } else if (link.toType === "output") {
      const slot = node.getOutputOnPos(point);
      if (slot && !linkAllowed(slot.type, link.fromSlot.type)) {
        this.hooks.refused(this.reason(node, slot, link.node, link.fromSlot), event.clientX, event.clientY);
      }
    }
  }

  // ---------------------------------------------------------------------------------------------------- naming
  async renameNode(node) {
    const isIo = node.nf.kind === "input" || node.nf.kind === "output";
    const current = isIo ? node.nf.name : node.nf.id;
    const what = isIo ? `graph ${node.nf.kind}` : "node id";
    const name = await this.hooks.askText(`Rename ${what} '${current}'`, current);
    if (name === null || name === current) return;
    const problem = this.nameProblem(node, name);
    if (problem) {
      this.hooks.refused(problem);
      return;
    }
    this.rename(node, name);
  }

  nameProblem(node, name) {
    if (!NODE_ID.test(name)) return `'${name}' is not a valid name: a letter or _, then letters, digits, _ or -`;
    const kind = node.nf.kind;
    const clash = this.nodes().some((other) => other !== node && (kind === "node" || kind === "unknown"
      ? (other.nf.kind === "node" || other.nf.kind === "unknown") && other.nf.id === name
      : other.nf.kind === kind && other.nf.name === name));
    return clash ? `'${name}' is already used` : null;
  }

  rename(node, name) {
    if (node.nf.kind === "input" || node.nf.kind === "output") {
      node.nf.name = name;
      node.title = `${node.nf.kind}: ${name}`;
    } else {
      node.nf.id = name;
      node.title = name;
    }
    this.changed();
    this.canvas.setDirty(true, true);
  }

  nodeMenu(node, options) {
    if (node.nf.type === "text.template") {
      options.push({ content: "Add input…", callback: async () => {
        const name = await this.hooks.askText("Name of the new input (used as {name})", "");
        if (!name) return;
        if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name) || node.nf.specs.has(name)) {
          this.hooks.refused(`'${name}' cannot be added: not a valid name, or already an input`);
          return;
        }
        this.addExtraInput(node, name);
        node.nf.explicit.add(name);
        this.changed();
      } });
    }
    return options;
  }

  canvasMenu() {
    return [
      { content: "Add graph input…", callback: () => this.hooks.addIo?.("input") },
      { content: "Add graph output…", callback: () => this.hooks.addIo?.("output") },
      null,
      { content: "Fit view", callback: () => this.fit() },
    ];
  }

  // ----------------------------------------------------------------------------------- run state and issues
  /** Show a node's run state: {status, step, total, text, error, seconds}; null clears it. */
  setNodeState(id, state) {
    const node = this.findNode(id) ?? this.findIo("output", id);
    if (!node) return;
    node.nf.state = state ? { ...(node.nf.state ?? {}), ...state } : null;
    this.canvas.setDirty(true, false);
  }

  /** Mark the input a run's error names (its socket and widget label), as validation issues are marked. */
  flagInput(id, input) {
    const node = this.findNode(id);
    if (node?.nf.specs?.has(input)) flagInput(node, input);
    this.canvas.setDirty(true, true);
  }

  nodeState(id) {
    return this.findNode(id)?.nf.state ?? null;
  }

  clearStates() {
    for (const node of this.nodes()) if (node.nf) node.nf.state = null;
    this.canvas.setDirty(true, false);
  }

  /** Mark the nodes and inputs that validation issues name; returns the issues no node took. */
  setIssues(issues) {
    this.clearIssues();
    const rest = [];
    for (const issue of issues) {
      const node = issue.node ? this.findNode(issue.node) : (issue.input ? this.findIo("input", issue.input) : null);
      if (!node) {
        rest.push(issue);
        continue;
      }
      node.nf.issues.push({ input: issue.node ? issue.input : null, message: issue.message });
      if (issue.node && issue.input) flagInput(node, issue.input);
    }
    this.canvas.setDirty(true, true);
    return rest;
  }

  clearIssues() {
    for (const node of this.nodes()) {
      if (!node.nf) continue;
      node.nf.issues = [];
      for (const slot of node.inputs ?? []) slot.hasErrors = false;
      for (const widget of node.widgets ?? []) {
        if (widget.nf_label !== undefined) {
          widget.label = widget.nf_label ?? undefined;
          delete widget.nf_label;
        }
      }
    }
    this.canvas.setDirty(true, true);
  }

  issuesOf(id) {
    return this.findNode(id)?.nf.issues ?? [];
  }

  drawNodeState(node, ctx) {
    const state = node.nf.state;
    const issues = node.nf.issues ?? [];
    const [width, height] = node.size;
    const title = LiteGraph.NODE_TITLE_HEIGHT;
    const colour = issues.length || node.nf.note ? STATUS_COLOURS.failed : STATUS_COLOURS[state?.status];
    if (colour) {
      ctx.save();
      ctx.strokeStyle = colour;
      ctx.lineWidth = state?.status === "running" || issues.length || state?.status === "failed" ? 3 : 2;
      if (state?.status === "queued" || state?.status === "skipped") ctx.setLineDash([6, 4]);
      ctx.beginPath();
      ctx.roundRect(-3, -title - 3, width + 6, height + title + 6, 10);
      ctx.stroke();
      ctx.restore();
    }
    if (state?.status) {
      let label = STATUS_LABELS[state.status] ?? state.status;
      if (state.status === "running" && state.total) label += ` ${state.step ?? 0}/${state.total}`;
      if (state.seconds != null && state.status === "succeeded") label += ` ${state.seconds.toFixed(1)} s`;
      ctx.save();
      ctx.font = "bold 11px system-ui, sans-serif";
      const w = ctx.measureText(label).width + 12;
      ctx.fillStyle = STATUS_COLOURS[state.status] ?? "#666";
      ctx.beginPath();
      ctx.roundRect(width - w - 4, -title - 20, w, 16, 8);
      ctx.fill();
      ctx.fillStyle = "#111";
      ctx.fillText(label, width - w + 2, -title - 8);
      ctx.restore();
    }
    if (state?.status === "running" && state.total) {
      const fraction = Math.max(0, Math.min(1, (state.step ?? 0) / state.total));
      ctx.fillStyle = "#15324f";
      ctx.fillRect(0, height - 5, width, 5);
      ctx.fillStyle = STATUS_COLOURS.running;
      ctx.fillRect(0, height - 5, width * fraction, 5);
    }
    const notes = node.nf.note && !issues.length ? [{ text: node.nf.note, colour: "#ff9a9a" }] : [];
    for (const issue of issues) notes.push({ text: issue.input ? `${issue.input}: ${issue.message}` : issue.message,
                                             colour: "#ff9a9a" });
    if (state?.error) notes.push({ text: state.error.replace(/^node '[^']*' \([^)]*\), /, ""), colour: "#ff9a9a" });
    if (state?.text) notes.push({ text: state.text, colour: "#d6e4f0", tail: true });
    if (state?.warnings) for (const warning of state.warnings) notes.push({ text: `⚠ ${warning}`, colour: "#ffd966" });
    if (notes.length) drawNotes(ctx, notes, width, height + 8);
  }

  // ------------------------------------------------------------------------------------------ hover and select
  hover(event) {
    const [x, y] = this.toGraphPoint(event.clientX, event.clientY);
    const node = this.graph.getNodeOnPos(x, y);
    if (!node?.nf) {
      this.hooks.hover(null);
      return;
    }
    const info = this.describe(node);
    const slot = node.getInputOnPos?.([x, y]) ?? node.getSlotFromWidget?.(node.getWidgetOnPos?.(x, y, true));
    const output = node.getOutputOnPos?.([x, y]);
    let text = null;
    if (slot && node.nf.specs) {
      const spec = node.nf.specs.get(slot.nf_port ?? slot.name);
      if (spec) text = { title: `${spec.name} · ${spec.type}${spec.required ? " · required" : ""}`,
                         body: spec.description };
    } else if (output && node.nf.entry) {
      const schema = node.nf.entry.outputs.properties[output.name];
      text = { title: `${output.name} · ${output.type}`, body: schema?.description ?? "" };
    } else if (y < node.pos[1] && info) {
      text = { title: info.title, body: info.description };
    }
    this.hooks.hover(text, event.clientX, event.clientY);
  }

  describe(node) {
    if (!node?.nf) return null;
    if (node.nf.kind === "node") {
      const entry = node.nf.entry;
      return { kind: "node", id: node.nf.id, type: entry.type, title: `${node.nf.id} · ${entry.type}`,
               description: prose(entry.description), inputs: [...node.nf.specs.values()], outputs: outputSpecs(entry),
               issues: node.nf.issues, state: node.nf.state };
    }
    if (node.nf.kind === "unknown") {
      return { kind: "unknown", id: node.nf.id, title: node.nf.id, description: "a node type this server lacks" };
    }
    return { kind: node.nf.kind, id: node.nf.name, title: `graph ${node.nf.kind} '${node.nf.name}'`,
             description: node.nf.kind === "input" ? "A value the run is given (see the Run panel)."
               : "What the run returns under this name." };
  }

  select(id) {
    const node = this.findNode(id);
    if (node) {
      this.canvas.selectNode(node);
      this.canvas.centerOnNode(node);
    }
  }

  // ----------------------------------------------------------------------------------------------- test hooks
  /** Page coordinates of a port's socket (for real mouse drags in tests). */
  socketPosition(id, direction, name, nth = 0) {
    const node = this.findNode(id) ?? this.findIo(direction === "out" ? "input" : "output", id);
    if (!node) throw new Error(`no node ${id}`);
    arrange(node);
    let point;
    if (direction === "out") {
      const index = node.nf.kind === "input" ? 0 : node.outputs.findIndex((slot) => slot.name === name);
      point = node.getOutputPos(index);
    } else {
      const slots = node.inputs.filter((slot) => (slot.nf_port ?? slot.name) === name);
      const slot = slots[nth];
      if (!slot) throw new Error(`no input ${name} on ${id}`);
      point = node.getInputSlotPos ? node.getInputSlotPos(slot) : node.getInputPos(node.inputs.indexOf(slot));
    }
    return this.toPage(point);
  }

  /** Page coordinates of a widget's middle (click it to edit its value). */
  widgetPosition(id, name) {
    const node = this.findNode(id) ?? this.findIo("input", id) ?? this.findIo("output", id);
    const widget = widgetOf(node, name);
    if (!widget) throw new Error(`no widget ${name} on ${id}`);
    return this.toPage([node.pos[0] + node.size[0] / 2, node.pos[1] + widget.y + LiteGraph.NODE_WIDGET_HEIGHT / 2]);
  }

  /** Page coordinates of a node's title bar. */
  titlePosition(id) {
    const node = this.findNode(id) ?? this.findIo("output", id) ?? this.findIo("input", id);
    return this.toPage([node.pos[0] + 40, node.pos[1] - LiteGraph.NODE_TITLE_HEIGHT / 2]);
  }

  toPage(point) {
    const [x, y] = this.canvas.ds.convertOffsetToCanvas(point);
    const box = this.element.getBoundingClientRect();
    return { x: box.left + x, y: box.top + y };
  }

  changed() {
    if (!this.loading) this.hooks.changed();
  }
}

// -------------------------------------------------------------------------------------------------- helpers
let configured = false;

/** Library-wide settings: our link rule, look, and no litegraph behaviour we do not use. */
function configureLibrary() {
  if (configured) return;
  configured = true;
  LiteGraph.isValidConnection = (a, b) => linkAllowed(a, b);
  LiteGraph.release_link_on_empty_shows_menu = false;
  LiteGraph.middle_click_slot_add_default_node = false;
  LiteGraph.dialog_close_on_mouse_leave = false;
  LiteGraph.alt_drag_do_clone_nodes = true;
  LiteGraph.NODE_DEFAULT_BGCOLOR = "#1e2126";
  LiteGraph.NODE_DEFAULT_COLOR = "#2b2f36";
  LiteGraph.NODE_TITLE_COLOR = "#e6edf3";
  LiteGraph.NODE_SELECTED_TITLE_COLOR = "#ffffff";
  LiteGraph.WIDGET_BGCOLOR = "#15181c";
  LiteGraph.WIDGET_OUTLINE_COLOR = "#3a3f48";
  LiteGraph.WIDGET_TEXT_COLOR = "#e6edf3";
  LiteGraph.WIDGET_SECONDARY_TEXT_COLOR = "#9aa4ae";
  for (const type of GRAPH_INPUT_TYPES) {
    LGraphCanvas.link_type_colors[type] = colourOf(type);
    LGraphCanvas.link_type_colors[`list[${type}]`] = colourOf(type);
  }
}

/** Lay out slots and widgets now (the library does it while drawing), so socket positions are right at once. */
function arrange(node) {
  node._setConcreteSlots?.();
  node.arrange?.();
}

function flagInput(node, input) {
  for (const slot of node.inputs ?? []) if ((slot.nf_port ?? slot.name) === input) slot.hasErrors = true;
  const widget = widgetOf(node, input);
  if (widget && widget.nf_label === undefined) {
    widget.nf_label = widget.label ?? null;
    widget.label = `⚠ ${input}`;
  }
}

function slotLook(type) {
  const colour = colourOf(type);
  return { color_on: colour, color_off: colour };
}

function widgetOf(node, name) {
  return node?.widgets?.find((widget) => widget.name === name) ?? null;
}

function setLoras(widget, loras) {
  widget.nf_value = loras;
  const shown = loras.map((lora) => `${lora.model ?? "?"} ×${lora.weight ?? 1}`).join(", ");
  widget.label = loras.length ? `LoRAs: ${shown}` : "LoRAs: none (click to add)";
}

/** Move input `from` to position `to`, keeping the links' slot numbers right. */
function moveInput(node, from, to) {
  if (from === to) return;
  const [slot] = node.inputs.splice(from, 1);
  node.inputs.splice(to, 0, slot);
  const links = node.graph?.links;
  node.inputs.forEach((input, index) => {
    if (input.link == null || !links) return;
    const link = links.get?.(input.link) ?? links[input.link];
    if (link) link.target_slot = index;
  });
  node._setConcreteSlots?.();
}

