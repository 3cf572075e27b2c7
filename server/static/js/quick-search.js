// Search where you are: a node search box at the pointer (double-click on the empty canvas, or a link dropped on
// it). Typing filters the catalogue as the palette does; Enter or a click picks, Escape or a click outside
// cancels. With `accepts`, only node types with an input that takes that type are offered.

import { entryMatches } from "./palette.js";
import { inputSpecs } from "./schema.js";
import { linkAllowed } from "./types.js";
import { h } from "./ui.js";

const SHOWN = 12;

/** The first input of `entry` that takes `type` (the one a dropped link connects to), or null. */
export function acceptingInput(entry, type) {
  return inputSpecs(entry).find((spec) => linkAllowed(type, spec.type))?.name ?? null;
}

/** Ask for a node type at page position (x, y); resolves to the chosen type, or null. */
export function quickSearch(entries, x, y, accepts = null) {
  const offered = accepts ? entries.filter((entry) => acceptingInput(entry, accepts)) : entries;
  return new Promise((resolve) => {
    const field = h("input.field", { placeholder: accepts ? `Nodes that take ${accepts}…` : "Search nodes…",
                                     spellcheck: false });
    const list = h("ul.quick-list");
    const box = h("div.quick-search", { style: `left: ${Math.min(x, innerWidth - 340)}px; `
                                               + `top: ${Math.min(y, innerHeight - 360)}px` }, field, list);
    let chosen = 0;
    let shown = [];
    const close = (type) => {
      box.remove();
      document.removeEventListener("pointerdown", outside, true);
      resolve(type);
    };
    const outside = (event) => {
      if (!box.contains(event.target)) close(null);
    };
    const render = () => {
      const words = field.value.toLowerCase().split(/\s+/).filter(Boolean);
      shown = offered.filter((entry) => entryMatches(entry, words)).slice(0, SHOWN);
      chosen = Math.min(chosen, Math.max(shown.length - 1, 0));
      list.replaceChildren(...shown.map((entry, index) => h("li", {},
        h("button.quick-item", { type: "button", dataset: { type: entry.type }, className:
          `quick-item${index === chosen ? " chosen" : ""}`, onclick: () => close(entry.type) },
          h("strong", {}, entry.title), h("span", {}, entry.type)))));
    };
    field.addEventListener("input", () => {
      chosen = 0;
      render();
    });
    field.addEventListener("keydown", (event) => {
      if (event.key === "Escape") close(null);
      else if (event.key === "Enter" && shown[chosen]) close(shown[chosen].type);
      else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        chosen = (chosen + (event.key === "ArrowDown" ? 1 : shown.length - 1)) % Math.max(shown.length, 1);
        render();
      }
    });
    document.body.append(box);
    document.addEventListener("pointerdown", outside, true);
    render();
    field.focus();
  });
}
