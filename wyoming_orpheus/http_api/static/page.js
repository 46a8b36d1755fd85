// The voice page: lists voices, speaks through /v1/audio/speech as 24 kHz PCM and plays it
// with Web Audio while it streams. window.orpheus holds the page state (tests read it).
"use strict";

const RATE = 24000;
const TAGS = ["laugh", "chuckle", "sigh", "cough", "sniffle", "groan", "yawn", "gasp"];
const LANGUAGES = { en: "English", fr: "French", de: "German", ko: "Korean", hi: "Hindi",
                    zh: "Mandarin", es: "Spanish", it: "Italian" };
const $ = (id) => document.getElementById(id);
const state = window.orpheus = { status: "idle", decodedSeconds: 0, error: null, voices: 0 };

function apiKey() { return localStorage.getItem("orpheus-api-key") || ""; }

function headers() {
  const h = { "Content-Type": "application/json" };
  if (apiKey()) h.Authorization = "Bearer " + apiKey();
  return h;
}

function setStatus(status, text) {
  state.status = status;
  $("status").textContent = text;
}

function showError(message) {
  state.error = message;
  $("error").textContent = message;
  $("error").hidden = false;
  setStatus("error", "");
}

async function errorText(response) {
  if (response.status === 401) $("key-box").hidden = false;
  try {
    const body = await response.json();
    return body.error.message;
  } catch (e) {
    return "HTTP " + response.status;
  }
}

async function loadVoices() {
  const response = await fetch("/v1/audio/voices", { headers: headers() });
  if (!response.ok) return showError(await errorText(response));
  const { voices } = await response.json();
  const select = $("voice");
  select.replaceChildren();
  const groups = {};
  for (const voice of voices) {
    if (!groups[voice.language]) {
      groups[voice.language] = document.createElement("optgroup");
      groups[voice.language].label = LANGUAGES[voice.language] || voice.language;
      select.append(groups[voice.language]);
    }
    const option = new Option(`${voice.name} - ${voice.description}`, voice.id);
    groups[voice.language].append(option);
  }
  state.voices = voices.length;
}

function wavBlob(chunks, samples) {
  const header = new DataView(new ArrayBuffer(44));
  const text = (offset, s) => [...s].forEach((c, i) => header.setUint8(offset + i, c.charCodeAt(0)));
  text(0, "RIFF"); header.setUint32(4, 36 + samples * 2, true); text(8, "WAVE");
  text(12, "fmt "); header.setUint32(16, 16, true); header.setUint16(20, 1, true);
  header.setUint16(22, 1, true); header.setUint32(24, RATE, true);
  header.setUint32(28, RATE * 2, true); header.setUint16(32, 2, true);
  header.setUint16(34, 16, true); text(36, "data"); header.setUint32(40, samples * 2, true);
  return new Blob([header, ...chunks], { type: "audio/wav" });
}

let controller = null;

async function speak() {
  $("error").hidden = true;
  $("download").hidden = true;
  state.error = null;
  state.decodedSeconds = 0;
  controller = new AbortController();
  $("speak").disabled = true;
  $("stop").disabled = false;
  setStatus("loading", "Generating...");
  const context = new AudioContext({ sampleRate: RATE });
  let playAt = 0;
  const chunks = [];
  let samples = 0;
  let carry = null; // an odd byte split across network chunks
  try {
    const response = await fetch("/v1/audio/speech", {
      method: "POST",
      headers: headers(),
      signal: controller.signal,
      body: JSON.stringify({
        model: "orpheus", input: $("text").value, voice: $("voice").value,
        response_format: "pcm", speed: Number($("speed").value),
      }),
    });
    if (!response.ok) return showError(await errorText(response));
    const reader = response.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      let bytes = value;
      if (carry) { bytes = new Uint8Array([carry, ...value]); carry = null; }
      if (bytes.length % 2) { carry = bytes[bytes.length - 1]; bytes = bytes.slice(0, -1); }
      if (!bytes.length) continue;
      const pcm = new Int16Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
      chunks.push(pcm);
      samples += pcm.length;
      const buffer = context.createBuffer(1, pcm.length, RATE);
      const channel = buffer.getChannelData(0);
      for (let i = 0; i < pcm.length; i++) channel[i] = pcm[i] / 32768;
      const source = context.createBufferSource();
      source.buffer = buffer;
      source.connect(context.destination);
      playAt = Math.max(playAt, context.currentTime + 0.05);
      source.start(playAt);
      playAt += buffer.duration;
      state.decodedSeconds = samples / RATE;
      setStatus("playing", `Playing... ${state.decodedSeconds.toFixed(1)} s received`);
    }
    const link = $("download");
    link.href = URL.createObjectURL(wavBlob(chunks, samples));
    link.hidden = false;
    setStatus("done", `Done: ${(samples / RATE).toFixed(1)} s of audio.`);
  } catch (err) {
    if (err.name === "AbortError") setStatus("stopped", "Stopped.");
    else showError("The request failed: " + err.message);
  } finally {
    $("speak").disabled = false;
    $("stop").disabled = true;
  }
}

function insertTag(tag) {
  const area = $("text");
  const at = area.selectionStart ?? area.value.length;
  const glued = at > 0 && !/\s/.test(area.value[at - 1]);
  const insert = `${glued ? " " : ""}<${tag}> `;
  area.value = area.value.slice(0, at) + insert + area.value.slice(area.selectionEnd ?? at);
  area.focus();
  area.selectionStart = area.selectionEnd = at + insert.length;
}

for (const tag of TAGS) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = `<${tag}>`;
  button.addEventListener("click", () => insertTag(tag));
  $("tags").append(button);
}
$("speed").addEventListener("input", () => {
  $("speed-value").textContent = Number($("speed").value).toFixed(2);
});
$("speak").addEventListener("click", speak);
$("stop").addEventListener("click", () => controller && controller.abort());
$("save-key").addEventListener("click", () => {
  localStorage.setItem("orpheus-api-key", $("api-key").value.trim());
  $("key-box").hidden = true;
  $("error").hidden = true;
  loadVoices();
});
loadVoices();
