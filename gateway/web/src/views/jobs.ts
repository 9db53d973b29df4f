// The jobs list: newest first, keyset pages, filters by state, live status
// from the jobs feed (no polling); queued jobs say where they stand and why.
import { api, ApiError, isTerminal, type Job, type JobState } from "../api";
import { onJob } from "../feed";
import { navigate, type Page } from "../nav";
import { h, clear, link, progressBar, stateBadge, timeAgo } from "../ui";
import { MAX_COMPARED } from "./compare";

const STATES: JobState[] = ["PENDING", "QUEUED", "INITIALIZING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"];
const PAGE = 20;
// Jobs picked for comparison; kept while paging and filtering.
const picked = new Set<string>();
// At sign-out: the next user starts with none picked.
export function forgetPicks() {
  picked.clear();
}

interface QueuePosition {
  position?: number;
  jobsAhead?: number;
  reason?: string;
  agentsOnline?: number;
}

export function jobsPage(root: HTMLElement): Page {
  const params = new URLSearchParams(location.search);
  const selected = new Set(params.getAll("state") as JobState[]);
  // Label filters, each "key=value" (e.g. sweep=lr-1, as trainctl sweep labels its jobs).
  let labels = params.getAll("label");
  const tokens: string[] = [""];  // page tokens of the pages seen, for "Newer"
  let rows = new Map<string, HTMLTableRowElement>();
  let jobs: Job[] = [];
  let disposed = false;

  const body = h("tbody");
  const status = h("p", { class: "muted", role: "status" });
  const older = h("button", { disabled: true }, "Older →");
  const newer = h("button", { disabled: true }, "← Newer");
  const compare = h("button", { "data-testid": "compare", disabled: true }, "Compare");
  // Picks every job on this page (up to the compare limit), or none; shows
  // whether the page's jobs are all, some or none of the picks.
  const pickAll = h("input", {
    type: "checkbox",
    "aria-label": "Pick every job on this page to compare",
    "data-testid": "pick-all",
    onchange: (e: Event) => {
      const on = (e.target as HTMLInputElement).checked;
      for (const job of jobs) {
        if (!on) picked.delete(job.id);
        else if (picked.size < MAX_COMPARED) picked.add(job.id);
      }
      for (const box of body.querySelectorAll<HTMLInputElement>("input[data-pick]")) {
        box.checked = picked.has(box.dataset.pick!);
      }
      drawCompare();
    },
  });
  const drawCompare = () => {
    compare.textContent = picked.size > 0 ? `Compare (${picked.size})` : "Compare";
    compare.disabled = picked.size < 2;
    compare.title = picked.size < 2 ? `Pick 2 to ${MAX_COMPARED} jobs` : "";
    // At the limit, the other boxes are disabled (and enabled again below it).
    for (const box of body.querySelectorAll<HTMLInputElement>("input[data-pick]")) {
      box.disabled = !box.checked && picked.size >= MAX_COMPARED;
    }
    const onPage = jobs.filter((j) => picked.has(j.id)).length;
    pickAll.checked = jobs.length > 0 && onPage === jobs.length;
    pickAll.indeterminate = onPage > 0 && onPage < jobs.length;
  };
  compare.addEventListener("click", () => navigate(`/compare?jobs=${[...picked].join(",")}`));
  drawCompare();

  const queueNote = (job: Job, cell: HTMLElement) => {
    if (job.state !== "QUEUED") return;
    api<QueuePosition>("GET", `/v1/jobs/${job.id}/queuePosition`)
      .then((q) => {
        const where = q.position ? `#${q.position} in queue` : "queued";
        const why = q.reason ? ` — ${q.reason}` : "";
        cell.append(h("div", { class: "muted queue", "data-testid": "queue" }, where + why));
      })
      .catch(() => {});
  };

  const row = (job: Job): HTMLTableRowElement => {
    const progressCell = h("td", {}, progressBar(job.progress, job.state));
    queueNote(job, progressCell);
    const pick = h("input", {
      type: "checkbox",
      "aria-label": `Compare ${job.id.slice(0, 8)}`,
      checked: picked.has(job.id),
      disabled: !picked.has(job.id) && picked.size >= MAX_COMPARED,
      onchange: (e: Event) => {
        if ((e.target as HTMLInputElement).checked) picked.add(job.id);
        else picked.delete(job.id);
        drawCompare();
      },
    });
    pick.dataset.pick = job.id;
    return h(
      "tr",
      { "data-job": job.id, "data-state": job.state },
      h("td", { class: "pick" }, pick),
      h("td", {}, stateBadge(job.state)),
      h("td", {}, link(`/jobs/${job.id}`, h("code", {}, job.id.slice(0, 8)))),
      h("td", {}, job.model),
      h("td", { class: "dataset" }, job.datasetUrl),
      progressCell,
      h("td", { title: job.createTime ?? "" }, timeAgo(job.createTime)),
    );
  };

  const draw = () => {
    rows = new Map();
    clear(
      body,
      jobs.map((job) => {
        const r = row(job);
        rows.set(job.id, r);
        return r;
      }),
    );
    status.textContent = jobs.length === 0 ? "No jobs here yet." : "";
    drawCompare();
  };

  let loads = 0;  // only the latest load's answer is drawn
  const load = async (index: number) => {
    const mine = ++loads;
    const q = new URLSearchParams({ pageSize: String(PAGE) });
    if (tokens[index]) q.set("pageToken", tokens[index]);
    for (const s of selected) q.append("states", s);
    for (const l of labels) q.append("labels", l);
    status.textContent = "Loading…";
    labelError.textContent = "";
    labelInput.removeAttribute("aria-invalid");
    try {
      const r = await api<{ jobs?: Job[]; nextPageToken?: string }>("GET", `/v1/jobs?${q}`);
      if (disposed || mine !== loads) return;
      jobs = r.jobs ?? [];
      tokens.length = index + 1;
      if (r.nextPageToken) tokens.push(r.nextPageToken);
      page = index;
      older.disabled = !r.nextPageToken;
      newer.disabled = index === 0;
      draw();
    } catch (e) {
      if (disposed || mine !== loads) return;
      // Nothing of an earlier filter stays on screen (or can be picked).
      jobs = [];
      tokens.length = 1;
      page = 0;
      older.disabled = newer.disabled = true;
      draw();
      const bad = e instanceof ApiError ? e.violations.find((v) => v.field.startsWith("labels")) : undefined;
      if (bad) {
        labelError.textContent = `${bad.description} (e.g. sweep=lr-1)`;
        labelInput.setAttribute("aria-invalid", "true");
        status.textContent = "";
      } else {
        status.textContent = `Could not load jobs: ${(e as Error).message}`;
      }
    }
  };
  let page = 0;
  older.addEventListener("click", () => void load(page + 1));
  newer.addEventListener("click", () => void load(page - 1));

  // Live: a changed job is redrawn in place; a new one appears on the first page.
  const stop = onJob((job) => {
    const matches =
      (selected.size === 0 || selected.has(job.state)) &&
      labels.every((kv) => {
        const [k, v] = [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)];
        return job.labels?.[k] === v;
      });
    const index = jobs.findIndex((j) => j.id === job.id);
    if (index >= 0) {
      if (Number(job.lastEventSeq ?? 0) < Number(jobs[index].lastEventSeq ?? 0)) return;
      jobs[index] = job;
      const replacement = row(job);
      rows.get(job.id)?.replaceWith(replacement);
      rows.set(job.id, replacement);
    } else if (page === 0 && matches && !isTerminal(job.state)) {
      jobs.unshift(job);
      if (jobs.length > PAGE) jobs.pop();
      draw();
    }
  });

  // The filters are kept in the URL, so a filtered list is a link.
  const remember = () => {
    const q = new URLSearchParams();
    for (const x of selected) q.append("state", x);
    for (const l of labels) q.append("label", l);
    const query = q.toString();
    history.replaceState(null, "", `/jobs${query ? `?${query}` : ""}`);
  };
  const labelInput = h("input", {
    id: "label-filter",
    type: "search",
    placeholder: "key=value, …",
    value: labels.join(", "),
    "aria-describedby": "label-filter-error",
  });
  const labelError = h("span", { class: "field-error", id: "label-filter-error", role: "alert" });
  labelInput.addEventListener("change", () => {
    labels = labelInput.value
      .split(",")
      .map((x) => x.trim())
      .filter(Boolean);
    tokens.length = 1;
    remember();
    void load(0);
  });
  const filters = h(
    "fieldset",
    { class: "filters" },
    h("legend", {}, "State"),
    STATES.map((s) =>
      h(
        "label",
        { class: "chip" },
        h("input", {
          type: "checkbox",
          value: s,
          checked: selected.has(s),
          onchange: (e: Event) => {
            const box = e.target as HTMLInputElement;
            if (box.checked) selected.add(s);
            else selected.delete(s);
            tokens.length = 1;
            remember();
            void load(0);
          },
        }),
        s.charAt(0) + s.slice(1).toLowerCase(),
      ),
    ),
  );

  clear(
    root,
    h(
      "section",
      { class: "jobs" },
      h(
        "div",
        { class: "title-row" },
        h("h1", {}, "Jobs"),
        link("/jobs/new", h("span", { class: "button primary" }, "New job")),
        h("span", { class: "spacer" }),
        compare,
      ),
      filters,
      h(
        "div",
        { class: "label-filter" },
        h("label", { for: "label-filter" }, "Labels"),
        labelInput,
        labelError,
      ),
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { "aria-label": "Jobs" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              h("th", { scope: "col", class: "pick" }, pickAll),
              ["State", "Job", "Model", "Dataset", "Progress", "Created"].map((t) => h("th", { scope: "col" }, t)),
            ),
          ),
          body,
        ),
      ),
      status,
      h("div", { class: "pager" }, newer, older),
    ),
  );
  void load(0);
  return {
    dispose() {
      disposed = true;
      stop();
    },
  };
}
