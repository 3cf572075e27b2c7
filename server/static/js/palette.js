// The node palette: every type from GET /api/nodes by category, searched by type, title, description and input
// names; a click adds the node in the middle of the view, a drag drops it where it lands. Hover shows the docs.

import { inputSpecs, outputSpecs, prose } from "./schema.js";
import { colourOf } from "./types.js";
import { h } from "./ui.js";

export const DRAG_TYPE = "application/x-nodeforge-node";

/** Whether a catalogue entry matches every search word (type, title, category, description, input names). */
export function entryMatches(entry, words) {
  const inputs = Object.keys(entry.inputs?.properties ?? {}).join(" ");  // "prompt" finds llm.generate
  const haystack = `${entry.type} ${entry.title} ${entry.category} ${entry.description} ${inputs}`.toLowerCase();
  return words.every((word) => haystack.includes(word));
}

export class Palette {
  constructor(root, catalogue, onAdd) {
    this.root = root;
    this.entries = [...catalogue.nodes].sort((a, b) => a.category.localeCompare(b.category)
                                                     || a.type.localeCompare(b.type));
    this.onAdd = onAdd;
    this.search = root.querySelector("#palette-search");
    this.list = root.querySelector("#palette-list");
    this.search.addEventListener("input", () => this.render());
    this.search.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        const first = this.list.querySelector(".palette-item");
        if (first) this.onAdd(first.dataset.type);
      }
    });
    this.collapsed = new Set();
    this.render();
  }

  matches(entry, words) {
    return entryMatches(entry, words);
  }

  render() {
    const words = this.search.value.toLowerCase().split(/\s+/).filter(Boolean);
    const groups = new Map();
    for (const entry of this.entries) {
      if (!this.matches(entry, words)) continue;
      if (!groups.has(entry.category)) groups.set(entry.category, []);
      groups.get(entry.category).push(entry);
    }
    const sections = [...groups].map(([category, entries]) => {
      const open = words.length > 0 || !this.collapsed.has(category);
      return h("section.palette-group", { dataset: { category } },
        h("button.palette-category", {
          type: "button", "aria-expanded": String(open),
          onclick: () => {
            if (this.collapsed.has(category)) this.collapsed.delete(category);
            else this.collapsed.add(category);
            this.render();
          },
        }, h("span.caret", {}, open ? "▾" : "▸"), category, h("span.count", {}, String(entries.length))),
        open ? entries.map((entry) => this.item(entry)) : null);
    });
    this.list.replaceChildren(...(sections.length ? sections : [h("p.empty", {}, "No node matches.")]));
  }

  item(entry) {
    const inputs = inputSpecs(entry).map((spec) => `${spec.name}: ${spec.type}`).join(", ");
    const outputs = outputSpecs(entry).map((spec) => `${spec.name}: ${spec.type}`).join(", ");
    const doc = `${prose(entry.description)}\n\ninputs: ${inputs || "none"}\noutputs: ${outputs || "none"}`;
    const dots = outputSpecs(entry).map((spec) => h("span.dot", { style: `background:${colourOf(spec.type)}` }));
    return h("div.palette-item", {
      draggable: true, tabIndex: 0, role: "button",
      dataset: { type: entry.type, tipTitle: `${entry.title} · ${entry.type}`, tip: doc },
      onclick: () => this.onAdd(entry.type),
      onkeydown: (event) => { if (event.key === "Enter") this.onAdd(entry.type); },
      ondragstart: (event) => {
        event.dataTransfer.setData(DRAG_TYPE, entry.type);
        event.dataTransfer.effectAllowed = "copy";
      },
    }, h("span.palette-title", {}, entry.title), h("span.palette-type", {}, entry.type), h("span.dots", {}, dots));
  }
}
