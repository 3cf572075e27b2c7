// Undo and redo over whole documents, and a draft per browser tab that survives a reload.
//
// Every change the editor reports is compared with the last state as document text (the view left out: panning
// is not an edit); a different one becomes a step. Undo puts the previous document back on the canvas as it was
// (positions kept, never laid out again). The draft of a graph with unsaved changes lives in this tab's
// sessionStorage, so a reload (or a crash of the tab) offers it back, and a saved graph leaves no draft.

const LIMIT = 200;
const DRAFT_KEY = "nodeforge.draft";

export class History {
  /** @param {object} editor the page's editor (library, canvas, graphChanged) */
  constructor(editor) {
    this.editor = editor;
    this.past = [];
    this.future = [];
    this.current = null;
    this.restoring = false;
    this.pending = null;
  }

  /** A new graph is shown: nothing to undo. */
  reset() {
    clearTimeout(this.pending);
    this.pending = null;
    this.past = [];
    this.future = [];
    this.current = this.editor.library.snapshot();
  }

  /** After a change. The changes of one event (a delete unlinks, then removes) make one step, taken once the
   * event is over. */
  record() {
    if (this.restoring || this.current === null || this.pending) return;
    this.pending = setTimeout(() => this.commit(), 0);
  }

  /** A new step when the document differs from the last one; the tab's draft follows. */
  commit() {
    clearTimeout(this.pending);
    this.pending = null;
    if (this.restoring || this.current === null) return;
    const now = this.editor.library.snapshot();
    if (now !== this.current) {
      this.past.push(this.current);
      if (this.past.length > LIMIT) this.past.shift();
      this.future = [];
      this.current = now;
    }
    this.keepDraft();
  }

  undo() {
    return this.step(this.past, this.future);
  }

  redo() {
    return this.step(this.future, this.past);
  }

  /** Go to the last state of `from`, keeping the current one on `to`; false when `from` is empty. */
  async step(from, to) {
    if (this.pending) this.commit();
    if (!from.length) return false;
    to.push(this.current);
    await this.restore(from.pop());
    return true;
  }

  async restore(text) {
    const { library, canvas } = this.editor;
    const document = JSON.parse(text);
    document.ui = { ...document.ui, view: library.document().ui.view };
    this.restoring = true;
    try {
      library.current.description = document.description ?? "";
      await canvas.load(document, { keepLayout: true });
      this.current = text;
    } finally {
      this.restoring = false;
    }
    this.editor.graphChanged();
  }

  keepDraft() {
    const { library } = this.editor;
    try {
      if (library.dirty()) {
        const { name, readonly } = library.current;
        sessionStorage.setItem(DRAFT_KEY, JSON.stringify({ name, readonly, document: library.document() }));
      } else {
        sessionStorage.removeItem(DRAFT_KEY);
      }
    } catch {
      // storage full or disabled: the draft is a convenience, the work on the canvas is untouched
    }
  }

  /** The draft this tab left before a reload: {name, readonly, document}, or null. */
  static draft() {
    try {
      return JSON.parse(sessionStorage.getItem(DRAFT_KEY) ?? "null");
    } catch {
      return null;
    }
  }
}
