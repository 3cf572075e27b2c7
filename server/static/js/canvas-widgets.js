// The widget that edits each kind of schema input (number, seed, combo, toggle, model picker, graph picker, LoRA
// list, JSON, text), and writing a document's literal value into a node's widgets.

import { decimals, isReference, unwrapValue } from "./bindings.js";
import { initialValue, LORAS, modelChoices, SEED } from "./schema.js";

const OTHER_MODEL = "other…";

export function widgetOf(node, name) {
  return node?.widgets?.find((widget) => widget.name === name) ?? null;
}

/**
 * The widget for a literal input `spec` (see schema.js inputSpec); `changed` runs on every edit, `graphChosen`
 * too when a graph picker's choice changes.
 */
export function addWidgetFor(editor, node, spec, changed, graphChosen) {
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
        editor.hooks.askText(`Model for ${node.nf.id}.${spec.name} (a name, a Hub id or a path)`, widget.value)
          .then((text) => {
            if (text === null) return;
            widget.value = text.trim();
            widget.nf_previous = widget.value;
            refreshChoices(editor, widget);
            changed();
            node.setDirtyCanvas(true, true);
          });
      }, { values: [] });
      widget.nf_models = spec;
      const remember = widget.callback;
      widget.callback = (v, ...rest) => {
        remember(v, ...rest);
        if (v !== OTHER_MODEL) widget.nf_previous = widget.value;
        refreshChoices(editor, widget);
      };
      widget.nf_previous = value;
      refreshChoices(editor, widget);
      return widget;
    }
    case "graph": {
      const widget = node.addWidget("combo", spec.name, value, () => {
        changed();
        graphChosen();
      }, { values: editor.graphNames });
      widget.nf_graphs = true;
      return widget;
    }
    case "loras": {
      const widget = node.addWidget("button", spec.name, [], () => {
        editor.hooks.editLoras(widget.nf_value ?? []).then((loras) => {
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
    default: {
      const widget = node.addWidget("text", spec.name, value, changed, { multiline: Boolean(spec.multiline) });
      if (spec.file === "read") {
        const choose = node.addWidget("button", `${spec.name}:upload`, null, async () => {
          const artifact = await editor.hooks.chooseFile();
          if (!artifact) return;
          widget.value = artifact;
          changed();
          node.setDirtyCanvas(true, true);
        }, {});
        choose.label = "choose file… (uploads it)";
      }
      if (spec.file === "read" && node.nf.type === "image.load") {
        const paint = node.addWidget("button", `${spec.name}:mask`, null, async () => {
          const artifact = await editor.hooks.paintMask(String(widget.value ?? ""));
          if (!artifact) return;
          widget.value = artifact;
          changed();
          node.setDirtyCanvas(true, true);
        }, {});
        paint.label = "paint mask…";
      }
      return widget;
    }
  }
}

/** Show a document's literal `value` for `spec` in the node's widgets (list literals beside links are kept). */
export function setLiteral(editor, node, spec, value) {
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
  if (spec.kind === SEED && (value === -1 || value === "random")) {
    widgetOf(node, `${spec.name}:random`).value = true;
    widget.disabled = true;
    return;
  }
  if (spec.kind === LORAS) setLoras(widget, Array.isArray(value) ? value : []);
  else if (spec.kind === "json") widget.value = JSON.stringify(unwrapValue(value), null, 0);
  else if (spec.kind === "text" && typeof value !== "string") widget.value = JSON.stringify(value);
  else widget.value = value;
  if (spec.kind === "model") {
    widget.nf_previous = value;
    refreshChoices(editor, widget);
  }
}

/** The choices a model picker offers: the registry's models of its kinds, its current value, "other…". */
function refreshChoices(editor, widget) {
  widget.options.values = [...modelChoices(widget.nf_models, editor.models, widget.value), OTHER_MODEL];
}

function setLoras(widget, loras) {
  widget.nf_value = loras;
  const shown = loras.map((lora) => `${lora.model ?? "?"} ×${lora.weight ?? 1}`).join(", ");
  widget.label = loras.length ? `LoRAs: ${shown}` : "LoRAs: none (click to add)";
}
