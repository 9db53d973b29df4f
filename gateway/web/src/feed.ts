// The caller's jobs as they change (GET /v1/jobs:watch, one SSE stream for
// the whole app): the jobs list and the notifications listen to it. After a
// dropped connection it reopens with `since` = the newest update it saw, so
// nothing is missed; snapshots of one job are ordered by lastEventSeq.
import type { Job } from "./api";
import { subscribe, type Subscription } from "./stream";

type Listener = (job: Job) => void;

const listeners = new Set<Listener>();
let subscription: Subscription | null = null;
let newest = "";
let connected = false;
const connectionListeners = new Set<(connected: boolean) => void>();

function url(): string {
  return newest ? `/v1/jobs:watch?since=${encodeURIComponent(newest)}` : "/v1/jobs:watch";
}

export function startFeed(since?: string) {
  if (subscription) return;
  if (since && since > newest) newest = since;
  subscription = subscribe<Job>(
    url(),
    (job) => {
      if (job.updateTime && job.updateTime > newest) newest = job.updateTime;
      for (const listener of listeners) listener(job);
    },
    {
      onOpen: () => setConnected(true),
      onDrop: () => setConnected(false),
      reconnect: url,
    },
  );
}

export function stopFeed() {
  subscription?.close();
  subscription = null;
  setConnected(false);
}

function setConnected(value: boolean) {
  connected = value;
  for (const listener of connectionListeners) listener(value);
}

export function onJob(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function onConnection(listener: (connected: boolean) => void): () => void {
  connectionListeners.add(listener);
  listener(connected);
  return () => connectionListeners.delete(listener);
}
