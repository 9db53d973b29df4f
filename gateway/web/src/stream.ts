// Server-Sent Events from the gateway, opened with a signed URL (POST
// /v1/auth:signUrl: the path only, for minutes; the session token never goes
// into a URL). The browser's EventSource reconnects by itself and sends
// Last-Event-ID, which the gateway maps to after_seq: nothing is missed or
// seen twice. When the signed URL expires the stream ends with
// UNAUTHENTICATED; it is reopened at once with a fresh one, after the last
// event seen (`afterSeq`). `end` closes it for good (the stream is over: a
// finished job); `error` events carry a google.rpc.Status.
import { ApiError, signedUrl } from "./api";

export interface Subscription {
  close(): void;
}

export interface StreamOptions {
  onEnd?: () => void;
  onError?: (status: { code?: number; message?: string }) => void;
  onOpen?: () => void;
  onDrop?: () => void;
  // For streams without event ids (the jobs feed): after a dropped
  // connection, reopen at the URL this returns (e.g. with `since`).
  reconnect?: () => string;
}

const UNAVAILABLE = 14;
const UNAUTHENTICATED = 16;

export function subscribe<T>(path: string, onMessage: (message: T) => void, options: StreamOptions = {}): Subscription {
  let closed = false;
  let source: EventSource | undefined;
  let retry: number | undefined;
  let lastId = "";
  // Reopens in a row without a message in between: back off (a URL that
  // keeps being refused must not become a tight loop).
  let refusals = 0;
  // Where to reopen: the feed says; streams with ids resume after the last.
  const resumePath = () => {
    if (options.reconnect) return options.reconnect();
    if (!lastId) return path;
    const [base, query = ""] = path.split("?", 2);
    const params = new URLSearchParams(query);
    params.set("afterSeq", lastId);
    return `${base}?${params}`;
  };
  // Gives up after this many refusals in a row (the error is reported).
  const MAX_REFUSALS = 8;
  const backoff = () => (refusals === 0 ? 0 : Math.min(30000, 1000 * 2 ** refusals));
  const giveUp = (status: { code?: number; message?: string }) => {
    closed = true;
    source?.close();
    options.onError?.(status);
  };
  const reopen = (delay: number) => {
    source?.close();
    clearTimeout(retry);
    retry = window.setTimeout(() => !closed && void open(resumePath()), delay);
  };
  const open = async (target: string) => {
    let url: string;
    try {
      url = await signedUrl(target);
    } catch (e) {
      if (closed) return;
      if (e instanceof ApiError && e.status >= 400 && e.status < 500 && e.status !== 429) {
        // Signed out, or not this user's: nothing to retry.
        closed = true;
        options.onError?.({ code: e.code, message: e.message });
        return;
      }
      options.onDrop?.();
      reopen(3000);
      return;
    }
    if (closed) return;
    const es = new EventSource(url);
    source = es;
    es.onmessage = (e) => {
      refusals = 0;
      if (e.lastEventId) lastId = e.lastEventId;
      onMessage(JSON.parse(e.data) as T);
    };
    es.onopen = () => options.onOpen?.();
    es.addEventListener("end", () => {
      closed = true;
      es.close();
      options.onEnd?.();
    });
    es.addEventListener("error", (e) => {
      if (es !== source) return;  // a source already replaced
      // A server-sent `event: error` has data; a dropped connection does not.
      const data = (e as MessageEvent).data;
      if (typeof data === "string" && data.length > 0) {
        const status = JSON.parse(data);
        if (status.code === UNAUTHENTICATED && !closed) {
          // The signed URL expired (or the stream's credential did): sign again.
          if (refusals >= MAX_REFUSALS) return giveUp(status);
          reopen(backoff());
          refusals++;
          return;
        }
        options.onError?.(status);
        // Unavailable (a draining server) is resumed below; anything else ends it.
        if (status.code !== UNAVAILABLE) {
          closed = true;
          es.close();
          return;
        }
      }
      if (closed) return;
      options.onDrop?.();
      if (es.readyState === EventSource.CLOSED) {
        // The gateway answered with an error instead of a stream (a 4xx or
        // 503): back off, and stop after a few in a row.
        if (refusals >= MAX_REFUSALS) return giveUp({ message: "the stream cannot be opened" });
        reopen(Math.max(1000, backoff()));
        refusals++;
      } else if (options.reconnect) {
        // A fresh signed URL: the one in hand may have expired.
        reopen(1000);
      }
      // Otherwise EventSource reconnects by itself with Last-Event-ID.
    });
  };
  void open(path);
  return {
    close() {
      closed = true;
      clearTimeout(retry);
      source?.close();
    },
  };
}
