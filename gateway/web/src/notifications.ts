// Lifecycle notifications (a job started, completed, failed, was cancelled),
// made from the live jobs feed and kept per user in localStorage with their
// read state; the feed reopens from the last update seen, so what happened
// while the page was closed shows up too.
import type { Job, JobState } from "./api";
import { onJob } from "./feed";

export interface Notification {
  id: string;
  jobId: string;
  model: string;
  state: JobState;
  time: string;
  read: boolean;
}

const NOTIFY: JobState[] = ["RUNNING", "COMPLETED", "FAILED", "CANCELLED"];
const KEEP = 50;

let user = "";
let items: Notification[] = [];
let known: Record<string, JobState> = {};
let cursor = "";
const listeners = new Set<() => void>();

const key = (what: string) => `trainmesh.${user}.${what}`;

function save() {
  localStorage.setItem(key("notifications"), JSON.stringify(items));
  localStorage.setItem(key("states"), JSON.stringify(known));
  localStorage.setItem(key("cursor"), cursor);
  for (const listener of listeners) listener();
}

// Loads `subject`'s notifications; returns the feed cursor to resume from.
export function loadNotifications(subject: string): string {
  user = subject;
  items = JSON.parse(localStorage.getItem(key("notifications")) ?? "[]");
  known = JSON.parse(localStorage.getItem(key("states")) ?? "{}");
  cursor = localStorage.getItem(key("cursor")) ?? new Date().toISOString();
  return cursor;
}

function observe(job: Job) {
  const before = known[job.id];
  if (before === job.state) return;
  known[job.id] = job.state;
  if (job.updateTime && job.updateTime > cursor) cursor = job.updateTime;
  // A job first seen in a terminal state changed while we were away only if it
  // changed after the cursor; RUNNING is news only as a transition.
  if (NOTIFY.includes(job.state) && (before !== undefined || job.state !== "RUNNING")) {
    items.unshift({
      id: `${job.id}:${job.state}`,
      jobId: job.id,
      model: job.model,
      state: job.state,
      time: job.updateTime ?? new Date().toISOString(),
      read: false,
    });
    items = items.filter((n, i) => items.findIndex((m) => m.id === n.id) === i).slice(0, KEEP);
  }
  save();
}

export function watchNotifications(): () => void {
  return onJob(observe);
}

export function notifications(): Notification[] {
  return items;
}

export function unreadCount(): number {
  return items.filter((n) => !n.read).length;
}

export function markRead(id?: string) {
  for (const n of items) if (id === undefined || n.id === id) n.read = true;
  save();
}

export function onNotificationsChange(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function describe(n: Notification): string {
  const verb: Record<string, string> = {
    RUNNING: "started",
    COMPLETED: "completed",
    FAILED: "failed",
    CANCELLED: "was cancelled",
  };
  return `${n.model} job ${n.jobId.slice(0, 8)} ${verb[n.state] ?? n.state.toLowerCase()}`;
}
