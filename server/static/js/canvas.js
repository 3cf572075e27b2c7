// The canvas the page edits graphs on. Everything outside the canvas modules talks to `GraphCanvas` in terms of
// the graph document (design.md section 2): node ids, named ports, links, graph inputs and outputs, layout in `ui`.
// The canvas library (@comfyorg/litegraph) stays behind this adapter: canvas-litegraph.js is the only module that
// imports it, the other canvas-*.js modules work on its nodes, each function taking this GraphCanvas as `editor`.
// Swapping the library means rewriting the canvas modules only. The canvas modules import in layers, never in a
// circle: the library adapter, widgets, ports, links and the document they make at the bottom, then the kinds of
// node, then what the user does with them (menus, copies, drops, loading); a lower module that must reach up takes
// a callback, as a node takes its menu from here.

import { adoptCopy } from "./canvas-copies.js";
import { describeNode, showHover } from "./canvas-describe.js";
import { documentOf } from "./canvas-document.js";
import { afterDrop, searchAtPointer } from "./canvas-drop.js";
import { createCanvas, registerNodeTypes } from "./canvas-litegraph.js";
import { loadDocument } from "./canvas-load.js";
import { canvasMenu, groupSelected, nodeMenu } from "./canvas-menus.js";
import {
  addCatalogueNode, addInputNode, addOutputNode, setBypass, setUpInputNode, setUpNode, setUpOutputNode,
} from "./canvas-nodes.js";
import { clearIssues, flagInput, markIssues, setPreview } from "./canvas-state.js";
import {
  fitToNodes, graphToPage, pageToGraph, socketPagePosition, titlePagePosition, widgetPagePosition,
} from "./canvas-view.js";

/** Hooks the page gives the canvas (dialogs and panels live outside the adapter). */
const NO_HOOKS = {
  changed() {}, selected() {}, refused() {}, hover() {},
  askText: async () => null, editLoras: async () => null, graphDocument: async () => null,
  chooseFile: async () => null, paintMask: async () => null,
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
    const { graph, canvas } = createCanvas(element);
    this.graph = graph;
    this.canvas = canvas;
    this.canvas.onNodeSelected = (node) => this.hooks.selected(describeNode(node));
    this.canvas.onNodeDeselected = () => this.hooks.selected(null);
    this.canvas.getCanvasMenuOptions = () => canvasMenu(this);
    this.graph.onNodeAdded = (node) => {
      adoptCopy(this, node);
      this.changed();
    };
    this.graph.onNodeRemoved = () => this.changed();
    this.canvas.onNodeMoved = () => this.changed();  // a drag ends inside the library: no pointerup reaches us
    this.graph.onAfterChange = () => this.changed();
    this.canvas.linkConnector.events.addEventListener("after-drop-links", (event) => afterDrop(this, event.detail));
    element.addEventListener("pointermove", (event) => showHover(this, event));
    element.addEventListener("pointerleave", () => this.hooks.hover(null));
    element.addEventListener("pointerup", () => this.changed());
    element.addEventListener("dblclick", (event) => searchAtPointer(this, event));
    registerNodeTypes(this.entries.values(), {
      node: (node, entry) => setUpNode(this, node, entry, () => nodeMenu(this, node)),
      input: (node) => setUpInputNode(this, node),
      output: (node) => setUpOutputNode(this, node),
    });
    this.resize();
  }

  resize() {
    const box = this.element.parentElement.getBoundingClientRect();
    this.canvas.resize(Math.max(1, Math.floor(box.width)), Math.max(1, Math.floor(box.height)));
    this.canvas.setDirty(true, true);
  }

  fit() {
    fitToNodes(this);
  }

  /** The saved graphs' names, which graph.call's picker offers. */
  setGraphNames(names) {
    this.graphNames = names;
    for (const node of this.nodes()) {
      for (const widget of node.widgets ?? []) if (widget.nf_graphs) widget.options.values = names;
    }
  }

  changed() {
    if (!this.loading) this.hooks.changed();
  }

  // ------------------------------------------------------------------------------------------------ the document
  /** The graph document the canvas shows (`base` supplies name, description and unknown `ui` keys). */
  toDocument(base = {}) {
    return documentOf(this, base);
  }

  /** Show a document: nodes, links, graph inputs and outputs, layout from `ui` (or laid out when absent). */
  /** Show `document`; `keepLayout` (undo) never lays its nodes out again, even where they overlap. */
  async load(document, { keepLayout = false } = {}) {
    await loadDocument(this, document, { keepLayout });
  }

  nodes() {
    return this.graph.nodes;
  }

  /** Ctrl+G: a titled group around the selected nodes. */
  groupSelected() {
    return groupSelected(this);
  }

  /** Ctrl+B: bypass the selected nodes, or stop bypassing them when they all are. */
  toggleBypassSelected() {
    const chosen = Object.values(this.canvas.selected_nodes ?? {}).filter((node) => node.nf?.kind === "node");
    const bypass = !chosen.every((node) => node.nf.bypass);
    for (const node of chosen) setBypass(this, node, bypass);
  }

  findNode(id) {
    return this.nodes().find((node) => node.nf?.kind === "node" && node.nf.id === id)
      ?? this.nodes().find((node) => node.nf?.kind === "unknown" && node.nf.id === id) ?? null;
  }

  findIo(kind, name) {
    return this.nodes().find((node) => node.nf?.kind === kind && node.nf.name === name) ?? null;
  }

  // ----------------------------------------------------------------------------------------------- adding nodes
  /** A new node of a catalogue type; at `pos` (graph coordinates) or the middle of the view. Returns its id. */
  addNode(type, pos, id) {
    return addCatalogueNode(this, type, pos, id);
  }

  addGraphInput(name, type, pos) {
    return addInputNode(this, name, type, pos);
  }

  addGraphOutput(name, pos) {
    return addOutputNode(this, name, pos);
  }

  /** Graph coordinates of a point in the page (for drops from the palette). */
  toGraphPoint(clientX, clientY) {
    return pageToGraph(this, clientX, clientY);
  }

  select(id) {
    const node = this.findNode(id);
    if (node) {
      this.canvas.selectNode(node);
      this.canvas.centerOnNode(node);
    }
  }

  // ----------------------------------------------------------------------------------- run state and issues
  /** Show a node's run state: {status, step, total, text, error, seconds}; null clears it. */
  setNodeState(id, state) {
    const node = this.findNode(id) ?? this.findIo("output", id);
    if (!node) return;
    node.nf.state = state ? { ...(node.nf.state ?? {}), ...state } : null;
    this.canvas.setDirty(true, false);
  }

  /** Draw `image` on the node that made it (its last output picture); null takes it off. */
  setNodePreview(id, image) {
    const node = this.findNode(id);
    if (!node) return;
    setPreview(node, image);
    this.canvas.setDirty(true, true);
  }

  nodeState(id) {
    return this.findNode(id)?.nf.state ?? null;
  }

  clearStates() {
    for (const node of this.nodes()) if (node.nf) node.nf.state = null;
    this.canvas.setDirty(true, false);
  }

  /** Mark the input a run's error names (its socket and widget label), as validation issues are marked. */
  flagInput(id, input) {
    const node = this.findNode(id);
    if (node?.nf.specs?.has(input)) flagInput(node, input);
    this.canvas.setDirty(true, true);
  }

  /** Mark the nodes and inputs that validation issues name; returns the issues no node took. */
  setIssues(issues) {
    return markIssues(this, issues);
  }

  clearIssues() {
    clearIssues(this);
  }

  issuesOf(id) {
    return this.findNode(id)?.nf.issues ?? [];
  }

  // ----------------------------------------------------------------------------------------------- test hooks
  /** Page coordinates of a port's socket (for real mouse drags in tests). */
  socketPosition(id, direction, name, nth = 0) {
    return socketPagePosition(this, id, direction, name, nth);
  }

  /** Page coordinates of a widget's middle (click it to edit its value). */
  widgetPosition(id, name) {
    return widgetPagePosition(this, id, name);
  }

  /** Page coordinates of a node's title bar. */
  titlePosition(id) {
    return titlePagePosition(this, id);
  }

  /** Page coordinates of a point in graph coordinates. */
  graphToPage(x, y) {
    return graphToPage(this, [x, y]);
  }
}
