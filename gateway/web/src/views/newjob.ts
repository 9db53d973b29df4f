// The new job form, generated from the recipes (ListRecipes): an input per
// hyperparameter by its type, with defaults, ranges and help; or the
// hyperparameters as JSON. Checked here first, then by the server, whose
// field violations are shown next to their fields.
import { api, ApiError, type ParameterSpec, type Recipe } from "../api";
import { navigate, type Page } from "../nav";
import { h, clear } from "../ui";

type Input = HTMLInputElement | HTMLSelectElement;

function control(spec: ParameterSpec): Input {
  const id = `hp-${spec.name}`;
  const d = spec.defaultValue;
  if (spec.type === "BOOL") {
    return h("input", { id, name: spec.name, type: "checkbox", checked: d === true });
  }
  if (spec.type === "STRING" && spec.allowedValues?.length) {
    return h(
      "select",
      { id, name: spec.name },
      spec.allowedValues.map((v) => h("option", { value: v, selected: v === d }, v)),
    );
  }
  if (spec.type === "INT" || spec.type === "FLOAT") {
    return h("input", {
      id,
      name: spec.name,
      type: "number",
      step: spec.type === "INT" ? 1 : "any",
      min: spec.min,
      max: spec.max,
      value: d === undefined || d === null ? "" : String(d),
      required: spec.required,
    });
  }
  const text = Array.isArray(d) ? d.join(", ") : d === undefined || d === null ? "" : String(d);
  return h("input", {
    id,
    name: spec.name,
    value: text,
    required: spec.required,
    placeholder: spec.type.endsWith("_LIST") ? "comma-separated" : "",
  });
}

// The value of one input, or an error message.
function read(spec: ParameterSpec, input: Input): { value?: unknown; error?: string } {
  if (spec.type === "BOOL") return { value: (input as HTMLInputElement).checked };
  const raw = input.value.trim();
  if (raw === "") return spec.required ? { error: "required" } : {};
  if (spec.type === "INT" || spec.type === "FLOAT") {
    const n = Number(raw);
    if (!Number.isFinite(n)) return { error: "must be a number" };
    if (spec.type === "INT" && !Number.isInteger(n)) return { error: "must be a whole number" };
    if (spec.min !== undefined && n < spec.min) return { error: `must be >= ${spec.min}` };
    if (spec.max !== undefined && n > spec.max) return { error: `must be <= ${spec.max}` };
    return { value: n };
  }
  if (spec.type === "INT_LIST") {
    const items = raw.split(",").map((x) => Number(x.trim()));
    if (items.some((n) => !Number.isInteger(n))) return { error: "must be whole numbers, comma-separated" };
    if (spec.minItems && items.length < spec.minItems) return { error: `needs at least ${spec.minItems}` };
    if (spec.maxItems && items.length > spec.maxItems) return { error: `takes at most ${spec.maxItems}` };
    return { value: items };
  }
  if (spec.type === "STRING_LIST") return { value: raw.split(",").map((x) => x.trim()).filter(Boolean) };
  return { value: raw };
}

export function newJobPage(root: HTMLElement): Page {
  let recipes: Recipe[] = [];
  let inputs = new Map<string, Input>();
  const errors = new Map<string, HTMLElement>();  // field path → message element

  const form = h("form", { class: "card job-form", novalidate: true, "aria-label": "New job" });
  const banner = h("p", { class: "error", role: "alert", "data-testid": "form-error" });
  const recipeSelect = h("select", { id: "model", name: "model" });
  const dataset = h("input", { id: "dataset", name: "dataset", list: "datasets", required: true, placeholder: "synthetic://reach" });
  const datasets = h("datalist", { id: "datasets" });
  const priority = h("input", { id: "priority", name: "priority", type: "number", step: 1, value: "0" });
  const params = h("div", { class: "params" });
  const jsonToggle = h("input", { id: "json-mode", type: "checkbox" });
  const json = h("textarea", { id: "hp-json", rows: 10, spellcheck: "false", hidden: true, "aria-label": "Hyperparameters as JSON" });
  const description = h("p", { class: "muted" });

  const errorSlot = (field: string) => {
    const el = h("span", { class: "field-error", id: `err-${field.replace(/\W/g, "-")}`, "data-field": field });
    errors.set(field, el);
    return el;
  };

  const showErrors = (found: Map<string, string>) => {
    for (const [field, el] of errors) {
      el.textContent = found.get(field) ?? "";
      const input = el.previousElementSibling as HTMLElement | null;
      input?.setAttribute("aria-invalid", String(found.has(field)));
      if (found.has(field) && input) input.setAttribute("aria-describedby", el.id);
    }
  };

  const drawRecipe = () => {
    const recipe = recipes.find((r) => r.name === recipeSelect.value);
    inputs = new Map();
    for (const key of [...errors.keys()]) if (key.startsWith("job.hyperparameters.")) errors.delete(key);
    description.textContent = recipe?.description ?? "";
    clear(datasets, (recipe?.datasetExamples ?? []).map((d) => h("option", { value: d })));
    if (!dataset.value && recipe?.datasetExamples?.length) dataset.value = recipe.datasetExamples[0];
    const groups = new Map<string, HTMLElement[]>();
    for (const spec of recipe?.parameters ?? []) {
      const input = control(spec);
      inputs.set(spec.name, input);
      const field = `job.hyperparameters.${spec.name}`;
      const labelText = spec.name + (spec.required ? " *" : "");
      const range =
        spec.min !== undefined || spec.max !== undefined ? ` (${spec.min ?? "…"} – ${spec.max ?? "…"})` : "";
      const item = h(
        "div",
        { class: `param ${spec.type === "BOOL" ? "bool" : ""}` },
        h("label", { for: input.id, title: spec.help ?? "" }, labelText),
        input,
        errorSlot(field),
        h("small", { class: "muted" }, (spec.help ?? "") + range),
      );
      const group = spec.group || "Parameters";
      groups.set(group, [...(groups.get(group) ?? []), item]);
    }
    clear(
      params,
      [...groups].map(([name, items]) => h("fieldset", {}, h("legend", {}, name), items)),
    );
    json.value = JSON.stringify(collect().hyperparameters ?? {}, null, 2);
  };

  // The hyperparameters from the inputs (or the JSON editor) and the errors.
  const collect = (): { hyperparameters?: Record<string, unknown>; errors: Map<string, string> } => {
    const found = new Map<string, string>();
    if (jsonToggle.checked) {
      try {
        const parsed = JSON.parse(json.value || "{}");
        if (typeof parsed !== "object" || Array.isArray(parsed) || parsed === null) throw new Error("not an object");
        return { hyperparameters: parsed, errors: found };
      } catch (e) {
        found.set("job.hyperparameters", `not a JSON object: ${(e as Error).message}`);
        return { errors: found };
      }
    }
    const recipe = recipes.find((r) => r.name === recipeSelect.value);
    const out: Record<string, unknown> = {};
    for (const spec of recipe?.parameters ?? []) {
      const r = read(spec, inputs.get(spec.name)!);
      if (r.error) found.set(`job.hyperparameters.${spec.name}`, r.error);
      else if (r.value !== undefined) out[spec.name] = r.value;
    }
    return { hyperparameters: out, errors: found };
  };

  jsonToggle.addEventListener("change", () => {
    if (jsonToggle.checked) json.value = JSON.stringify(collect().hyperparameters ?? {}, null, 2);
    json.hidden = !jsonToggle.checked;
    params.hidden = jsonToggle.checked;
  });
  recipeSelect.addEventListener("change", drawRecipe);

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    banner.textContent = "";
    const { hyperparameters, errors: found } = collect();
    if (!dataset.value.trim()) found.set("job.dataset_url", "required");
    if (!Number.isInteger(Number(priority.value))) found.set("job.priority", "must be a whole number");
    showErrors(found);
    if (found.size > 0) {
      banner.textContent = "Please fix the fields marked below.";
      return;
    }
    const submit = form.querySelector("button[type=submit]") as HTMLButtonElement;
    submit.disabled = true;
    try {
      const job = await api<{ id: string }>("POST", "/v1/jobs", {
        model: recipeSelect.value,
        datasetUrl: dataset.value.trim(),
        priority: Number(priority.value || 0),
        hyperparameters,
      });
      navigate(`/jobs/${job.id}`);
    } catch (err) {
      submit.disabled = false;
      if (err instanceof ApiError && err.violations.length > 0) {
        const server = new Map(err.violations.map((v) => [v.field, v.description]));
        showErrors(server);
        const unplaced = err.violations.filter((v) => !errors.has(v.field));
        banner.textContent =
          "The server found problems" +
          (unplaced.length ? `: ${unplaced.map((v) => `${v.field}: ${v.description}`).join("; ")}` : " (marked below).");
      } else {
        banner.textContent = (err as Error).message;
      }
    }
  });

  clear(
    form,
    h("h1", {}, "New job"),
    banner,
    h("label", { for: "model" }, "Recipe"),
    recipeSelect,
    errorSlot("job.model"),
    description,
    h("label", { for: "dataset" }, "Dataset URL"),
    dataset,
    errorSlot("job.dataset_url"),
    datasets,
    h("label", { for: "priority" }, "Priority"),
    priority,
    errorSlot("job.priority"),
    h("div", { class: "toggle" }, jsonToggle, h("label", { for: "json-mode" }, "Edit hyperparameters as JSON")),
    params,
    json,
    errorSlot("job.hyperparameters"),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Submit job")),
  );
  clear(root, form);

  api<{ recipes?: Recipe[] }>("GET", "/v1/recipes")
    .then((r) => {
      recipes = r.recipes ?? [];
      clear(recipeSelect, recipes.map((x) => h("option", { value: x.name }, x.title ? `${x.title} (${x.name})` : x.name)));
      drawRecipe();
    })
    .catch((e) => (banner.textContent = `Could not load recipes: ${(e as Error).message}`));
  return {};
}
