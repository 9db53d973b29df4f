// One job: status, progress with ETA, metric cards, a live loss chart
// (server-downsampled history, then live points), tabs for metrics,
// configuration, logs (live tail) and info (timestamps, attempts, lineage,
// agent), cancel with confirmation, retry, error log, model download.
// Every stream stops once the job is terminal.
import uPlot from "uplot";
import {
  api,
  ApiError,
  isTerminal,
  signedUrl,
  type Job,
  type JobEvent,
  type LogLine,
  type MetricPoint,
  type MetricSeries,
} from "../api";
import { navigate, type Page } from "../nav";
import { subscribe, type Subscription } from "../stream";
import { h, clear, confirmDialog, dateTime, link, number, progressBar, seconds, shortDuration, stateBadge } from "../ui";

const CHART_POINTS = 1000;
const LOSSES = ["train_loss", "val_loss"];

export function jobPage(root: HTMLElement, id: string): Page {
  let job: Job | null = null;
  const streams: Subscription[] = [];
  const timers: number[] = [];
  let chart: uPlot | null = null;
  let disposed = false;
  // Chart data per series: step → value (live points merge into history).
  const series = new Map<string, Map<number, number>>();
  let shown = [...LOSSES];
  let names: string[] = [];

  const header = h("div", { class: "job-head" });
  const cards = h("div", { class: "cards" });
  const chartBox = h("div", { class: "chart", "data-testid": "chart" });
  const picker = h("div", { class: "series-picker" });
  const errorPanel = h("div", {});
  const tabs = h("div", { class: "tabs", role: "tablist" });
  const panel = h("div", { class: "tab-panel", role: "tabpanel" });
  const logBox = h("pre", { class: "logs", "data-testid": "logs", "aria-live": "off" });
  let tab = new URLSearchParams(location.search).get("tab") ?? "metrics";

  // --- header, cards, error log

  const drawHeader = () => {
    if (!job) return;
    const p = job.progress ?? {};
    const eta = seconds(p.eta);
    const step = p.step ? `step ${p.step}${p.totalSteps ? ` of ${p.totalSteps}` : ""}` : "";
    const actions: HTMLElement[] = [];
    if (!isTerminal(job.state)) {
      actions.push(h("button", { class: "danger", onclick: confirmCancel, "data-testid": "cancel" }, "Cancel job"));
    }
    if (job.state === "FAILED" || job.state === "CANCELLED") {
      actions.push(h("button", { class: "primary", onclick: openRetry, "data-testid": "retry" }, "Retry…"));
    }
    if (job.state === "COMPLETED") {
      actions.push(
        h(
          "a",
          {
            class: "button",
            href: `/v1/jobs/${id}/artifact?name=model.pt`,
            download: `model-${id.slice(0, 8)}.pt`,
            "data-testid": "download-model",
            // The link is signed when clicked: a signed URL lives minutes.
            onclick: async (e: Event) => {
              e.preventDefault();
              const target = e.currentTarget as HTMLAnchorElement;
              try {
                const a = h("a", { href: await signedUrl(`/v1/jobs/${id}/artifact?name=model.pt`), download: target.download });
                document.body.append(a);
                a.click();
                a.remove();
              } catch (err) {
                alertBox(err instanceof ApiError ? err.message : String(err));
              }
            },
          },
          "Download model",
        ),
      );
    }
    clear(
      header,
      h(
        "div",
        { class: "title-row" },
        h("h1", {}, `${job.model} `, h("code", {}, id.slice(0, 8))),
        stateBadge(job.state),
        h("span", { class: "spacer" }),
        actions,
      ),
      progressBar(job.progress, job.state),
      h(
        "p",
        { class: "muted", "data-testid": "progress-text" },
        [step, eta > 0 && !isTerminal(job.state) ? `ETA ${shortDuration(eta)}` : "", job.cancelRequested ? "cancelling…" : ""]
          .filter(Boolean)
          .join(" · "),
      ),
    );
    const latest = (name: string) => {
      const s = series.get(name);
      if (!s || s.size === 0) return undefined;
      return s.get(Math.max(...s.keys()));
    };
    const cost = job.cost?.amount !== undefined ? `${number(job.cost.amount, 3)} ${job.cost.currency ?? ""}` : "-";
    const card = (title: string, value: string, testid: string) =>
      h("div", { class: "card metric", "data-testid": testid }, h("span", { class: "muted" }, title), h("strong", {}, value));
    clear(
      cards,
      card("Train loss", number(p.trainLoss ?? latest("train_loss")), "card-train-loss"),
      card("Validation loss", number(p.valLoss ?? latest("val_loss")), "card-val-loss"),
      card("Throughput", p.samplesPerSecond ? `${number(p.samplesPerSecond, 3)} samples/s` : "-", "card-throughput"),
      card("Cost", cost, "card-cost"),
      card("GPU utilisation", latest("gpu_utilization") !== undefined ? `${number(latest("gpu_utilization")! * 100, 3)}%` : "no GPU", "card-gpu"),
    );
    clear(
      errorPanel,
      job.errorLog
        ? h(
            "section",
            { class: "card error-log", "data-testid": "error-log" },
            h("h2", {}, job.state === "CANCELLED" ? "Why it stopped" : "Error log", job.errorKind ? ` (${job.errorKind.replace("ERROR_KIND_", "").toLowerCase()})` : ""),
            h("pre", {}, job.errorLog),
          )
        : null,
    );
    if (tab === "info" || tab === "configuration") drawTab();
  };

  // --- chart

  const drawChart = () => {
    const visible = shown.filter((n) => series.has(n));
    const steps = new Set<number>();
    for (const n of visible) for (const s of series.get(n)!.keys()) steps.add(s);
    const xs = [...steps].sort((a, b) => a - b);
    const data: uPlot.AlignedData = [xs, ...visible.map((n) => xs.map((x) => series.get(n)!.get(x) ?? null))] as uPlot.AlignedData;
    chartBox.dataset.points = String(xs.length);
    const width = Math.max(280, chartBox.clientWidth || 600);
    if (chart && chart.series.length === visible.length + 1) {
      chart.setData(data);
      return;
    }
    chart?.destroy();
    const colors = ["#4f46e5", "#f97316", "#16a34a", "#db2777", "#0891b2", "#ca8a04"];
    chart = new uPlot(
      {
        width,
        height: 280,
        scales: { x: { time: false } },
        axes: [{ label: "step" }, {}],
        cursor: { drag: { x: true, y: false } },  // drag to zoom, double-click to reset
        series: [{ label: "step" }, ...visible.map((n, i) => ({ label: n, stroke: colors[i % colors.length], width: 2, spanGaps: true }))],
      },
      data,
      chartBox,
    );
  };

  const addPoints = (points: MetricPoint[]) => {
    let changed = false;
    for (const p of points) {
      // proto3 JSON leaves a value of 0 out.
      const value = typeof p.value === "number" ? p.value : Number(p.value ?? 0);
      if (!Number.isFinite(value)) continue;
      if (!series.has(p.name)) {
        series.set(p.name, new Map());
        if (!names.includes(p.name)) {
          names.push(p.name);
          drawPicker();
        }
      }
      series.get(p.name)!.set(Number(p.step ?? 0), value);
      changed = changed || shown.includes(p.name);
    }
    if (changed) scheduleDraw();
    // A long run: live points pile up; the server downsamples them again.
    const held = shown.reduce((n, name) => n + (series.get(name)?.size ?? 0), 0);
    if (held > 4 * CHART_POINTS * shown.length && !reloading) {
      reloading = true;
      void loadHistory().finally(() => (reloading = false));
    }
  };
  let reloading = false;
  let drawPending = false;
  const scheduleDraw = () => {
    if (drawPending) return;
    drawPending = true;
    requestAnimationFrame(() => {
      drawPending = false;
      if (!disposed) {
        drawChart();
        drawHeader();
      }
    });
  };

  const drawPicker = () => {
    clear(
      picker,
      names.map((n) =>
        h(
          "label",
          { class: "chip" },
          h("input", {
            type: "checkbox",
            checked: shown.includes(n),
            onchange: (e: Event) => {
              shown = (e.target as HTMLInputElement).checked ? [...shown, n] : shown.filter((x) => x !== n);
              void loadHistory();
            },
          }),
          n,
        ),
      ),
    );
  };

  // History downsampled by the server (min/max per bucket), for what is shown.
  const loadHistory = async (): Promise<number> => {
    const q = new URLSearchParams({ maxPoints: String(CHART_POINTS) });
    for (const n of shown) q.append("names", n);
    const r = await api<{ series?: MetricSeries[] }>("GET", `/v1/jobs/${id}/metrics?${q}`);
    let last = 0;
    for (const s of r.series ?? []) {
      series.set(s.name, new Map());
      for (const p of s.points ?? []) last = Math.max(last, Number(p.seq ?? 0));
      addPoints((s.points ?? []).map((p) => ({ ...p, name: s.name })));
    }
    scheduleDraw();
    return last;
  };

  // --- tabs

  const drawTab = () => {
    for (const b of tabs.querySelectorAll("button")) b.setAttribute("aria-selected", String(b.dataset.tab === tab));
    if (tab === "metrics") clear(panel, picker, chartBox);
    else if (tab === "logs") clear(panel, logBox);
    else if (tab === "configuration" && job) {
      clear(
        panel,
        h(
          "dl",
          { class: "kv" },
          h("dt", {}, "Recipe"),
          h("dd", {}, job.model),
          h("dt", {}, "Dataset"),
          h("dd", {}, job.datasetUrl),
          h("dt", {}, "Priority"),
          h("dd", {}, String(job.priority ?? 0)),
          h("dt", {}, "Max attempts"),
          h("dd", {}, String(job.maxAttempts ?? "")),
          h("dt", {}, "Labels"),
          h("dd", {}, Object.entries(job.labels ?? {}).map(([k, v]) => `${k}=${v}`).join(", ") || "-"),
        ),
        h("h3", {}, "Hyperparameters"),
        h("pre", { "data-testid": "hyperparameters" }, JSON.stringify(job.hyperparameters ?? {}, null, 2)),
      );
    } else if (tab === "info" && job) {
      const retries = h("dd", { "data-testid": "retries" }, "…");
      clear(
        panel,
        h(
          "dl",
          { class: "kv" },
          h("dt", {}, "Job id"),
          h("dd", {}, h("code", {}, job.id)),
          h("dt", {}, "Created"),
          h("dd", {}, dateTime(job.createTime)),
          h("dt", {}, "Started"),
          h("dd", {}, dateTime(job.startTime)),
          h("dt", {}, "Ended"),
          h("dd", {}, dateTime(job.completeTime ?? job.failTime ?? job.cancelTime)),
          h("dt", {}, "Attempt"),
          h("dd", {}, `${job.attempt ?? 0} of ${job.maxAttempts ?? "?"}`),
          h("dt", {}, "Agent"),
          h("dd", {}, job.agentId ? h("code", {}, job.agentId) : "-"),
          h("dt", {}, "Retry of"),
          h("dd", {}, job.retryOf ? link(`/jobs/${job.retryOf}?tab=info`, h("code", { "data-testid": "retry-of" }, job.retryOf)) : "-"),
          h("dt", {}, "Retries"),
          retries,
        ),
      );
      api<{ jobs?: Job[] }>("GET", `/v1/jobs?retryOf=${id}&pageSize=20`)
        .then((r) =>
          clear(
            retries,
            (r.jobs ?? []).length === 0 ? "-" : (r.jobs ?? []).map((j) => h("div", {}, link(`/jobs/${j.id}?tab=info`, h("code", {}, j.id)), " ", stateBadge(j.state))),
          ),
        )
        .catch(() => (retries.textContent = "-"));
    }
  };
  for (const [key, label] of [
    ["metrics", "Metrics"],
    ["configuration", "Configuration"],
    ["logs", "Logs"],
    ["info", "Info"],
  ]) {
    tabs.append(
      h(
        "button",
        {
          role: "tab",
          "data-tab": key,
          onclick: () => {
            tab = key;
            history.replaceState(null, "", `/jobs/${id}?tab=${key}`);
            drawTab();
            if (key === "metrics") scheduleDraw();
          },
        },
        label,
      ),
    );
  }

  // --- cancel and retry dialogs

  function confirmCancel() {
    const reason = h("input", { id: "cancel-reason", placeholder: "optional" });
    confirmDialog({
      label: "Cancel job",
      title: "Cancel this job?",
      body: [
        h("p", {}, "A running job stops at its next heartbeat and keeps its last checkpoint."),
        h("label", { for: "cancel-reason" }, "Reason"),
        reason,
      ],
      dismiss: "Keep running",
      confirm: { text: "Cancel job", class: "danger", testid: "confirm-cancel" },
      onConfirm: async () => {
        job = await api<Job>("POST", `/v1/jobs/${id}:cancel`, { reason: reason.value });
        drawHeader();
      },
      onError: alertBox,
    });
  }

  function openRetry() {
    const resume = h("input", { id: "retry-resume", type: "checkbox", checked: true });
    confirmDialog({
      label: "Retry job",
      title: "Retry this job?",
      body: [
        h("p", {}, "A new job is created with the same configuration; this one stays as it is."),
        h("div", { class: "toggle" }, resume, h("label", { for: "retry-resume" }, "Resume from the last checkpoint")),
      ],
      dismiss: "Not now",
      confirm: { text: "Retry", class: "primary", testid: "confirm-retry" },
      onConfirm: async () => {
        const next = await api<Job>("POST", `/v1/jobs/${id}:retry`, { resumeFromCheckpoint: resume.checked });
        navigate(`/jobs/${next.id}`);
      },
      onError: alertBox,
    });
  }

  const alertBox = (message: string) => clear(errorPanel, h("p", { class: "error", role: "alert" }, message));

  // --- streams

  const stopStreams = () => {
    for (const s of streams) s.close();
    streams.length = 0;
  };

  const onTerminal = () => {
    // Points and lines stored just before the end still arrive for a moment,
    // then everything stops; the chart is redrawn from the final history.
    timers.push(
      window.setTimeout(() => {
        stopStreams();
        if (!disposed) void loadHistory();
      }, 1500),
    );
  };

  const start = async () => {
    try {
      job = await api<Job>("GET", `/v1/jobs/${id}`);
    } catch (e) {
      clear(root, h("p", { class: "error", role: "alert" }, e instanceof ApiError && e.status === 404 ? "No such job." : (e as Error).message));
      return;
    }
    if (disposed) return;
    drawHeader();
    drawTab();
    const after = await loadHistory().catch(() => 0);
    if (disposed) return;
    api<{ metrics?: { name: string }[] }>("GET", `/v1/jobs/${id}/metricNames`)
      .then((r) => {
        for (const m of r.metrics ?? []) if (!names.includes(m.name)) names.push(m.name);
        drawPicker();
      })
      .catch(() => {});
    if (isTerminal(job.state)) {
      loadLogs();
      return;
    }
    streams.push(
      subscribe<JobEvent>(
        `/v1/jobs/${id}:watch?afterSeq=${job.lastEventSeq ?? 0}`,
        (e) => {
          if (!job) return;
          job = { ...job, state: e.state, attempt: e.attempt ?? job.attempt, progress: e.progress ?? job.progress };
          if (e.terminal) {
            // The final record (error log, cost, times) from the job itself.
            api<Job>("GET", `/v1/jobs/${id}`).then((j) => {
              job = j;
              drawHeader();
            });
          }
          drawHeader();
        },
        { onEnd: onTerminal },
      ),
    );
    streams.push(
      subscribe<{ points?: MetricPoint[] }>(`/v1/jobs/${id}/metrics:stream?afterSeq=${after}`, (item) =>
        addPoints(item.points ?? []),
      ),
    );
    streams.push(
      subscribe<{ lines?: LogLine[] }>(`/v1/jobs/${id}/logs:stream`, (item) => appendLogs(item.lines ?? [])),
    );
  };

  const appendLogs = (lines: LogLine[]) => {
    const atBottom = logBox.scrollTop + logBox.clientHeight >= logBox.scrollHeight - 4;
    logBox.append(lines.map((l) => `${l.time ? new Date(l.time).toLocaleTimeString() : ""}  ${l.text ?? ""}\n`).join(""));
    if (atBottom) logBox.scrollTop = logBox.scrollHeight;
  };

  const loadLogs = () => {
    api<{ lines?: LogLine[] }>("GET", `/v1/jobs/${id}/logs?limit=1000`)
      .then((r) => appendLogs(r.lines ?? []))
      .catch(() => {});
  };

  clear(root, h("section", { class: "job" }, header, errorPanel, cards, tabs, panel));
  drawTab();
  void start();
  const resize = () => chart?.setSize({ width: Math.max(280, chartBox.clientWidth), height: 280 });
  window.addEventListener("resize", resize);
  return {
    dispose() {
      disposed = true;
      stopStreams();
      for (const t of timers) clearTimeout(t);
      window.removeEventListener("resize", resize);
      chart?.destroy();
    },
  };
}
