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
// States a job enters with an inbox entry (QUEUED: when it lost its agent).
const NEWSWORTHY: JobState[] = ["RUNNING", "COMPLETED", "FAILED", "CANCELLED", "QUEUED"];

let items: Notification[] = [];
let unread = 0;
let known: Record<string, JobState> = {};
let inFlight = false;
let again = false;
let active = false;
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
      const r = await api<ListResponse>("GET", `/v1/notifications?pageSize=${PAGE}`);
      if (!active) return;
      items = r.notifications ?? [];
      unread = Number(r.unreadCount ?? 0);
      changed();
    } while (again);
  } catch {
    // Offline or signed out: the next feed event or reconnect tries again.
  } finally {
    inFlight = false;
  }
}

function observe(job: { id: string; state: JobState }) {
  if (known[job.id] === job.state) return;
  known[job.id] = job.state;
  if (NEWSWORTHY.includes(job.state)) void refresh();
}

// Follows the signed-in user's inbox until the returned function is called.
export function watchNotifications(subject: string): () => void {
  active = true;
  // Notifications used to live in this browser's storage: drop what is left.
  for (const what of ["notifications", "states", "cursor"]) localStorage.removeItem(`trainmesh.${subject}.${what}`);
  void refresh();
  const offJob = onJob(observe);
  const offConnection = onConnection((connected) => {
    if (connected) void refresh();
  });
  return () => {
    active = false;
    offJob();
    offConnection();
    items = [];
    unread = 0;
    known = {};
  };
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
  const body = id !== undefined ? { ids: [id] } : { throughId: items[0]?.id };
  if (id === undefined && items.length === 0) return;
  const r = await api<{ unreadCount?: string }>("POST", "/v1/notifications:markRead", body);
  const through = id === undefined ? BigInt(items[0].id) : null;
  for (const n of items) {
    if (n.id === id || (through !== null && BigInt(n.id) <= through)) n.read = true;
  }
  unread = Number(r.unreadCount ?? 0);
  changed();
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
