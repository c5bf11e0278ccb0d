// Talking to `duetml serve`. Every failure becomes an Error whose message is the server's one
// sentence ({"error": ...}), ready to show as it is.

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

async function errorOf(response) {
  try {
    const body = await response.json();
    if (body && typeof body.error === "string") return new ApiError(body.error, response.status);
  } catch {
    /* not JSON */
  }
  return new ApiError(`The server answered ${response.status}: try again.`, response.status);
}

function offline() {
  return new ApiError("duetml serve is not answering: is it still running?", 0);
}

export async function getJSON(url) {
  let response;
  try {
    response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
  } catch {
    throw offline();
  }
  if (!response.ok) throw await errorOf(response);
  return response.json();
}

export async function postJSON(url, body = {}) {
  let response;
  try {
    response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body),
    });
  } catch {
    throw offline();
  }
  if (!response.ok) throw await errorOf(response);
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
      else
        reject(
          new ApiError(
            body && body.error ? body.error : `The server answered ${xhr.status}: try again.`,
            xhr.status,
          ),
        );
    };
    xhr.send(form);
  });
}

// POST JSON and read a stream of JSON lines, calling onLine(object) for each.
export async function postStream(url, body, onLine, signal) {
  let response;
  try {
    response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/x-ndjson" },
      body: JSON.stringify(body),
      signal,
    });
  } catch (exc) {
    if (exc.name === "AbortError") throw exc;
    throw offline();
  }
  if (!response.ok) throw await errorOf(response);
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
