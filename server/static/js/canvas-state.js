// Run state and validation issues on the nodes: the coloured frame, status badge, progress bar and notes drawn on
// each node, and the marks on the inputs (socket and widget label) an issue or a run's error names.

import { titleHeight } from "./canvas-litegraph.js";
import { widgetOf } from "./canvas-widgets.js";
import { drawNotes, wrapLines } from "./drawing.js";

const STATUS_COLOURS = {
  queued: "#8a8a8a", running: "#4aa3ff", cached: "#8e7cc3", succeeded: "#6aa84f", failed: "#e06666",
  skipped: "#777777", cancelled: "#f1c232",
};
const STATUS_LABELS = { succeeded: "done" };

/** Mark the nodes and inputs that validation issues name; returns the issues no node took. */
export function markIssues(editor, issues) {
  clearIssues(editor);
  const rest = [];
  for (const issue of issues) {
    const node = issue.node ? editor.findNode(issue.node)
      : (issue.input ? editor.findIo("input", issue.input) : null);
    if (!node) {
      rest.push(issue);
      continue;
    }
    node.nf.issues.push({ input: issue.node ? issue.input : null, message: issue.message });
    if (issue.node && issue.input) flagInput(node, issue.input);
  }
  editor.canvas.setDirty(true, true);
  return rest;
}

/** Take every issue and input mark off the nodes. */
export function clearIssues(editor) {
  for (const node of editor.nodes()) {
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
  editor.canvas.setDirty(true, true);
}

/** Mark one input of a node: its sockets show an error, its widget's label a ⚠. */
export function flagInput(node, input) {
  for (const slot of node.inputs ?? []) if ((slot.nf_port ?? slot.name) === input) slot.hasErrors = true;
  const widget = widgetOf(node, input);
  if (widget && widget.nf_label === undefined) {
    widget.nf_label = widget.label ?? null;
    widget.label = `⚠ ${input}`;
  }
}

/** A node's foreground: its run state (`nf.state`), issues and note, drawn over what the library draws. */
export function drawNodeState(node, ctx) {
  const state = node.nf.state;
  const issues = node.nf.issues ?? [];
  const [width, height] = node.size;
  const title = titleHeight();
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
  if (node.nf.preview) drawPreview(node, ctx);
  const notes = node.nf.note && !issues.length ? [{ text: node.nf.note, colour: "#ff9a9a" }] : [];
  for (const issue of issues) notes.push({ text: issue.input ? `${issue.input}: ${issue.message}` : issue.message,
                                           colour: "#ff9a9a" });
  if (state?.error) notes.push({ text: state.error.replace(/^node '[^']*' \([^)]*\), /, ""), colour: "#ff9a9a" });
  if (node.nf.textArea != null) drawTextArea(node, ctx, state?.text);
  else if (state?.text) notes.push({ text: state.text, colour: "#d6e4f0", tail: true });
  if (state?.warnings) for (const warning of state.warnings) notes.push({ text: `⚠ ${warning}`, colour: "#ffd966" });
  if (notes.length) drawNotes(ctx, notes, width, height + 8);
}

const PREVIEW_HEIGHT = 180;

/** Show `image` (the node's last output picture) in an area added at the bottom of the node; null removes it. */
export function setPreview(node, image) {
  const base = node.nf.previewBase ?? node.size[1];
  node.nf.previewBase = image ? base : null;
  node.nf.preview = image;
  node.setSize([node.size[0], base + (image ? PREVIEW_HEIGHT : 0)]);
}

function drawPreview(node, ctx) {
  const image = node.nf.preview;
  const [width] = node.size;
  const top = node.nf.previewBase + 4;
  const room = [width - 12, PREVIEW_HEIGHT - 10];
  const scale = Math.min(room[0] / image.naturalWidth, room[1] / image.naturalHeight);
  const [w, h] = [image.naturalWidth * scale, image.naturalHeight * scale];
  ctx.drawImage(image, (width - w) / 2, top + (room[1] - h) / 2, w, h);
}

const TEXT_LINES = 6;
const TEXT_AREA_HEIGHT = TEXT_LINES * 16 + 16;

/** Room at the bottom of a node that writes text as it runs (an LLM): the text streams there, inside the node,
 * so it never covers the node below (the layout counts the room from the start). */
export function reserveTextArea(node) {
  node.nf.textArea = node.size[1];
  node.size[1] += TEXT_AREA_HEIGHT;
}

function drawTextArea(node, ctx, text) {
  const [width] = node.size;
  const top = node.nf.textArea + 4;
  ctx.save();
  ctx.fillStyle = "rgba(12, 14, 17, 0.7)";
  ctx.beginPath();
  ctx.roundRect(6, top, width - 12, TEXT_AREA_HEIGHT - 10, 5);
  ctx.fill();
  ctx.font = "12px system-ui, sans-serif";
  ctx.fillStyle = text ? "#d6e4f0" : "#6b737d";
  const lines = text ? wrapLines(ctx, text, width - 28).slice(-TEXT_LINES) : ["the text appears here as it is written"];
  lines.forEach((line, i) => ctx.fillText(line, 14, top + 18 + i * 16));
  ctx.restore();
}
