// Live transcription from the microphone through the Realtime API (/v1/realtime?intent=transcription):
// 16 kHz 16-bit PCM in 100 ms chunks (pcm-worklet.js), turns cut by the server's VAD, each shown as its
// deltas arrive and replaced by the completed transcript. The key travels as the subprotocol
// `openai-insecure-api-key.<key>`, the form browsers can send. What was heard is also kept: on stop it
// becomes a WAV file the file panel can run any task on.
import { apiKey, askKey } from "./api.js";

const $ = (id) => document.getElementById(id);
let live = null;  // {ws, stream, context, configured, chunks}
let onRecording = () => {};

// `handler(file)` receives each finished recording (a 16-bit WAV File).
export function setRecordingHandler(handler) {
  onRecording = handler;
}

function wavFile(chunks, rate) {
  const bytes = chunks.reduce((n, c) => n + c.byteLength, 0);
  const header = new DataView(new ArrayBuffer(44));
  const text = (at, s) => [...s].forEach((ch, i) => header.setUint8(at + i, ch.charCodeAt(0)));
  text(0, "RIFF"); header.setUint32(4, 36 + bytes, true); text(8, "WAVE");
  text(12, "fmt "); header.setUint32(16, 16, true); header.setUint16(20, 1, true); header.setUint16(22, 1, true);
  header.setUint32(24, rate, true); header.setUint32(28, rate * 2, true); header.setUint16(32, 2, true);
  header.setUint16(34, 16, true); text(36, "data"); header.setUint32(40, bytes, true);
  return new File([header, ...chunks], "recording.wav", { type: "audio/wav" });
}

function status(text, speech = false) {
  $("live-status").textContent = text;
  $("live-status").classList.toggle("speech", speech);
}

function showError(message) {
  $("live-error").textContent = message;
  $("live-error").hidden = false;
}

function itemLine(id) {
  let li = document.querySelector(`#live li[data-item="${id}"]`);
  if (!li) {
    li = document.createElement("li");
    li.dataset.item = id;
    li.className = "pending";
    $("live").append(li);
  }
  return li;
}

function base64(buffer) {
  let bin = "";
  for (const b of new Uint8Array(buffer)) bin += String.fromCharCode(b);
  return btoa(bin);
}

function onEvent(event, model) {
  switch (event.type) {
    case "session.created":
      live.ws.send(JSON.stringify({ type: "session.update", session: { type: "transcription", audio: { input: {
        format: { type: "audio/pcm", rate: live.context.sampleRate },
        transcription: { model },
        turn_detection: { type: "server_vad", silence_duration_ms: 500 },
      } } } }));
      break;
    case "session.updated":
      live.configured = true;
      status("listening");
      break;
    case "input_audio_buffer.speech_started":
      status("speech", true);
      break;
    case "input_audio_buffer.speech_stopped":
      status("transcribing");
      break;
    case "input_audio_buffer.committed":
      itemLine(event.item_id);
      break;
    case "conversation.item.input_audio_transcription.delta":
      itemLine(event.item_id).textContent += event.delta;
      break;
    case "conversation.item.input_audio_transcription.completed": {
      const li = itemLine(event.item_id);
      li.textContent = event.transcript;
      li.className = "completed";
      status("listening");
      break;
    }
    case "conversation.item.input_audio_transcription.failed": {
      const li = itemLine(event.item_id);
      li.textContent = event.error.message;
      li.className = "failed";
      break;
    }
    case "error":
      if (["missing_api_key", "invalid_api_key"].includes(event.error.code)) {
        stop();
        askKey(event.error.message).then((saved) => saved && start(model));
      } else {
        showError(event.error.message);
      }
      break;
    default:
  }
}

export async function start(model) {
  $("live-error").hidden = true;
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
  } catch (err) {
    showError(`No microphone: ${err.message}`);
    return;
  }
  const context = new AudioContext({ sampleRate: 16000 });
  await context.audioWorklet.addModule("/static/pcm-worklet.js");
  const chunker = new AudioWorkletNode(context, "pcm16-chunker");
  const mute = context.createGain();
  mute.gain.value = 0;  // the graph must reach the speakers to run; nothing is heard
  context.createMediaStreamSource(stream).connect(chunker).connect(mute).connect(context.destination);

  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const protocols = ["realtime", ...(apiKey() ? [`openai-insecure-api-key.${apiKey()}`] : [])];
  const url = `${scheme}://${location.host}/v1/realtime?intent=transcription&model=${encodeURIComponent(model)}`;
  const ws = new WebSocket(url, protocols);
  live = { ws, stream, context, configured: false, chunks: [] };
  ws.onmessage = (msg) => onEvent(JSON.parse(msg.data), model);
  ws.onclose = () => { if (live && live.ws === ws) stop(); };
  chunker.port.onmessage = (msg) => {
    if (live) live.chunks.push(msg.data);
    if (live && live.configured && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify({ type: "input_audio_buffer.append", audio: base64(msg.data) }));
    }
  };
  $("mic").textContent = "Stop microphone";
  status("connecting");
}

export function stop() {
  if (!live) return;
  const { ws, stream, context, chunks } = live;
  live = null;
  ws.close();
  stream.getTracks().forEach((t) => t.stop());
  context.close();
  $("mic").textContent = "Start microphone";
  status("off");
  if (chunks.length >= 5) onRecording(wavFile(chunks, context.sampleRate));  // half a second or more
}

export function toggle(model) {
  if (live) stop();
  else start(model);
}
