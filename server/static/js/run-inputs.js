// One field of the Run tab per declared graph input, by its type: media take an artifact id or a path (with an
// upload button), bools a checkbox, numbers a number box, json and text a text area.

import { MEDIA_TYPES } from "./types.js";
import { h, toast } from "./ui.js";

/** The field for graph input `name`: shows `value`, reports edits through `set`, uploads media with `upload`. */
export function inputField(name, decl, { value, set, upload }) {
  const id = `run-input-${name}`;
  let field;
  if (MEDIA_TYPES.includes(decl.type)) {
    const text = h("input.field", { id, value: value ?? "", placeholder: "artifact id or a file path",
                                    oninput: () => set(text.value.trim() || undefined) });
    const file = h("input", { type: "file", accept: `${decl.type}/*`, onchange: async () => {
      if (!file.files.length) return;
      try {
        const uploaded = await upload(file.files[0]);
        text.value = uploaded.artifact;
        set(uploaded.artifact);
        toast(`Uploaded ${uploaded.filename}`, "ok");
      } catch (error) {
        toast(`Upload failed: ${error.message}`, "error");
      }
    } });
    field = h("div.media-input", {}, text, h("label.button.small", {}, "Upload…", file));
  } else if (decl.type === "bool") {
    field = h("input", { id, type: "checkbox", checked: Boolean(value), onchange: (e) => set(e.target.checked) });
  } else if (decl.type === "int" || decl.type === "float") {
    field = h("input.field", { id, type: "number", step: decl.type === "int" ? 1 : "any", value: value ?? "",
                               oninput: (e) => set(e.target.value === "" ? undefined : Number(e.target.value)) });
  } else if (decl.type === "json") {
    field = h("textarea.field", { id, rows: 3, value: value === undefined ? "" : JSON.stringify(value),
                                  oninput: (e) => {
                                    try { set(JSON.parse(e.target.value)); } catch { set(e.target.value); }
                                  } });
  } else {
    field = h("textarea.field", { id, rows: 2, value: value ?? "", oninput: (e) => set(e.target.value) });
  }
  return h("div.run-input", { dataset: { name } },
    h("label", { for: id }, h("span.input-name", {}, name), h("span.input-type", {}, decl.type)),
    field, decl.description ? h("p.hint", {}, decl.description) : null);
}
