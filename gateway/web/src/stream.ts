// Server-Sent Events from the gateway. The browser's EventSource reconnects
// by itself and sends Last-Event-ID, which the gateway maps to after_seq:
// nothing is missed or seen twice. `end` closes it for good (the stream is
// over: a finished job); `error` events carry a google.rpc.Status.
import { withToken } from "./api";

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

export function subscribe<T>(path: string, onMessage: (message: T) => void, options: StreamOptions = {}): Subscription {
  let closed = false;
  let source: EventSource;
  let retry: number | undefined;
  const open = (url: string) => {
    source = new EventSource(withToken(url));
    source.onmessage = (e) => onMessage(JSON.parse(e.data) as T);
    source.onopen = () => options.onOpen?.();
    source.addEventListener("end", () => {
      closed = true;
      source.close();
      options.onEnd?.();
    });
    source.addEventListener("error", (e) => {
      // A server-sent `event: error` has data; a dropped connection does not.
      const data = (e as MessageEvent).data;
      if (typeof data === "string" && data.length > 0) {
        const status = JSON.parse(data);
        options.onError?.(status);
        // Unavailable (a draining server) is resumed below; anything else ends it.
        if (status.code !== 14) {
          closed = true;
          source.close();
          return;
        }
      }
      if (closed) return;
      options.onDrop?.();
      if (options.reconnect) {
        source.close();
        clearTimeout(retry);
        retry = window.setTimeout(() => !closed && open(options.reconnect!()), 1000);
      }
      // Otherwise EventSource reconnects by itself with Last-Event-ID.
    });
  };
  open(path);
  return {
    close() {
      closed = true;
      clearTimeout(retry);
      source.close();
    },
  };
}
