// The playground page: wires the file panel (files.js), the live panel (live.js) and the API key (api.js).
import { api, askKey } from "./api.js";
import { run, useFile } from "./files.js";
import { setRecordingHandler, toggle } from "./live.js";

const $ = (id) => document.getElementById(id);
let model = null;

async function loadModel() {
  try {
    const body = await (await api("/v1/models")).json();
    model = body.data[0].id;
    $("model").textContent = model;
  } catch (err) {
    $("model").textContent = "unavailable";
    $("error").textContent = err.message;
    $("error").hidden = false;
  }
}

function showTaskFields() {
  const task = $("task").value;
  $("question-label").hidden = task !== "qa";
  $("format-label").hidden = !(task === "transcribe" || task === "translate");
}

$("file").addEventListener("change", () => $("file").files[0] && useFile($("file").files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  if (e.dataTransfer.files[0]) useFile(e.dataTransfer.files[0]);
});
$("task").addEventListener("change", showTaskFields);
$("run-form").addEventListener("submit", (e) => { e.preventDefault(); run(model); });
$("mic").addEventListener("click", () => toggle(model));
setRecordingHandler(useFile);
$("key-button").addEventListener("click", async () => { if (await askKey("Set the API key for this tab.")) loadModel(); });

showTaskFields();
loadModel();
