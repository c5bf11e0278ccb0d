// What the page knows; every module reads it, main.js refreshes it when the server says so.
export const store = {
  project: null, // /api/project
  categories: [], // /api/categories
  status: null, // /api/status
  selected: new Set(), // ids of selected photos
  expanded: new Set(), // categories showing every photo, not only the first rows
  train: { state: "idle" },
  listeners: {},
};

export function on(event, fn) {
  (store.listeners[event] ||= []).push(fn);
}

export function emit(event, ...args) {
  for (const fn of store.listeners[event] || []) fn(...args);
}
