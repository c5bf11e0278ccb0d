// The camera: photos for a category (one, or a burst while a button is held) and the live
// view of "Try the model". It is opened only when the user presses a Camera button; one view
// at a time holds it, and it is stopped (its light goes off) when that view closes, another
// view opens, or the tab is hidden.

import { postFiles } from "./api.js";
import { $, confidenceBars, h, replace, toast } from "./dom.js";
import { emit, store } from "./store.js";

const BURST_PER_SECOND = 5; // as Teachable Machine's hold-to-record
const BURST_MAX = 100; // 20 s of holding; one upload, so one undo
const PHOTO_SIDE = 512; // a stored photo: the central square the model looks at, this wide
const LIVE_EVERY_MS = 200; // at most five predictions a second, never two at once

const HIDDEN =
  "The camera was turned off because the page was hidden: press Camera to turn it on again.";

let stream = null;
let holder = null; // the view showing the stream: { stopped(sentence) }
let opening = 0; // bumped on every request, so a late answer to an older one is dropped

// ----- the one stream ------------------------------------------------------------------------

// One sentence for why the camera could not start, saying what to do.
function problemWith(exc) {
  switch (exc && exc.name) {
    case "NotAllowedError":
    case "SecurityError":
      return "The camera is blocked for this page: allow it in the browser (the camera icon in the address bar), then press Camera again.";
    case "NotFoundError":
    case "OverconstrainedError":
      return "No camera was found: connect one, then press Camera again.";
    case "NotReadableError":
    case "AbortError":
      return "The camera is busy or could not start: close other programs using it, then press Camera again.";
    default:
      return "The camera could not start: press Camera to try again.";
  }
}

async function openCamera(view) {
  stopCamera();
  const ticket = ++opening;
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia)
    throw new Error(
      "This browser gives the camera only to pages on http://127.0.0.1 or http://localhost: open duetml there.",
    );
  let found;
  try {
    found = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 1280 }, height: { ideal: 720 } },
      audio: false,
    });
  } catch (exc) {
    throw new Error(problemWith(exc), { cause: exc });
  }
  if (ticket !== opening) {
    // Another Camera button was pressed while this one waited for permission.
    for (const track of found.getTracks()) track.stop();
    return null;
  }
  stream = found;
  holder = view;
  for (const track of found.getVideoTracks())
    track.addEventListener("ended", () => {
      if (stream === found)
        stopCamera("The camera stopped (was it unplugged?): press Camera to try again.");
    });
  return found;
}

// Stop the stream and tell the view that held it, with the sentence to show (or "").
function stopCamera(sentence = "") {
  opening += 1;
  const view = holder;
  if (stream) for (const track of stream.getTracks()) track.stop();
  stream = null;
  holder = null;
  if (view) view.stopped(sentence);
}

export function wireCamera() {
  document.addEventListener("visibilitychange", () => {
    if (document.hidden && holder) stopCamera(HIDDEN);
  });
  window.addEventListener("pagehide", () => stopCamera());
}

// The central square of the video (what the model looks at), at most `side` pixels wide,
// as a JPEG File; null before the first frame has arrived.
async function captureSquare(video, side, name, quality = 0.9) {
  const width = video.videoWidth;
  const height = video.videoHeight;
  const square = Math.min(width, height);
  if (!square) return null;
  const out = Math.min(square, side);
  const canvas = document.createElement("canvas");
  canvas.width = out;
  canvas.height = out;
  canvas
    .getContext("2d")
    .drawImage(video, (width - square) / 2, (height - square) / 2, square, square, 0, 0, out, out);
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", quality));
  return blob ? new File([blob], name, { type: "image/jpeg", lastModified: Date.now() }) : null;
}

function stamp() {
  return new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function showStream(video, found) {
  if (!video.dataset.resumes) {
    // A video element taken out of the page is paused by the browser; the camera is still on,
    // so it plays on (otherwise every frame taken afterwards would be the same picture).
    video.dataset.resumes = "true";
    video.addEventListener("pause", () => {
      if (video.srcObject) video.play().catch(() => {});
    });
  }
  video.srcObject = found;
  try {
    await video.play();
  } catch {
    /* muted inline video plays; a refusal here only delays the first frame */
  }
}

// ----- a category's camera -------------------------------------------------------------------

// The "Camera" button of a category panel and the block it opens; `upload(files)` sends
// photos through the same path as a dropped file (checks, duplicates, undo).
export function categoryCamera(name, upload) {
  const video = h("video", {
    class: "camera-video",
    muted: true,
    playsinline: true,
    "aria-label": `Camera preview for ${name}`,
  });
  video.muted = true;
  const rec = h("span", { class: "camera-rec", hidden: true });
  const status = h("p", { class: "camera-status", role: "status" });
  const take = h("button", { type: "button", class: "btn btn-small", text: "Take photo" });
  const hold = h("button", {
    type: "button",
    class: "btn btn-small camera-hold",
    text: "Hold to record",
    "aria-pressed": "false",
    title: `Press and hold (mouse, finger, Space or Enter): ${BURST_PER_SECOND} photos a second`,
  });
  const close = h("button", {
    type: "button",
    class: "btn btn-small btn-quiet",
    text: "Close camera",
  });
  const view = h("div", { class: "camera-view", hidden: true }, video, rec);
  const controls = h("div", { class: "camera-controls", hidden: true }, take, hold, close);
  const block = h(
    "div",
    { class: "camera-block", hidden: true, role: "group", "aria-label": `Camera for ${name}` },
    view,
    controls,
    status,
  );
  const button = h("button", {
    type: "button",
    class: "btn btn-small",
    text: "Camera",
    "aria-expanded": "false",
    dataset: { key: `camera:${name}` },
  });

  let burst = null; // { frames, done } while the record button is held
  const me = {
    stopped(sentence) {
      endBurst();
      video.srcObject = null;
      view.hidden = true;
      controls.hidden = true;
      button.setAttribute("aria-expanded", "false");
      status.textContent = sentence;
      block.hidden = !sentence;
    },
  };

  button.addEventListener("click", async () => {
    if (holder === me) {
      stopCamera();
      return;
    }
    block.hidden = false;
    status.textContent = "Starting the camera…";
    button.setAttribute("aria-expanded", "true");
    let found;
    try {
      found = await openCamera(me);
    } catch (exc) {
      button.setAttribute("aria-expanded", "false");
      status.textContent = exc.message;
      return;
    }
    if (!found) return;
    view.hidden = false;
    controls.hidden = false;
    status.textContent = "";
    await showStream(video, found);
  });
  close.addEventListener("click", () => {
    if (holder === me) stopCamera();
    else me.stopped("");
  });

  take.addEventListener("click", async () => {
    const photo = await captureSquare(video, PHOTO_SIDE, `camera-${stamp()}.jpg`);
    if (photo) upload([photo]);
  });

  async function record(state) {
    const started = performance.now();
    for (let n = 0; state.active; n += 1) {
      if (state.frames.length >= BURST_MAX) {
        status.textContent = `Stopped at ${BURST_MAX} photos: release, then hold again for more.`;
        break;
      }
      const photo = await captureSquare(
        video,
        PHOTO_SIDE,
        `camera-${stamp()}-${String(n + 1).padStart(3, "0")}.jpg`,
      );
      if (photo) state.frames.push(photo);
      rec.textContent = `● ${state.frames.length}`; // the button keeps its name while held
      const next = started + ((n + 1) * 1000) / BURST_PER_SECOND;
      await sleep(Math.max(0, next - performance.now()));
    }
  }

  function startBurst() {
    if (burst || holder !== me) return;
    const state = { active: true, frames: [] };
    state.done = record(state);
    burst = state;
    status.textContent = "";
    rec.textContent = "● 0";
    rec.hidden = false;
    hold.setAttribute("aria-pressed", "true");
    hold.classList.add("recording");
  }

  async function endBurst() {
    const state = burst;
    if (!state) return;
    burst = null;
    state.active = false;
    rec.hidden = true;
    hold.setAttribute("aria-pressed", "false");
    hold.classList.remove("recording");
    await state.done;
    // All the frames in one request: one entry in the history, so one Undo removes them all.
    if (state.frames.length) upload(state.frames, { oneRequest: true });
  }

  hold.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    event.preventDefault();
    try {
      hold.setPointerCapture(event.pointerId); // letting go outside the button still stops
    } catch {
      /* a pointer the browser no longer tracks: the button's own pointerup still stops */
    }
    startBurst();
  });
  for (const type of ["pointerup", "pointercancel", "lostpointercapture"])
    hold.addEventListener(type, () => endBurst());
  hold.addEventListener("contextmenu", (event) => event.preventDefault()); // a long touch
  hold.addEventListener("keydown", (event) => {
    if (event.key !== " " && event.key !== "Enter") return;
    event.preventDefault();
    if (!event.repeat) startBurst();
  });
  hold.addEventListener("keyup", (event) => {
    if (event.key === " " || event.key === "Enter") endBurst();
  });
  hold.addEventListener("blur", () => endBurst());

  return {
    button,
    block,
    // The panel is gone (its category renamed or removed): its camera goes too.
    dispose() {
      if (holder === me) stopCamera();
    },
  };
}

// ----- the live view of "Try the model" ------------------------------------------------------

const live = { session: null, categories: "" };
const liveView = {
  stopped(sentence) {
    if (live.session) live.session.active = false;
    live.session = null;
    $("#live-video").srcObject = null;
    $("#live").hidden = true;
    $("#live-btn").setAttribute("aria-expanded", "false");
    $("#live-btn").textContent = "Live camera";
    $("#live-status").textContent = sentence;
  },
};

// Given by main.js: data.js's uploadFiles(category, files) and model.js's predictionVerdict.
let uploadPhotos = null;
let predictionVerdict = null;

export function wireLiveCamera({ upload, verdict }) {
  uploadPhotos = upload;
  predictionVerdict = verdict;
  const button = $("#live-btn");
  const select = $("#live-category");
  $("#live-video").muted = true;
  button.addEventListener("click", async () => {
    if (holder === liveView) {
      stopCamera();
      return;
    }
    if (!store.status || !store.status.model) {
      $("#live-status").textContent =
        "There is no model yet: train one first, then the camera shows what the model sees.";
      return;
    }
    $("#live-status").textContent = "Starting the camera…";
    let found;
    try {
      found = await openCamera(liveView);
    } catch (exc) {
      $("#live-status").textContent = exc.message;
      return;
    }
    if (!found) return;
    $("#live-status").textContent = "";
    $("#live").hidden = false;
    button.setAttribute("aria-expanded", "true");
    button.textContent = "Stop the camera";
    fillCategories();
    replace($("#live-label"), h("p", { class: "muted", text: "Asking the model…" }));
    replace($("#live-bars"));
    await showStream($("#live-video"), found);
    const session = { active: true };
    live.session = session;
    liveLoop(session);
  });
  select.addEventListener("change", nameAddButton);
  $("#live-add").addEventListener("click", addFrame);
}

function fillCategories() {
  const names = store.categories.map((c) => c.name);
  if (names.join("\n") === live.categories) return;
  live.categories = names.join("\n");
  const select = $("#live-category");
  const current = select.value;
  replace(
    select,
    names.map((n) => h("option", { value: n, text: n })),
  );
  if (names.includes(current)) select.value = current;
  nameAddButton();
}

function nameAddButton() {
  const target = $("#live-category").value;
  const button = $("#live-add");
  button.disabled = !target;
  button.textContent = target ? `Add this frame to “${target}”` : "Add this frame";
}

// One frame to the model at a time: the next is taken only when the answer is back.
async function liveLoop(session) {
  const video = $("#live-video");
  while (session.active) {
    const started = performance.now();
    // A live frame is exactly the model's input (GET /api/project says how wide): small to send.
    const side = store.project.model_input_side;
    const frame = await captureSquare(video, side, "camera frame.jpg", 0.85);
    if (frame && session.active) {
      try {
        const result = await postFiles("/api/predict?live=true", [frame]);
        if (!session.active) break;
        showLive(result.predictions[0]);
      } catch (exc) {
        if (!session.active) break;
        if (exc.status === 409 || exc.status === 0) {
          stopCamera(exc.message); // no model any more, or the server is gone
          break;
        }
        replace($("#live-label"), h("p", { class: "error-text", text: exc.message }));
        await sleep(1000);
      }
    }
    fillCategories();
    await sleep(Math.max(0, LIVE_EVERY_MS - (performance.now() - started)));
  }
}

function showLive(prediction) {
  const label = $("#live-label");
  if (prediction.error) {
    replace(label, h("p", { class: "error-text", text: prediction.error }));
    replace($("#live-bars"));
    return;
  }
  // "Looks like hat", or "Not sure" with the closest guess and why: as a tried photo says it.
  replace(label, ...predictionVerdict(prediction));
  replace($("#live-bars"), confidenceBars(prediction.top));
}

// The frame on screen joins the training data: how a user fixes what the model gets wrong.
async function addFrame() {
  const target = $("#live-category").value;
  const video = $("#live-video");
  if (!target || !video.srcObject) return;
  const photo = await captureSquare(video, PHOTO_SIDE, `camera-${stamp()}.jpg`);
  if (!photo) return;
  const report = await uploadPhotos(target, [photo]);
  if (report && report.added.length)
    toast(`Added this frame to “${target}”.`, {
      action: { label: "Undo", run: () => emit("undo") },
    });
}
