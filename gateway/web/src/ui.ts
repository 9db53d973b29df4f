// Small DOM helpers and the pieces every page shares.
import type { JobState, Progress } from "./api";

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | EventListener | undefined | null>;

// h("button", {class: "primary", onclick: go}, "Submit")
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value as EventListener);
    } else if (value === true) {
      el.setAttribute(key, "");
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

// Replaces an element's children.
export function clear(el: Element, ...children: (Child | Child[])[]) {
  el.replaceChildren();
  append(el, children);
}

function append(el: Element, children: (Child | Child[])[]) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

// A modal confirmation: `body` above two buttons, the second confirming.
// `onConfirm` runs once the dialog closes through it; its error goes to
// `onError`.
export function confirmDialog(options: {
  label: string;
  title: string;
  body: Child[];
  dismiss: string;
  confirm: { text: string; class: string; testid: string };
  onConfirm: () => Promise<void>;
  onError: (message: string) => void;
}) {
  const dialog = h(
    "dialog",
    { class: "card", "aria-label": options.label },
    h(
      "form",
      { method: "dialog" },
      h("h2", {}, options.title),
      options.body,
      h(
        "div",
        { class: "actions" },
        h("button", { value: "dismiss" }, options.dismiss),
        h("button", { value: "confirm", class: options.confirm.class, "data-testid": options.confirm.testid },
          options.confirm.text),
      ),
    ),
  );
  dialog.addEventListener("close", async () => {
    dialog.remove();
    if (dialog.returnValue !== "confirm") return;
    try {
      await options.onConfirm();
    } catch (e) {
      options.onError((e as Error).message);
    }
  });
  document.body.append(dialog);
  dialog.showModal();
}

const STATE_ICON: Record<JobState, string> = {
  PENDING: "◌",
  QUEUED: "⏳",
  INITIALIZING: "⚙",
  RUNNING: "▶",
  COMPLETED: "✔",
  FAILED: "✖",
  CANCELLED: "⊘",
};

// A coloured badge with an icon: readable without colour too.
export function stateBadge(state: JobState): HTMLElement {
  return h(
    "span",
    { class: `badge state-${state.toLowerCase()}`, "data-state": state, role: "status" },
    h("span", { "aria-hidden": "true" }, STATE_ICON[state] ?? "?"),
    " ",
    state.charAt(0) + state.slice(1).toLowerCase(),
  );
}

export function fraction(p: Progress | undefined): number {
  if (!p) return 0;
  if (p.fraction) return Math.min(1, Math.max(0, p.fraction));
  const step = Number(p.step ?? 0);
  const total = Number(p.totalSteps ?? 0);
  return total > 0 ? Math.min(1, step / total) : 0;
}

export function progressBar(p: Progress | undefined, state: JobState): HTMLElement {
  const f = state === "COMPLETED" ? 1 : fraction(p);
  const pct = Math.round(f * 100);
  return h(
    "div",
    { class: "progress", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": pct },
    h("div", { class: "progress-fill", style: `width: ${pct}%` }),
    h("span", { class: "progress-label" }, `${pct}%`),
  );
}

// "1.5s" (proto3 JSON Duration) → seconds.
export function seconds(duration: string | undefined): number {
  if (!duration) return 0;
  return Number(duration.replace(/s$/, "")) || 0;
}

export function shortDuration(s: number): string {
  s = Math.max(0, Math.round(s));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

export function timeAgo(iso: string | undefined): string {
  if (!iso) return "-";
  const s = (Date.now() - Date.parse(iso)) / 1000;
  if (s < 5) return "just now";
  return `${shortDuration(s)} ago`;
}

export function dateTime(iso: string | undefined): string {
  return iso ? new Date(iso).toLocaleString() : "-";
}

export function number(v: number | undefined, digits = 4): string {
  if (v === undefined || v === null || Number.isNaN(v)) return "-";
  if (Math.abs(v) >= 1e4) return v.toFixed(0);
  return Number(v.toPrecision(digits)).toString();
}

export function link(href: string, ...children: Child[]): HTMLAnchorElement {
  return h("a", { href, "data-link": true }, ...children);
}
