// The served models, from GET /v1/models: a picker when there are several, what the picked one can do (the
// `lalm` object of its card), a warning when its answers are not to be trusted (random weights, experimental),
// and only the tasks it runs left enabled.
import { api } from "./api.js";

const $ = (id) => document.getElementById(id);
let cards = [];

// The picked model's card, or null before the list is loaded.
export function current() {
  return cards.find((c) => c.id === $("model").value) || null;
}

function mib(bytes) {
  return `${(bytes / 2 ** 20).toFixed(bytes < 2 ** 24 ? 1 : 0)} MiB`;
}

// One line of what `caps` (a card's `lalm` object) can do.
function describe(caps) {
  const family = { lalm: "audio-language model", whisper: "speech recognition", composed: "Whisper + text LLM" };
  const parts = [family[caps.family] || caps.family, caps.chat ? "chat" : "no chat",
                 `tasks: ${caps.tasks.join(", ") || "none"}`,
                 caps.translation ? "translates to English" : "no translation",
                 caps.languages ? `languages: ${caps.languages.join(", ")}` : "any language",
                 `engine ${caps.engine}`];
  if (caps.weights_bytes !== null) parts.push(`weights ${mib(caps.weights_bytes)}`);
  return parts.join(" · ");
}

// Whether the task of the task picker can run on `caps` (translate: /v1/audio/translations).
function can(caps, task) {
  return task === "translate" ? caps.translation : caps.tasks.includes(task);
}

function show() {
  const card = current();
  const caps = card && card.lalm;
  $("model-info").textContent = caps ? describe(caps) : "";
  const warnings = [];
  if (caps && caps.random_weights) {
    warnings.push("This model has random weights: its answers are noise. It is for testing the stack only.");
  }
  if (caps && caps.experimental) warnings.push("This model is experimental: its answers are not yet reliable.");
  $("model-warning").textContent = warnings.join(" ");
  $("model-warning").hidden = warnings.length === 0;
  const task = $("task");
  for (const option of task.options) option.disabled = Boolean(caps) && !can(caps, option.value);
  if (task.selectedOptions[0] && task.selectedOptions[0].disabled) {
    const first = [...task.options].find((o) => !o.disabled);
    if (first) task.value = first.value;
    task.dispatchEvent(new Event("change"));
  }
  $("mic").disabled = Boolean(caps) && !caps.tasks.includes("transcribe");
}

// Fetch the list and fill the picker (keeping the picked model when it is still served).
export async function load() {
  const picked = $("model").value;
  cards = (await (await api("/v1/models")).json()).data;
  const select = $("model");
  select.replaceChildren(...cards.map((c) => new Option(c.id, c.id)));
  if (cards.some((c) => c.id === picked)) select.value = picked;
  select.disabled = cards.length < 2;
  show();
}

$("model").addEventListener("change", show);
