// Jobs side by side (/compare?jobs=A,B,…): one chart with a line per job for
// any metric they logged (server-downsampled, aligned by step), a table of
// each metric's last and best values, and the configuration with the
// settings that differ marked. Running jobs update from the jobs feed (no
// stream per job: a browser allows six connections per host); their series
// are fetched again at most every two seconds while they move.
import uPlot from "uplot";
import { api, ApiError, isTerminal, type Job, type MetricSeries } from "../api";
import { onJob } from "../feed";
import type { Page } from "../nav";
import { h, clear, link, number, shortDuration, stateBadge } from "../ui";

export const MAX_COMPARED = 8;
const CHART_POINTS = 1000;
const REFRESH_MS = 2000;
const COLORS = ["#4f46e5", "#f97316", "#16a34a", "#db2777", "#0891b2", "#ca8a04", "#7c3aed", "#dc2626"];

interface Summary {
  name: string;
  run?: string;
  last?: number | string;
  min?: number | string;
  max?: number | string;
  lastStep?: string;
}

// proto3 JSON leaves zeros out; NaN and infinities come as strings.
const num = (v: number | string | undefined) => Number(v ?? 0);
// A series is a metric name and, for jobs that log several runs, a run.
const keyOf = (s: { name: string; run?: string }) => (s.run ? `${s.name}@${s.run}` : s.name);

// The ids in the page's URL, in order, without repeats.
export function comparedIds(search: string): string[] {
  const raw = new URLSearchParams(search).get("jobs") ?? "";
  return [...new Set(raw.split(",").filter((id) => /^[0-9a-f-]{36}$/.test(id)))].slice(0, MAX_COMPARED);
}

// Every configuration setting as a flat key → shown value.
function settings(job: Job): Map<string, string> {
  const out = new Map<string, string>([
    ["recipe", job.model],
    ["dataset", job.datasetUrl],
  ]);
  for (const [k, v] of Object.entries(job.hyperparameters ?? {})) out.set(k, typeof v === "string" ? v : JSON.stringify(v));
  for (const [k, v] of Object.entries(job.labels ?? {})) out.set(`label ${k}`, v);
  return out;
}

function duration(job: Job): string {
  const end = job.completeTime ?? job.failTime ?? job.cancelTime;
  if (!job.startTime) return "-";
  return shortDuration(((end ? Date.parse(end) : Date.now()) - Date.parse(job.startTime)) / 1000);
}

export function comparePage(root: HTMLElement): Page {
  const ids = comparedIds(location.search);
  const jobs = new Map<string, Job>();
  const missing = new Set<string>();
  const summaries = new Map<string, Summary[]>();  // job → its metrics' summaries
  const points = new Map<string, Map<number, number>>();  // job → step → value of the shown metric
  let metric = new URLSearchParams(location.search).get("metric") ?? "";
  let chart: uPlot | null = null;
  let disposed = false;
  const lastFetch = new Map<string, number>();
  const due = new Map<string, number>();  // job → timer of its pending refresh

  const label = (id: string) => `${jobs.get(id)?.model ?? "job"} ${id.slice(0, 8)}`;
  const colorOf = (id: string) => COLORS[ids.indexOf(id) % COLORS.length];
  const present = () => ids.filter((id) => jobs.has(id));

  const chartBox = h("div", { class: "chart", "data-testid": "compare-chart" });
  const picker = h("select", { id: "compare-metric", "aria-label": "Metric" });
  const summaryBox = h("div", { class: "table-wrap" });
  const configBox = h("div", { class: "table-wrap" });
  const headBox = h("div", {});
  const status = h("p", { class: "muted", role: "status" });

  const drawHead = () => {
    clear(
      headBox,
      h(
        "ul",
        { class: "compared" },
        ids.map((id) =>
          h(
            "li",
            { "data-job": id },
            h("span", { class: "swatch", style: `background: ${colorOf(id)}`, "aria-hidden": "true" }),
            missing.has(id)
              ? h("span", { class: "muted" }, h("code", {}, id.slice(0, 8)), " — no such job")
              : jobs.has(id)
                ? [link(`/jobs/${id}`, label(id)), " ", stateBadge(jobs.get(id)!.state), h("span", { class: "muted" }, ` · ${duration(jobs.get(id)!)}`)]
                : h("span", { class: "muted" }, "…"),
          ),
        ),
      ),
    );
  };

  const drawChart = () => {
    const shown = present().filter((id) => points.has(id));
    const steps = new Set<number>();
    for (const id of shown) for (const s of points.get(id)!.keys()) steps.add(s);
    const xs = [...steps].sort((a, b) => a - b);
    const data = [xs, ...shown.map((id) => xs.map((x) => points.get(id)!.get(x) ?? null))] as uPlot.AlignedData;
    chartBox.dataset.series = String(shown.length);
    chartBox.dataset.points = String(xs.length);
    chartBox.dataset.metric = metric;
    if (chart && chart.series.length === shown.length + 1) {
      chart.setData(data);
      return;
    }
    chart?.destroy();
    chart = new uPlot(
      {
        width: Math.max(280, chartBox.clientWidth || 600),
        height: 320,
        scales: { x: { time: false } },
        axes: [{ label: "step" }, { label: metric }],
        cursor: { drag: { x: true, y: false } },
        series: [{ label: "step" }, ...shown.map((id) => ({ label: label(id), stroke: colorOf(id), width: 2, spanGaps: true }))],
      },
      data,
      chartBox,
    );
  };

  const drawSummary = () => {
    const names = [...new Set(present().flatMap((id) => (summaries.get(id) ?? []).map(keyOf)))].sort();
    const cell = (id: string, name: string) => {
      const s = (summaries.get(id) ?? []).find((x) => keyOf(x) === name);
      if (!s) return h("td", { class: "muted" }, "-");
      // Losses and errors are best when lowest; anything else shows its range.
      const lower = /loss|error|mae|mse|perplexity/.test(name);
      const best = lower ? num(s.min) : num(s.max);
      return h("td", { "data-metric": name }, number(num(s.last)), h("span", { class: "muted" }, ` (${lower ? "min" : "max"} ${number(best)})`));
    };
    clear(
      summaryBox,
      names.length === 0
        ? null
        : h(
            "table",
            { "aria-label": "Metrics compared", class: "compare" },
            h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Metric (last, best)"), present().map((id) => h("th", { scope: "col" }, label(id))))),
            h(
              "tbody",
              {},
              names.map((name) => h("tr", {}, h("th", { scope: "row" }, name), present().map((id) => cell(id, name)))),
            ),
          ),
    );
  };

  const drawConfig = () => {
    const all = present().map((id) => settings(jobs.get(id)!));
    const keys = [...new Set(all.flatMap((s) => [...s.keys()]))];
    const differs = (key: string) => new Set(all.map((s) => s.get(key) ?? "")).size > 1;
    // What differs first: that is what the comparison is about.
    keys.sort((a, b) => Number(differs(b)) - Number(differs(a)));
    clear(
      configBox,
      h(
        "table",
        { "aria-label": "Configuration compared", class: "compare" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Setting"), present().map((id) => h("th", { scope: "col" }, label(id))))),
        h(
          "tbody",
          {},
          keys.map((key) =>
            h(
              "tr",
              { class: differs(key) ? "differs" : "", "data-setting": key },
              h("th", { scope: "row" }, key),
              all.map((s) => h("td", {}, s.get(key) ?? "-")),
            ),
          ),
        ),
      ),
    );
  };

  const drawPicker = () => {
    const names = [...new Set(present().flatMap((id) => (summaries.get(id) ?? []).map(keyOf)))].sort();
    if (!metric || !names.includes(metric)) {
      metric = names.find((n) => n === "val_loss") ?? names.find((n) => n === "train_loss") ?? names[0] ?? "";
    }
    clear(picker, names.map((n) => h("option", { value: n, selected: n === metric }, n)));
  };

  // The shown metric of one job, downsampled by the server.
  const loadSeries = async (id: string) => {
    lastFetch.set(id, Date.now());
    const wanted = metric;
    if (!wanted) return;
    const [name, run = ""] = wanted.split("@");
    const q = new URLSearchParams({ maxPoints: String(CHART_POINTS), names: name });
    if (run) q.set("run", run);
    const r = await api<{ series?: MetricSeries[] }>("GET", `/v1/jobs/${id}/metrics?${q}`);
    if (wanted !== metric) return;  // switched meanwhile: this answer is for the old metric
    const byStep = new Map<number, number>();
    for (const s of r.series ?? []) {
      if (keyOf(s) !== wanted) continue;
      for (const p of s.points ?? []) {
        const v = num(p.value);
        if (Number.isFinite(v)) byStep.set(Number(p.step ?? 0), v);
      }
    }
    points.set(id, byStep);
  };

  const loadSummaries = async (id: string) => {
    const r = await api<{ metrics?: Summary[] }>("GET", `/v1/jobs/${id}/metricNames`);
    summaries.set(id, r.metrics ?? []);
  };

  const redraw = () => {
    if (disposed) return;
    drawHead();
    drawPicker();
    drawSummary();
    drawConfig();
    drawChart();
  };

  let failed = "";
  const load = async () => {
    if (ids.length < 2) {
      status.textContent = "Pick two or more jobs on the jobs page to compare them.";
      return;
    }
    status.textContent = "Loading…";
    await Promise.all(
      ids.map(async (id) => {
        try {
          jobs.set(id, await api<Job>("GET", `/v1/jobs/${id}`));
          await loadSummaries(id);
        } catch (e) {
          if (e instanceof ApiError && e.status === 404) missing.add(id);
          else throw e;
        }
      }),
    ).catch((e) => {
      failed = `Could not load: ${(e as Error).message}`;
    });
    if (disposed) return;
    drawPicker();
    await Promise.all(present().map(loadSeries)).catch((e) => {
      failed = failed || `Could not load the metrics: ${(e as Error).message}`;
    });
    if (disposed) return;
    status.textContent = failed;
    redraw();
  };

  picker.addEventListener("change", () => {
    metric = picker.value;
    const q = new URLSearchParams(location.search);
    q.set("metric", metric);
    history.replaceState(null, "", `/compare?${q}`);
    chart?.destroy();
    chart = null;
    void Promise.all(present().map(loadSeries)).then(redraw);
  });

  // A compared job that moves: its state and summary now, its series at most
  // every REFRESH_MS (and once more when it ends).
  const stop = onJob((job) => {
    if (!jobs.has(job.id)) return;
    jobs.set(job.id, job);
    const refresh = () => {
      due.delete(job.id);
      void Promise.all([loadSummaries(job.id), loadSeries(job.id)]).then(redraw).catch(() => {});
    };
    const since = Date.now() - (lastFetch.get(job.id) ?? 0);
    if (since >= REFRESH_MS || isTerminal(job.state)) {
      clearTimeout(due.get(job.id));
      refresh();
    } else if (!due.has(job.id)) {
      due.set(job.id, window.setTimeout(refresh, REFRESH_MS - since));
    }
    drawHead();
  });

  clear(
    root,
    h(
      "section",
      { class: "compare-page" },
      h("div", { class: "title-row" }, h("h1", {}, "Compare jobs"), h("span", { class: "spacer" }), link("/jobs", "← Jobs")),
      status,
      headBox,
      h("label", { for: "compare-metric", class: "inline" }, "Metric ", picker),
      chartBox,
      h("h2", {}, "Metrics"),
      summaryBox,
      h("h2", {}, "Configuration"),
      h("p", { class: "muted" }, "Settings that differ come first, marked."),
      configBox,
    ),
  );
  void load();
  return {
    dispose() {
      disposed = true;
      stop();
      for (const t of due.values()) clearTimeout(t);
      chart?.destroy();
    },
  };
}
