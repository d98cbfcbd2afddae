// The playground's way to the public API: the API key (asked once when the server wants one, kept in this
// tab's sessionStorage), fetch with OpenAI error bodies turned into their messages, and server-sent events.

const KEY_ITEM = "lalm-api-key";

export function apiKey() {
  return sessionStorage.getItem(KEY_ITEM) || "";
}

// Show the key dialog with `reason`; resolves true when a key was saved.
export function askKey(reason) {
  const dialog = document.getElementById("key-dialog");
  const input = document.getElementById("key-input");
  document.getElementById("key-reason").textContent = reason || "This server needs an API key.";
  input.value = apiKey();
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      const saved = dialog.returnValue === "save" && input.value.trim() !== "";
      if (saved) sessionStorage.setItem(KEY_ITEM, input.value.trim());
      resolve(saved);
    }, { once: true });
  });
}

// An error the server answered (OpenAI's error body: message, code, param) or a stream's error event.
export class ServerError extends Error {
  constructor(message, status, code, param = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.param = param;
  }
}

async function errorOf(resp) {
  const text = await resp.text();
  try {
    const err = JSON.parse(text).error;
    return new ServerError(err.message, resp.status, err.code, err.param);
  } catch {
    return new ServerError(text || `HTTP ${resp.status}`, resp.status, null);
  }
}

// fetch(path) with the key; a 401 asks for a key and tries again; another error throws its message.
export async function api(path, init = {}) {
  for (;;) {
    const headers = { ...(init.headers || {}) };
    if (apiKey()) headers.Authorization = `Bearer ${apiKey()}`;
    const resp = await fetch(path, { ...init, headers });
    if (resp.ok) return resp;
    const err = await errorOf(resp);
    if (resp.status !== 401 || !(await askKey(err.message))) throw err;
  }
}

// The JSON events of a text/event-stream response, as they arrive; an error event throws its message.
export async function* events(resp) {
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
      if (!data || data === "[DONE]") continue;
      const event = JSON.parse(data);
      if (event.error) throw new ServerError(event.error.message, 0, event.error.code);
      yield event;
    }
  }
}
