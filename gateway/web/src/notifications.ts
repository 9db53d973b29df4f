// The user's inbox (GET /v1/notifications): their jobs that started,
// finished or were requeued. The jobs service writes each one in the
// transaction of the change and keeps its read state, so the inbox is the
// same in every browser and in trainctl. The page fetches it at sign-in, again
// whenever the live jobs feed shows a job changing state (the entry is
// committed before the feed hears of the change), and after the feed
// reconnects.
import { api, type JobState } from "./api";
import { onConnection, onJob } from "./feed";

export type NotificationKind = "STARTED" | "COMPLETED" | "FAILED" | "CANCELLED" | "REQUEUED";

export interface Notification {
  id: string;
  jobId: string;
  kind: NotificationKind;
  model: string;
  message?: string;
  attempt?: number;
  createTime?: string;
  read?: boolean;
}

interface ListResponse {
  notifications?: Notification[];
  unreadCount?: string;
}

const PAGE = 50;

let items: Notification[] = [];
let unread = 0;
let loaded = false;
let known: Record<string, JobState> = {};
let inFlight = false;
let again = false;
// Bumped at sign-out (a late answer for the previous user is dropped) and at
// every mark (an answer read before the mark would bring back its unread).
let generation = 0;
const listeners = new Set<() => void>();

function changed() {
  for (const listener of listeners) listener();
}

// One fetch at a time; changes that come meanwhile cause one more.
async function refresh() {
  if (inFlight) {
    again = true;
    return;
  }
  inFlight = true;
  try {
    do {
      again = false;
      const asked = generation;
      const r = await api<ListResponse>("GET", `/v1/notifications?pageSize=${PAGE}`);
      if (asked !== generation) {
        again = watching;  // stale: ask again (unless signed out)
        continue;
      }
      items = r.notifications ?? [];
      unread = Number(r.unreadCount ?? 0);
      loaded = true;
      changed();
    } while (again);
  } catch {
    // Offline or signed out: the next feed event or reconnect tries again.
  } finally {
    inFlight = false;
  }
}

let watching = false;

function observe(job: { id: string; state: JobState }) {
  if (known[job.id] === job.state) return;
  known[job.id] = job.state;
  // Any move may have made an entry (the feed may merge RUNNING → QUEUED →
  // INITIALIZING into one snapshot); fetches are coalesced.
  void refresh();
}

// Follows the signed-in user's inbox until the returned function is called.
export function watchNotifications(subject: string): () => void {
  watching = true;
  generation++;
  // Notifications used to live in this browser's storage: drop what is left.
  for (const what of ["notifications", "states", "cursor"]) localStorage.removeItem(`trainmesh.${subject}.${what}`);
  void refresh();
  const offJob = onJob(observe);
  const offConnection = onConnection((connected) => {
    if (connected) void refresh();
  });
  return () => {
    watching = false;
    generation++;
    offJob();
    offConnection();
    items = [];
    unread = 0;
    loaded = false;
    known = {};
  };
}

// False until the first answer arrived.
export function notificationsLoaded(): boolean {
  return loaded;
}

export function notifications(): Notification[] {
  return items;
}

export function unreadCount(): number {
  return unread;
}

// Marks one notification read, or (no id) every one shown so far: one that
// arrived after the list was drawn stays unread.
export async function markRead(id?: string) {
  if (id === undefined && items.length === 0) return;
  const through = id === undefined ? items[0].id : undefined;
  generation++;
  const body = id !== undefined ? { ids: [id] } : { throughId: through };
  const r = await api<{ unreadCount?: string }>("POST", "/v1/notifications:markRead", body);
  for (const n of items) {
    if (n.id === id || (through !== undefined && BigInt(n.id) <= BigInt(through))) n.read = true;
  }
  unread = Number(r.unreadCount ?? 0);
  changed();
  void refresh();  // the server's word, and anything that came meanwhile
}

export function onNotificationsChange(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function describe(n: Notification): string {
  const verb: Record<NotificationKind, string> = {
    STARTED: "started",
    COMPLETED: "completed",
    FAILED: "failed",
    CANCELLED: "was cancelled",
    REQUEUED: "lost its agent and was requeued",
  };
  return `${n.model} job ${n.jobId.slice(0, 8)} ${verb[n.kind] ?? n.kind.toLowerCase()}`;
}
