// Navigation inside the single-page app. Views import it; main.ts says how a
// path is rendered (setRenderer), so no view imports main.ts, which imports
// every view.

export interface Page {
  // Stops the page's streams and timers.
  dispose?: () => void;
}

let renderer: () => void = () => {};

// main.ts: how the current path becomes a page.
export function setRenderer(render: () => void) {
  renderer = render;
}

export function navigate(path: string, replace = false) {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  renderer();
}
