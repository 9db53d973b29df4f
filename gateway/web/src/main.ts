// The trainmesh dashboard: a single-page app on the gateway's REST + SSE.
import "uplot/dist/uPlot.min.css";
import "./style.css";
import { api, session, setUnauthenticatedHandler } from "./api";
import { startFeed, stopFeed, onConnection } from "./feed";
import { navigate, setRenderer, type Page } from "./nav";
import {
  describe,
  markRead,
  notifications,
  notificationsLoaded,
  onNotificationsChange,
  unreadCount,
  watchNotifications,
} from "./notifications";
import { h, clear, link, timeAgo } from "./ui";
import { signInPage } from "./views/signin";
import { forgetPicks, jobsPage } from "./views/jobs";
import { newJobPage } from "./views/newjob";
import { jobPage } from "./views/job";
import { comparePage } from "./views/compare";

const app = document.getElementById("app")!;
let current: Page | null = null;
let shellDispose: (() => void)[] = [];
let who: { subject: string; name?: string } | null = null;

setRenderer(() => void render());

// Links inside the app navigate without reloading.
document.addEventListener("click", (e) => {
  const a = (e.target as Element).closest("a[data-link]") as HTMLAnchorElement | null;
  if (!a || e.ctrlKey || e.metaKey || e.shiftKey || a.target) return;
  e.preventDefault();
  navigate(a.getAttribute("href")!);
});
window.addEventListener("popstate", () => void render());

setUnauthenticatedHandler((reason) => signOut(`Signed out: ${reason}`));

export function signOut(reason = "") {
  session.clear();
  who = null;
  stopFeed();
  forgetPicks();
  for (const d of shellDispose) d();
  shellDispose = [];
  const next = reason ? `/signin?reason=${encodeURIComponent(reason)}` : "/signin";
  navigate(next, true);
}

async function ensureSession(): Promise<boolean> {
  if (!session.token) return false;
  if (who) return true;
  try {
    who = await api<{ subject: string; name?: string }>("GET", "/v1/auth/whoami");
  } catch {
    return false;  // a 401 already went back to sign-in
  }
  startFeed();
  shellDispose.push(watchNotifications(who.subject));
  return true;
}

function agentIndicator(): HTMLElement {
  const el = h("span", { class: "agents", "data-testid": "agents", title: "Trainer agents you can use" }, "…");
  // Every 15 s while an agent is online; every 3 s while none is, so a
  // starting agent shows up within moments.
  let timer = 0;
  let stopped = false;
  const refresh = async () => {
    let online = false;
    try {
      const r = await api<{ onlineCount?: number }>("GET", "/v1/agents");
      const n = r.onlineCount ?? 0;
      online = n > 0;
      el.className = `agents ${online ? "online" : "offline"}`;
      el.textContent = online ? `● ${n} agent${n > 1 ? "s" : ""} online` : "○ waiting for agent…";
    } catch {
      el.textContent = "";
    }
    if (!stopped) timer = window.setTimeout(refresh, online ? 15000 : 3000);
  };
  void refresh();
  shellDispose.push(() => {
    stopped = true;
    clearTimeout(timer);
  });
  return el;
}

function notificationBell(): HTMLElement {
  const count = h("span", { class: "count", "data-testid": "unread" });
  const list = h("div", { class: "menu", hidden: true, role: "menu" });
  const icon = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  icon.setAttribute("viewBox", "0 0 24 24");
  icon.setAttribute("aria-hidden", "true");
  icon.classList.add("icon");
  icon.innerHTML =
    '<path d="M12 2a6 6 0 0 0-6 6v3.6L4.3 15A1 1 0 0 0 5.2 16.5h13.6a1 1 0 0 0 .9-1.5L18 11.6V8a6 6 0 0 0-6-6zm0 20a3 3 0 0 0 2.8-2H9.2A3 3 0 0 0 12 22z" fill="currentColor"/>';
  const button = h(
    "button",
    { class: "bell", "aria-label": "Notifications", "aria-haspopup": "true", "aria-expanded": "false" },
    icon,
    count,
  );
  const draw = () => {
    const unread = unreadCount();
    count.textContent = unread > 0 ? String(unread) : "";
    button.setAttribute("aria-label", `Notifications (${unread} unread)`);
    clear(
      list,
      h(
        "div",
        { class: "menu-head" },
        h("strong", {}, "Notifications"),
        h("button", { class: "link", onclick: () => void markRead() }, "Mark all read"),
      ),
      notifications().length === 0 ? h("p", { class: "muted" }, notificationsLoaded() ? "Nothing yet." : "Loading…") : null,
      notifications().map((n) =>
        h(
          "div",
          { class: `note ${n.read ? "" : "unread"}`, role: "menuitem", "data-kind": n.kind },
          link(`/jobs/${n.jobId}`, describe(n)),
          h("span", { class: "muted" }, ` · ${n.createTime ? timeAgo(n.createTime) : ""}`),
          n.kind !== "STARTED" && n.kind !== "COMPLETED" && n.message
            ? h("div", { class: "muted note-message" }, n.message)
            : null,
          n.read ? null : h("button", { class: "link", onclick: () => void markRead(n.id) }, "Mark read"),
        ),
      ),
    );
  };
  button.addEventListener("click", () => {
    list.hidden = !list.hidden;
    button.setAttribute("aria-expanded", String(!list.hidden));
    draw();
  });
  shellDispose.push(onNotificationsChange(draw));
  draw();
  return h("div", { class: "notifications" }, button, list);
}

function shell(): HTMLElement {
  const live = h("span", { class: "live", title: "Live updates" });
  shellDispose.push(
    onConnection((on) => {
      live.className = `live ${on ? "on" : "off"}`;
      live.textContent = on ? "live" : "reconnecting…";
    }),
  );
  return h(
    "header",
    { class: "top" },
    link("/jobs", h("strong", { class: "brand" }, "trainmesh")),
    h("nav", {}, link("/jobs", "Jobs"), link("/jobs/new", "New job")),
    h("span", { class: "spacer" }),
    agentIndicator(),
    live,
    notificationBell(),
    h("span", { class: "who" }, who?.name || who?.subject || ""),
    h("button", { class: "link", onclick: () => signOut() }, "Sign out"),
  );
}

let shellEl: HTMLElement | null = null;
const main = h("main", { id: "main" });

let generation = 0;

async function render() {
  const mine = ++generation;
  current?.dispose?.();
  current = null;
  const path = location.pathname;
  const signedIn = path !== "/signin" && (await ensureSession());
  if (mine !== generation) return;  // a newer navigation took over meanwhile
  if (!signedIn) {
    shellEl?.remove();
    shellEl = null;
    clear(app, main);
    if (path !== "/signin") history.replaceState(null, "", "/signin");
    current = signInPage(main, new URLSearchParams(location.search).get("reason") ?? "");
    return;
  }
  if (!shellEl) {
    shellEl = shell();
    clear(app, shellEl, main);
  }
  const jobMatch = path.match(/^\/jobs\/([0-9a-f-]{36})$/);
  if (path === "/jobs/new") current = newJobPage(main);
  else if (path === "/compare") current = comparePage(main);
  else if (jobMatch) current = jobPage(main, jobMatch[1]);
  else {
    if (path !== "/jobs") history.replaceState(null, "", "/jobs");
    current = jobsPage(main);
  }
}

void render();
