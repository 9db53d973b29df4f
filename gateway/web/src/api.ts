// The REST API of the gateway: fetch with the session's bearer token, errors
// as google.rpc.Status (field violations by field), 401 back to sign-in.

export interface FieldViolation {
  field: string;
  description: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: number,
    message: string,
    readonly violations: FieldViolation[] = [],
  ) {
    super(message);
  }
  // The violation of `field` (proto path, e.g. "job.hyperparameters.steps").
  violation(field: string): string | undefined {
    return this.violations.find((v) => v.field === field)?.description;
  }
}

const TOKEN_KEY = "trainmesh.token";

export const session = {
  get token(): string | null {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  set(token: string) {
    sessionStorage.setItem(TOKEN_KEY, token);
  },
  clear() {
    sessionStorage.removeItem(TOKEN_KEY);
  },
};

// Called when the server says the credential is no longer good.
let onUnauthenticated: (reason: string) => void = () => {};
export function setUnauthenticatedHandler(handler: (reason: string) => void) {
  onUnauthenticated = handler;
}

async function errorOf(response: Response): Promise<ApiError> {
  let body: any = {};
  try {
    body = await response.json();
  } catch {
    // not JSON: keep the status text
  }
  const violations: FieldViolation[] = [];
  for (const detail of body.details ?? []) {
    for (const v of detail.fieldViolations ?? []) violations.push({ field: v.field, description: v.description });
  }
  return new ApiError(response.status, body.code ?? 0, body.message ?? response.statusText, violations);
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  const token = session.token;
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    const error = await errorOf(response);
    if (response.status === 401 && token) onUnauthenticated(error.message);
    throw error;
  }
  return (await response.json()) as T;
}

// A short-lived signed URL for `path` (EventSource and download links cannot
// send headers). It opens that path only, for minutes; the session's own
// token never goes into a URL (history, logs, Referer).
export async function signedUrl(path: string): Promise<string> {
  const signed = await api<{ url: string }>("POST", "/v1/auth:signUrl", { path });
  return signed.url;
}

// --- The shapes the dashboard reads (proto3 JSON: lowerCamel, int64 as strings).

export type JobState =
  | "PENDING"
  | "QUEUED"
  | "INITIALIZING"
  | "RUNNING"
  | "COMPLETED"
  | "FAILED"
  | "CANCELLED";

export interface Progress {
  step?: string;
  totalSteps?: string;
  fraction?: number;
  samplesPerSecond?: number;
  eta?: string;
  trainLoss?: number;
  valLoss?: number;
}

export interface Cost {
  amount?: number;
  currency?: string;
  deviceSeconds?: number;
  deviceType?: string;
}

export interface Job {
  id: string;
  owner?: string;
  model: string;
  datasetUrl: string;
  hyperparameters?: Record<string, unknown>;
  priority?: number;
  maxAttempts?: number;
  labels?: Record<string, string>;
  state: JobState;
  attempt?: number;
  retryOf?: string;
  retryCount?: number;
  errorLog?: string;
  errorKind?: string;
  progress?: Progress;
  cost?: Cost;
  createTime?: string;
  updateTime?: string;
  startTime?: string;
  completeTime?: string;
  failTime?: string;
  cancelTime?: string;
  lastEventSeq?: string;
  agentId?: string;
  artifact?: { uri?: string; sizeBytes?: string; sha256?: string; step?: string };
  cancelRequested?: boolean;
}

export interface JobEvent {
  jobId: string;
  seq: string;
  type: string;
  state: JobState;
  previousState?: JobState;
  time?: string;
  message?: string;
  progress?: Progress;
  attempt?: number;
  terminal?: boolean;
}

export interface ParameterSpec {
  name: string;
  type: "INT" | "FLOAT" | "STRING" | "BOOL" | "INT_LIST" | "STRING_LIST";
  defaultValue?: unknown;
  required?: boolean;
  min?: number;
  max?: number;
  allowedValues?: string[];
  help?: string;
  minItems?: number;
  maxItems?: number;
  group?: string;
}

export interface Recipe {
  name: string;
  title?: string;
  description?: string;
  parameters?: ParameterSpec[];
  datasetExamples?: string[];
}

export interface MetricPoint {
  name: string;
  step?: string;
  value?: number | string;
  wallTime?: string;
  seq?: string;
}

export interface MetricSeries {
  name: string;
  run?: string;
  points?: MetricPoint[];
  totalPoints?: string;
  downsampled?: boolean;
}

export interface LogLine {
  seq?: string;
  time?: string;
  stream?: string;
  text?: string;
  attempt?: number;
}

export const TERMINAL: JobState[] = ["COMPLETED", "FAILED", "CANCELLED"];
export const isTerminal = (s: JobState) => TERMINAL.includes(s);
