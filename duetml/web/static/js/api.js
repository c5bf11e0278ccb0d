// Talking to `duetml serve`. Every failure becomes an Error whose message is the server's one
// sentence ({"error": ...}), ready to show as it is.

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

// The server's one sentence for a failed request, or a general one if it sent none.
function errorFrom(body, status) {
  if (body && typeof body.error === "string") return new ApiError(body.error, status);
  return new ApiError(`The server answered ${status}: try again.`, status);
}

async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    /* not JSON */
  }
  return errorFrom(body, response.status);
}

function offline() {
  return new ApiError("duetml serve is not answering: is it still running?", 0);
}

// Every fetch goes through here: no answer at all, or an answer that is not 2xx, becomes an
// ApiError; a caller's own abort stays an AbortError.
async function request(url, options) {
  let response;
  try {
    response = await fetch(url, options);
  } catch (exc) {
    if (exc.name === "AbortError") throw exc;
    throw offline();
  }
  if (!response.ok) throw await errorOf(response);
  return response;
}

export async function getJSON(url) {
  const response = await request(url, {
    headers: { Accept: "application/json" },
    cache: "no-store",
  });
  return response.json();
}

// GET a download: its content as a Blob and the file name the server gave it.
export async function getFile(url, fallbackName) {
  const response = await request(url, { cache: "no-store" });
  const disposition = response.headers.get("Content-Disposition") || "";
  const match = /filename="([^"]+)"/.exec(disposition);
  return { blob: await response.blob(), name: match ? match[1] : fallbackName };
}

export async function postJSON(url, body = {}) {
  const response = await request(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(body),
  });
  return response.json();
}

// POST files as multipart with upload progress (fetch cannot report it): onProgress(sentBytes).
export function postFiles(url, files, onProgress = () => {}) {
  const form = new FormData();
  for (const file of files) form.append("files", file, file.name);
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.onprogress = (event) => onProgress(event.loaded, event.total);
    xhr.onerror = () => reject(offline());
    xhr.onload = () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        /* not JSON */
      }
      if (xhr.status >= 200 && xhr.status < 300 && body) resolve(body);
      else reject(errorFrom(body, xhr.status));
    };
    xhr.send(form);
  });
}

// POST JSON and read a stream of JSON lines, calling onLine(object) for each.
export async function postStream(url, body, onLine, signal) {
  const response = await request(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/x-ndjson" },
    body: JSON.stringify(body),
    signal,
  });
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (value) buffer += decoder.decode(value, { stream: true });
    let newline;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, newline).trim();
      buffer = buffer.slice(newline + 1);
      if (line) onLine(JSON.parse(line));
    }
    if (done) break;
  }
  if (buffer.trim()) onLine(JSON.parse(buffer));
}
