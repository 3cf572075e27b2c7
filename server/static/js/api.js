// The HTTP API of `nodeforge serve`: JSON calls, the bearer token (asked once, kept in sessionStorage), uploads,
// media fetched with the token, and a run's server-sent events read through fetch (EventSource cannot send the
// Authorization header).

const TOKEN_KEY = "nodeforge.token";

export class ApiError extends Error {
  constructor(status, detail, issues) {
    super(detail);
    this.status = status;
    this.issues = issues ?? null;
  }
}

export class Api {
  /** @param {() => Promise<string|null>} askToken shows the token dialog; resolves to the token or null */
  constructor(askToken) {
    this.askToken = askToken;
    this.token = sessionStorage.getItem(TOKEN_KEY);
  }

  headers(extra = {}) {
    return this.token ? { ...extra, Authorization: `Bearer ${this.token}` } : extra;
  }

  /** A request; on 401 asks for the token once and retries. Errors become ApiError with the server's detail. */
  async request(method, path, body, { raw = false } = {}) {
    for (let attempt = 0; ; attempt++) {
      const init = { method, headers: this.headers() };
      if (body instanceof FormData) init.body = body;
      else if (body !== undefined) {
        init.body = JSON.stringify(body);
        init.headers["Content-Type"] = "application/json";
      }
      const response = await fetch(path, init);
      if (response.status === 401 && attempt < 3 && (await this.renewToken())) continue;
      if (raw && response.ok) return response;
      if (response.status === 204) return null;
      const text = await response.text();
      let data = null;
      try {
        data = text ? JSON.parse(text) : null;
      } catch {
        data = { detail: text };
      }
      if (!response.ok) {
        throw new ApiError(response.status, data?.detail ?? response.statusText, data?.issues);
      }
      return data;
    }
  }

  /** Ask for the token (one dialog however many requests were refused at once). */
  async renewToken() {
    this.asking ??= this.askToken().finally(() => { this.asking = null; });
    const token = await this.asking;
    if (!token) return false;
    this.token = token;
    sessionStorage.setItem(TOKEN_KEY, token);
    return true;
  }

  get(path) { return this.request("GET", path); }
  put(path, body) { return this.request("PUT", path, body); }
  post(path, body) { return this.request("POST", path, body); }
  delete(path) { return this.request("DELETE", path); }

  upload(file) {
    const form = new FormData();
    form.append("file", file, file.name);
    return this.request("POST", "/api/uploads", form);
  }

  /** A URL the page can show: the artifact URL itself without a token, else an object URL of its bytes. */
  async mediaUrl(url) {
    if (!this.token) return url;
    const response = await this.request("GET", url, undefined, { raw: true });
    return URL.createObjectURL(await response.blob());
  }

  /**
   * Follow a run's events (replayed from the start, then live) until `run.finished` or `signal` aborts.
   * Reconnects after a dropped connection, resuming after the last event id it saw.
   */
  async followRun(runId, onEvent, signal) {
    let last = null;
    for (let attempt = 0; attempt < 20 && !signal?.aborted; attempt++) {
      const headers = this.headers(last === null ? {} : { "Last-Event-ID": String(last) });
      let response;
      try {
        response = await fetch(`/api/runs/${runId}/events`, { headers, signal });
      } catch (error) {
        if (signal?.aborted) return;
        await new Promise((resolve) => setTimeout(resolve, 500));
        continue;
      }
      if (response.status === 401 && (await this.renewToken())) continue;
      if (!response.ok) throw new ApiError(response.status, `events: ${response.statusText}`);
      if (response.status === 204) return; // the run had finished by the last event seen: nothing more comes
      const finished = await readEvents(response.body, (id, event) => {
        if (id !== null) last = id;
        onEvent(event);
      });
      if (finished) return;
    }
  }
}

/** Parse a server-sent event stream; true once a `run.finished` event was read. */
async function readEvents(body, handle) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return false;
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const frame = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let id = null;
        const data = [];
        for (const line of frame.split("\n")) {
          if (line.startsWith("id:")) id = Number(line.slice(3).trim());
          else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
        }
        if (!data.length) continue;
        const event = JSON.parse(data.join("\n"));
        handle(id, event);
        if (event.kind === "run.finished") return true;
      }
    }
  } catch (error) {
    if (error.name === "AbortError") return true;
    return false;
  } finally {
    reader.releaseLock?.();
  }
}
