// The playground page: wires the model picker (models.js), the file panel (files.js), the live panel (live.js)
// and the API key (api.js).
import { askKey } from "./api.js";
import { run, useFile } from "./files.js";
import { setRecordingHandler, stop, toggle } from "./live.js";
import { current, load } from "./models.js";

const $ = (id) => document.getElementById(id);

async function loadModel() {
  try {
    await load();
  } catch (err) {
    $("model-info").textContent = "unavailable";
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
$("run-form").addEventListener("submit", (e) => { e.preventDefault(); if (current()) run(current().id); });
$("mic").addEventListener("click", () => { if (current()) toggle(current().id); });
$("model").addEventListener("change", stop);  // a live session talks to the model it was started with
setRecordingHandler(useFile);
$("key-button").addEventListener("click", async () => { if (await askKey("Set the API key for this tab.")) loadModel(); });

showTaskFields();
loadModel();
