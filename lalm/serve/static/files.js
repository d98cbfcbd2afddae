// Tasks on a file: transcribe and translate through /v1/audio/transcriptions|translations (streamed for
// json and text, segments for verbose_json, cues for srt and vtt), the other presets through
// /v1/chat/completions with lalm's `task` field, streamed. Timestamps seek the player when clicked.
import { api, events } from "./api.js";

const $ = (id) => document.getElementById(id);
const VIDEO = /\.(mp4|mkv|mov|webm)$/i;

let file = null;

export function player() {
  return $("player-box").querySelector("audio, video");
}

export function useFile(f) {
  file = f;
  const media = document.createElement(f.type.startsWith("video/") || VIDEO.test(f.name) ? "video" : "audio");
  media.controls = true;
  media.preload = "auto";
  media.src = URL.createObjectURL(f);
  const name = document.createElement("p");
  name.id = "file-name";
  name.className = "muted";
  name.textContent = f.name;
  $("player-box").replaceChildren(name, media);
  $("run").disabled = false;
  $("answer").textContent = "";
  $("segments").replaceChildren();
}

function clock(seconds) {
  const m = Math.floor(seconds / 60);
  const s = (seconds - m * 60).toFixed(2).padStart(5, "0");
  return `${String(m).padStart(2, "0")}:${s}`;
}

function seek(seconds) {
  const media = player();
  media.currentTime = seconds;
  media.play().catch(() => {});  // a page may not play sound without a gesture; the seek stands either way
}

function stamp(start, end) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "ts";
  button.dataset.start = start;
  button.textContent = end === undefined ? clock(start) : `${clock(start)} – ${clock(end)}`;
  button.addEventListener("click", () => seek(start));
  return button;
}

// Segments {start, end, text, words?} as clickable lines (words too, when the server gives them).
function showSegments(segments, words) {
  const list = $("segments");
  list.replaceChildren();
  for (const seg of segments) {
    const li = document.createElement("li");
    li.append(stamp(seg.start, seg.end));
    const inside = (words || []).filter((w) => w.start >= seg.start && w.end <= seg.end + 0.01);
    if (inside.length === 0) li.append(seg.text);
    for (const w of inside) {
      const span = document.createElement("span");
      span.className = "word";
      span.dataset.start = w.start;
      span.textContent = `${w.word} `;
      span.addEventListener("click", () => seek(w.start));
      li.append(span);
    }
    list.append(li);
  }
}

function cueTime(text) {
  const [h, m, s] = text.replace(",", ".").split(":");
  return Number(h) * 3600 + Number(m) * 60 + Number(s);
}

// The cues of an SRT or WebVTT document.
function cues(doc) {
  const out = [];
  const lines = doc.split(/\r?\n/);
  lines.forEach((line, i) => {
    const m = line.match(/^(\d+:\d\d:\d\d[.,]\d+) --> (\d+:\d\d:\d\d[.,]\d+)/);
    if (m) out.push({ start: cueTime(m[1]), end: cueTime(m[2]), text: lines[i + 1] || "" });
  });
  return out;
}

function base64Of(f) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result.slice(reader.result.indexOf(",") + 1));
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(f);
  });
}

// The multipart form of a transcription; verbose_json asks for word timestamps too when `words`.
function transcriptionForm(model, format, words) {
  const form = new FormData();
  form.append("file", file, file.name);
  form.append("model", model);
  form.append("response_format", format);
  form.append("temperature", "0");
  if (format === "json" || format === "text") form.append("stream", "true");
  if (words) ["segment", "word"].forEach((g) => form.append("timestamp_granularities[]", g));
  return form;
}

async function transcribe(model, task, format) {
  const streamed = format === "json" || format === "text";
  const path = task === "translate" ? "/v1/audio/translations" : "/v1/audio/transcriptions";
  const words = format === "verbose_json";
  let resp;
  try {
    resp = await api(path, { method: "POST", body: transcriptionForm(model, format, words) });
  } catch (err) {
    // a server without word timestamps refuses them by name: ask again for segments only
    if (!words || err.status !== 400 || err.param !== "timestamp_granularities[]") throw err;
    resp = await api(path, { method: "POST", body: transcriptionForm(model, format, false) });
  }
  if (streamed) {
    for await (const event of events(resp)) {
      if (event.type === "transcript.text.delta") $("answer").textContent += event.delta;
    }
  } else if (format === "verbose_json") {
    const body = await resp.json();
    $("answer").textContent = body.text;
    showSegments(body.segments, body.words);
  } else {
    const doc = await resp.text();
    $("answer").textContent = doc;
    showSegments(cues(doc));
  }
}

async function chat(model, task) {
  const ext = (file.name.match(/\.(\w+)$/) || [, "wav"])[1].toLowerCase();
  const content = [{ type: "input_audio", input_audio: { data: await base64Of(file), format: ext } }];
  const question = $("question").value.trim();
  if (task === "qa" || question) content.push({ type: "text", text: question });
  const resp = await api("/v1/chat/completions", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ model, task, stream: true, temperature: 0, messages: [{ role: "user", content }] }),
  });
  for await (const chunk of events(resp)) {
    const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta.content;
    if (delta) $("answer").textContent += delta;
  }
}

export async function run(model) {
  const task = $("task").value;
  $("error").hidden = true;
  $("answer").textContent = "";
  $("segments").replaceChildren();
  $("run").disabled = true;
  $("run-form").dataset.state = "running";
  try {
    if (task === "transcribe" || task === "translate") await transcribe(model, task, $("format").value);
    else await chat(model, task);
    $("run-form").dataset.state = "done";
  } catch (err) {
    $("error").textContent = err.message;
    $("error").hidden = false;
    $("run-form").dataset.state = "failed";
  } finally {
    $("run").disabled = false;
  }
}
