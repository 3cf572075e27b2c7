// Small page furniture shared by the panels: element building, modal dialogs, toasts, the hover tooltip and the
// image lightbox.

/** Build an element: h("button.primary#run", {onclick}, "Run"). */
export function h(tag, props = {}, ...children) {
  const [name, ...rest] = tag.split(/(?=[.#])/);
  const element = document.createElement(name || "div");
  for (const part of rest) {
    if (part.startsWith(".")) element.classList.add(part.slice(1));
    else element.id = part.slice(1);
  }
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(element.dataset, value);
    else if (key in element && key !== "list") element[key] = value;
    else element.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/**
 * A modal dialog. `body` is an element (or a function building one from a `done` callback); buttons are
 * [{label, value, primary}] where value may be a function of the dialog (return undefined to keep it open).
 * Resolves with the chosen value, or null when dismissed (Escape, the backdrop, Cancel).
 */
export function modal({ title, body, buttons = [{ label: "OK", value: true, primary: true }], cancel = "Cancel",
                        className = "" }) {
  return new Promise((resolve) => {
    const root = document.getElementById("modal-root");
    const finish = (value) => {
      backdrop.remove();
      document.removeEventListener("keydown", onKey, true);
      resolve(value);
    };
    const choose = async (button) => {
      const value = typeof button.value === "function" ? await button.value(dialog) : button.value;
      if (value !== undefined) finish(value);
    };
    const content = typeof body === "function" ? body(finish) : body;
    const actions = h("div.actions",
      {}, cancel ? h("button", { type: "button", onclick: () => finish(null) }, cancel) : null,
      buttons.map((button) => h(`button${button.primary ? ".primary" : ""}${button.danger ? ".danger" : ""}`,
                                { type: "button", onclick: () => choose(button) }, button.label)));
    const dialog = h(`form.dialog${className ? `.${className}` : ""}`, {
      role: "dialog",
      onsubmit: (event) => {
        event.preventDefault();
        const primary = buttons.find((button) => button.primary);
        if (primary) choose(primary);
      },
    }, h("h2", {}, title), content, actions);
    const backdrop = h("div.backdrop", { onmousedown: (event) => { if (event.target === backdrop) finish(null); } },
                       dialog);
    const onKey = (event) => {
      if (event.key === "Escape") {
        event.stopPropagation();
        finish(null);
      }
    };
    document.addEventListener("keydown", onKey, true);
    root.append(backdrop);
    (dialog.querySelector("[autofocus]") ?? dialog.querySelector("input, textarea, select, button.primary"))?.focus();
  });
}

/** Ask for one line of text; null when dismissed. */
export async function askText(title, value = "", { label = "", placeholder = "", multiline = false } = {}) {
  const input = multiline
    ? h("textarea.field", { value, placeholder, rows: 6, autofocus: true })
    : h("input.field", { value, placeholder, autofocus: true, spellcheck: false });
  const result = await modal({ title, body: h("label.stack", {}, label, input),
                               buttons: [{ label: "OK", value: () => input.value, primary: true }] });
  return result === null ? null : String(result);
}

export function confirmAction(title, message, label = "OK", danger = false) {
  return modal({ title, body: h("p", {}, message), buttons: [{ label, value: true, primary: !danger, danger }] })
    .then((value) => value === true);
}

/** A short message; `kind` is info, ok, warn or error. At a page position when given (refused links). */
export function toast(message, kind = "info", at = null) {
  const element = h(`div.toast.${kind}`, { role: kind === "error" || kind === "warn" ? "alert" : "status" }, message);
  if (at && Number.isFinite(at.x)) {
    element.classList.add("floating");
    element.style.left = `${at.x + 14}px`;
    element.style.top = `${at.y + 10}px`;
    document.body.append(element);
  } else {
    document.getElementById("toasts").append(element);
  }
  setTimeout(() => element.classList.add("fade"), kind === "error" ? 7000 : 3500);
  setTimeout(() => element.remove(), kind === "error" ? 7600 : 4100);
  return element;
}

const tooltip = () => document.getElementById("tooltip");

/** The hover tooltip: {title, body} at a page position, or null to hide it. */
export function showTooltip(text, x, y) {
  const element = tooltip();
  if (!text) {
    element.hidden = true;
    return;
  }
  element.replaceChildren(h("strong", {}, text.title), ...(text.body ? [h("div", {}, text.body)] : []));
  element.hidden = false;
  const width = element.offsetWidth;
  element.style.left = `${Math.min(x + 16, window.innerWidth - width - 8)}px`;
  element.style.top = `${y + 18}px`;
}

/** Tooltips for page elements that carry data-tip-title / data-tip. */
export function installTooltips(root) {
  root.addEventListener("mouseover", (event) => {
    const target = event.target.closest("[data-tip]");
    if (target) showTooltip({ title: target.dataset.tipTitle ?? "", body: target.dataset.tip }, event.clientX,
                            event.clientY);
  });
  root.addEventListener("mouseout", (event) => {
    if (event.target.closest("[data-tip]")) showTooltip(null);
  });
  root.addEventListener("pointerdown", () => showTooltip(null), true);  // a click ends the hover: Run, then the tabs
}

/** Show an image full size with a download link. */
export function lightbox(src, filename) {
  const box = h("div.lightbox", { onclick: (event) => { if (event.target === box) box.remove(); } },
    h("img", { src, alt: filename }),
    h("div.lightbox-bar", {},
      h("a.button", { href: src, download: filename }, "Download"),
      h("button", { type: "button", onclick: () => box.remove() }, "Close")));
  const onKey = (event) => {
    if (event.key === "Escape") {
      box.remove();
      document.removeEventListener("keydown", onKey);
    }
  };
  document.addEventListener("keydown", onKey);
  document.body.append(box);
}
