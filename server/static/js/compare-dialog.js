// The Compare… dialog: the graph over several values of its inputs in one run (POST /api/runs with a sweep), the
// cells counted as the values are typed; inputs not swept take the Run tab's values. When the run finishes, its
// comparison page opens in a new tab.

import { h, modal, toast } from "./ui.js";

const SWEPT_OUTPUT = /^c\d+__/;  // a sweep's record names its outputs c<cell>__<output>
const RANGE = /^\s*(-?\d+)\s*\.\.\s*(-?\d+)\s*$/;
const MAX_RANGE = 10_000;  // a typo such as 1..1000000 should not freeze the page building the list
const TRUE = new Set(["true", "yes", "1", "on"]);
const FALSE = new Set(["false", "no", "0", "off"]);

/** Open the dialog for the editor's current graph; follows the submitted run and opens its comparison page. */
export async function openCompareDialog(editor) {
  const declared = Object.entries(editor.library.document().inputs ?? {});
  if (!declared.length) {
    toast("This graph declares no inputs to compare over: add a graph input first", "warn");
    return;
  }
  const rows = declared.map(([name, decl]) => axisRow(name, decl.type));
  const product = h("input", { type: "radio", name: "mode", value: "product", checked: true });
  const zip = h("input", { type: "radio", name: "mode", value: "zip" });
  const count = h("p.compare-count", { role: "status" });
  const problems = h("div.compare-issues", { hidden: true });
  const body = h("div.compare-dialog", {},
    h("p.hint", {}, "Tick the inputs to vary and type their values: comma-separated, FIRST..LAST for an int, a JSON "
                    + "array for json. The other inputs take the Run tab's values."),
    h("table.compare-axes", {}, h("tbody", {}, rows.map((row) => row.element))),
    h("div.compare-mode", {}, h("label", {}, product, " every combination"), h("label", {}, zip, " pair them (zip)")),
    count, problems);
  const refresh = () => {
    const plan = sweepPlan(rows, zip.checked ? "zip" : "product");
    count.textContent = plan.message;
    count.dataset.ready = String(plan.ready);
    submitButton().disabled = !plan.ready;
    return plan;
  };
  body.addEventListener("input", refresh);
  body.addEventListener("change", refresh);
  const submitButton = () => body.closest(".dialog").querySelector(".actions button.primary");

  const submit = async () => {
    const plan = refresh();
    if (!plan.ready) return undefined;  // Enter in a field submits the form even while the button is disabled
    problems.hidden = true;
    try {
      return await editor.runs.submit({ sweep: plan.sweep });
    } catch (error) {
      showRefusal(problems, error);
      return undefined;
    }
  };
  const answer = modal({ title: "Compare: run the graph over several input values", body, className: "wide",
                         buttons: [{ label: "Submit", value: submit, primary: true }] });
  refresh();  // the dialog is on the page now: the count and the Submit button can be set
  const queued = await answer;
  if (!queued) return;
  await editor.runs.follow(queued.id, queued.document);
  if (editor.runs.active?.id === queued.id && editor.runs.active.status !== "cancelled") {
    await openComparePage(editor.api, queued.id);
  }
}

/** One graph input's line: the axis tick, its name and type, and the values field with what it parses to. */
function axisRow(name, type) {
  const tick = h("input", { type: "checkbox", name: `axis-${name}`, "aria-label": `vary ${name}` });
  const values = h("input.field", { name: `values-${name}`, spellcheck: false, autocomplete: "off",
                                    placeholder: type === "int" ? "1, 2, 3 or 1..3" : type === "json" ? "[1, {\"a\": 2}]"
                                      : type === "bool" ? "true, false" : "a, b, c",
                                    oninput: () => { if (values.value.trim()) tick.checked = true; } });
  const note = h("span.hint.compare-note");
  const element = h("tr.compare-axis", { dataset: { name } },
    h("td", {}, tick), h("td", {}, h("span.input-name", {}, name), h("span.input-type", {}, type)),
    h("td", {}, values, note));
  return {
    name, element, note,
    get ticked() { return tick.checked; },
    parse: () => parseValues(values.value, type),
  };
}

/** The sweep the ticked rows describe, its cell count as a sentence, and whether it may be submitted. */
function sweepPlan(rows, mode) {
  const axes = {};
  const errors = [];
  for (const row of rows) {
    row.note.textContent = "";
    if (!row.ticked) continue;
    try {
      axes[row.name] = row.parse();
      row.note.textContent = `${axes[row.name].length} value${axes[row.name].length === 1 ? "" : "s"}`;
    } catch (error) {
      row.note.textContent = error.message;
      errors.push(`${row.name}: ${error.message}`);
    }
  }
  const counts = Object.entries(axes).map(([name, values]) => [name, values.length]);
  if (errors.length) return { ready: false, message: `Fix the values first (${errors.join("; ")})` };
  if (!counts.length) return { ready: false, message: "Tick at least one input to vary." };
  if (counts.some(([, n]) => n === 0)) return { ready: false, message: "Every ticked input needs a value." };
  if (mode === "zip" && new Set(counts.map(([, n]) => n)).size > 1) {
    return { ready: false, message: `Zip pairs the i-th values, so every input needs as many values: `
                                    + counts.map(([name, n]) => `${name} has ${n}`).join(", ") };
  }
  const cells = mode === "zip" ? counts[0][1] : counts.reduce((total, [, n]) => total * n, 1);
  return { ready: true, sweep: { axes, mode }, message: `${cells} cell${cells === 1 ? "" : "s"}` };
}

/** The values typed for an input of `type`; throws with a short reason for one that does not parse. */
export function parseValues(text, type) {
  if (!text.trim()) return [];
  if (type === "json") {
    let values;
    try { values = JSON.parse(text); } catch { throw new Error("not JSON: type an array such as [1, 2]"); }
    if (!Array.isArray(values)) throw new Error("type a JSON array of the values");
    return values;
  }
  const range = type === "int" ? RANGE.exec(text) : null;
  if (range) {
    const [first, last] = [Number(range[1]), Number(range[2])];
    if (Math.abs(last - first) >= MAX_RANGE) throw new Error(`a range of at most ${MAX_RANGE} values`);
    const step = last >= first ? 1 : -1;
    return Array.from({ length: Math.abs(last - first) + 1 }, (_, i) => first + i * step);
  }
  return text.split(",").map((part) => part.trim()).map((part) => typedValue(part, type));
}

function typedValue(part, type) {
  if (type === "int" || type === "float") {
    const number = part === "" ? NaN : Number(part);
    if (!Number.isFinite(number) || (type === "int" && !Number.isInteger(number))) {
      throw new Error(`'${part}' is not ${type === "int" ? "an int" : "a number"}`);
    }
    return number;
  }
  if (type === "bool") {
    if (TRUE.has(part.toLowerCase())) return true;
    if (FALSE.has(part.toLowerCase())) return false;
    throw new Error(`'${part}' is not true or false`);
  }
  return part;
}

/** The server's reasons for refusing the sweep, in the dialog (run.js has put them on the nodes as well). */
function showRefusal(root, error) {
  const issues = error.issues ?? [];
  root.hidden = false;
  root.replaceChildren(h("p.error-line", {}, `Not run: ${error.message}`), issues.length ? h("ul", {}, issues.map(
    (issue) => h("li", { dataset: { node: issue.node ?? "", input: issue.input ?? "" } },
      h("code", {}, [issue.node, issue.input].filter(Boolean).join(".") || "graph"), " ", issue.message))) : null);
}

/** The run's comparison page in a new tab; with a token the page is fetched with it and shown from a blob URL
 * (kept: the tab reads it after this returns). A blocked pop-up leaves a link to click instead. */
export async function openComparePage(api, runId) {
  let url;
  try {
    url = await api.mediaUrl(`/api/runs/${runId}/compare`);
  } catch (error) {
    toast(`No comparison page for run ${runId}: ${error.message}`, "error");
    return;
  }
  if (!window.open(url, "_blank")) {
    toast(h("span", {}, `Run ${runId}'s comparison page is ready: `, h("a", { href: url, target: "_blank" }, "open it")),
          "ok");
  }
}

/** A "Compare page" button for a finished run's outputs panel when the run was a sweep, else null. */
export function comparePageButton(api, view) {
  const swept = Object.keys(view.outputs ?? {}).some((name) => SWEPT_OUTPUT.test(name));
  return swept ? h("button.small", { type: "button", onclick: () => openComparePage(api, view.id) }, "Compare page")
    : null;
}
