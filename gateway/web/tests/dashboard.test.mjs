// The dashboard in a real browser (Debian's chromium, headless, driven by
// playwright-core) against the whole mesh started by tests/e2e/dashboard_test.sh.
// Every wait is on a condition in the page, never on time.
//
// Environment: TRAINMESH_GATEWAY (base URL), DEV_USER/DEV_PASSWORD,
// OTHER_USER/OTHER_PASSWORD (a second user), SCREENSHOTS (directory),
// CHROMIUM (the browser binary).
import { chromium } from "playwright-core";
import { mkdirSync, statSync } from "node:fs";

const base = process.env.TRAINMESH_GATEWAY;
const shots = process.env.SCREENSHOTS ?? "screenshots";
mkdirSync(shots, { recursive: true });
const LONG = 180_000;  // a training job under a sanitizer build can take a while

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
page.setDefaultTimeout(30_000);
const consoleErrors = [];
page.on("console", (m) => {
  // Answers the tests ask for on purpose (a 400 for bad input, a 404) are
  // logged by the browser as failed resources; anything else is a bug.
  if (m.type() === "error" && !/status of (400|401|404)/.test(m.text())) consoleErrors.push(m.text());
});
page.on("pageerror", (e) => consoleErrors.push(`page error: ${e.message}`));
// Every URL the page asks for: no credential but a signed URL's may be in one.
const requested = [];
page.on("request", (r) => requested.push(r.url()));

let failures = 0;
async function step(name, fn) {
  const started = Date.now();
  try {
    await fn();
    console.log(`ok   ${name} (${Date.now() - started} ms)`);
  } catch (e) {
    failures++;
    console.log(`FAIL ${name}: ${e.stack ?? e}`);
    await page.screenshot({ path: `${shots}/failed-${name.replace(/\W+/g, "-")}.png`, fullPage: true }).catch(() => {});
  }
}
function expect(condition, message) {
  if (!condition) throw new Error(message);
}
const shot = (name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
const badge = () => page.locator(".job-head .badge");
const jobIdFromUrl = () => page.url().match(/\/jobs\/([0-9a-f-]{36})/)?.[1];
// A REST call with the session token of `on` (a page): work done "elsewhere".
async function post(on, path, body) {
  const token = await on.evaluate(() => sessionStorage.getItem("trainmesh.token"));
  const r = await fetch(`${base}${path}`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  expect(r.ok, `POST ${path}: ${r.status}`);
  return r.json();
}

async function signIn(user, password, on = page) {
  await on.goto(`${base}/signin`);
  await on.fill("#name", user);
  await on.fill("#password", password);
  await on.click("form[aria-label='Sign in'] button[type=submit]");
  await on.waitForURL("**/jobs");
}

async function newJob(fill) {
  await page.goto(`${base}/jobs/new`);
  await page.waitForSelector("#model option[value='mlp-policy']", { state: "attached" });
  await page.selectOption("#model", "mlp-policy");
  await page.waitForSelector("#hp-steps");
  await fill();
  await page.click("form[aria-label='New job'] button[type=submit]");
}

let completedId, failedId, cancelledId, listedId;

await step("sign-in refuses a wrong password, then signs in", async () => {
  await page.goto(`${base}/`);
  await page.waitForURL("**/signin");
  await shot("signin");
  await page.fill("#name", process.env.DEV_USER);
  await page.fill("#password", "not-the-password");
  await page.click("form[aria-label='Sign in'] button[type=submit]");
  await page.waitForFunction(() => document.querySelector("[data-testid=signin-error]")?.textContent?.length > 0);
  expect(page.url().endsWith("/signin"), "left the sign-in page with a wrong password");
  await signIn(process.env.DEV_USER, process.env.DEV_PASSWORD);
  await page.waitForSelector("[data-testid=agents].online");
});

await step("a job created through the form trains to COMPLETED with its chart drawn", async () => {
  await newJob(async () => {
    await page.fill("#dataset", "synthetic://reach");
    await page.fill("#hp-steps", "400");
  });
  await page.waitForURL(/\/jobs\/[0-9a-f-]{36}$/);
  completedId = jobIdFromUrl();
  await page.waitForSelector(".job-head .badge[data-state=RUNNING], .job-head .badge[data-state=COMPLETED]", { timeout: LONG });
  await page.locator(".job-head .badge[data-state=COMPLETED]").waitFor({ timeout: LONG });
  // The chart is drawn from the job's real points.
  await page.waitForFunction(() => Number(document.querySelector("[data-testid=chart]")?.dataset.points ?? 0) >= 10);
  expect(await page.locator("[data-testid=chart] canvas").count() > 0, "no chart canvas");
  const loss = await page.locator("[data-testid=card-train-loss] strong").textContent();
  expect(loss !== "-" && Number.isFinite(Number(loss)), `train loss card shows ${loss}`);
  expect((await page.locator("a:has-text('Download model')").count()) === 1, "no model download");
  await shot("job-completed");
  await page.click("button[data-tab=configuration]");
  await page.waitForSelector("[data-testid=hyperparameters]");
  expect((await page.textContent("[data-testid=hyperparameters]")).includes('"steps": 400'), "configuration tab");
  await shot("job-configuration");
  await page.click("button[data-tab=logs]");
  await page.waitForFunction(() => document.querySelector("[data-testid=logs]")?.textContent?.length > 0);
  await shot("job-logs");
});

await step("downloads and streams open signed URLs, never the session token", async () => {
  await page.goto(`${base}/jobs/${completedId}`);
  await page.locator(".job-head .badge[data-state=COMPLETED]").waitFor();
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("[data-testid=download-model]")]);
  expect(download.suggestedFilename() === `model-${completedId.slice(0, 8)}.pt`, `downloaded ${download.suggestedFilename()}`);
  expect(statSync(await download.path()).size > 0, "the model downloaded empty");
  const token = await page.evaluate(() => sessionStorage.getItem("trainmesh.token"));
  expect(token && token.length > 20, "no session token");
  const leaked = requested.filter((u) => u.includes(token));
  expect(leaked.length === 0, `the session token went into a URL: ${leaked[0]}`);
  const signed = requested.filter((u) => new URL(u).searchParams.has("access_token"));
  expect(signed.some((u) => u.includes("metrics:stream")), "no metrics stream opened with a signed URL");
  const downloaded = new URL(download.url());
  expect(downloaded.pathname.endsWith("/artifact") && downloaded.searchParams.has("access_token"),
    `the download was not a signed URL: ${downloaded.pathname}`);
  signed.push(download.url());
  for (const u of signed) {
    const url = new URL(u);
    const payload = url.searchParams.get("access_token").split(".")[1];
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString());
    // Signed for this very path and query (the token is appended last).
    const target = u.slice(url.origin.length).replace(/[?&]access_token=[^&]*$/, "");
    expect(claims.tm_kind === "url" && claims.tm_url === target,
      `${target} opened with a ${claims.tm_kind} token for ${claims.tm_url}`);
    expect(claims.exp - claims.iat <= 300, `a signed URL lives ${claims.exp - claims.iat} s`);
  }
  // The same URL's token cannot open another path.
  const other = new URL(signed.find((u) => new URL(u).pathname !== "/v1/jobs:watch"));
  const r = await fetch(`${base}/v1/jobs:watch?access_token=${other.searchParams.get("access_token")}`,
    { headers: { Accept: "text/event-stream" } });
  const text = await r.text().catch(() => "");
  expect(r.status === 401 || text.includes('"code":16'), `another path opened: ${r.status} ${text.slice(0, 200)}`);
});

await step("validation errors show at their fields (client and server)", async () => {
  await newJob(async () => {
    await page.fill("#dataset", "synthetic://reach");
    await page.fill("#hp-steps", "0");
  });
  const steps = page.locator(".field-error[data-field='job.hyperparameters.steps']");
  await page.waitForFunction((el) => el.textContent.length > 0, await steps.elementHandle());
  expect((await steps.textContent()).includes(">= 1"), `steps error: ${await steps.textContent()}`);
  // One the server finds: a dataset scheme it does not take.
  await page.fill("#hp-steps", "50");
  await page.fill("#dataset", "ftp://nowhere/data.csv");
  await page.click("form[aria-label='New job'] button[type=submit]");
  const dataset = page.locator(".field-error[data-field='job.dataset_url']");
  await page.waitForFunction((el) => el.textContent.length > 0, await dataset.elementHandle());
  expect(page.url().endsWith("/jobs/new"), "a rejected job left the form");
  expect((await page.getAttribute("#dataset", "aria-invalid")) === "true", "dataset not marked invalid");
  await shot("new-job-errors");
});

await step("cancel a running job through the confirmation dialog", async () => {
  await newJob(async () => {
    await page.fill("#dataset", "synthetic://reach");
    await page.fill("#hp-steps", "500000");
  });
  await page.waitForURL(/\/jobs\/[0-9a-f-]{36}$/);
  cancelledId = jobIdFromUrl();
  await page.locator(".job-head .badge[data-state=RUNNING]").waitFor({ timeout: LONG });
  await page.click("[data-testid=cancel]");
  await page.waitForSelector("dialog[open]");
  await shot("cancel-dialog");
  await page.click("[data-testid=confirm-cancel]");
  await page.locator(".job-head .badge[data-state=CANCELLED]").waitFor({ timeout: LONG });
  await shot("job-cancelled");
});

await step("a failed job shows its error log; retry it and follow the lineage link", async () => {
  await newJob(async () => {
    await page.fill("#dataset", "file:///no/such/file.csv");
    await page.fill("#hp-steps", "50");
  });
  await page.waitForURL(/\/jobs\/[0-9a-f-]{36}$/);
  failedId = jobIdFromUrl();
  await page.locator(".job-head .badge[data-state=FAILED]").waitFor({ timeout: LONG });
  await page.waitForSelector("[data-testid=error-log]");
  expect((await page.textContent("[data-testid=error-log]")).includes("does not exist"), "error log text");
  await shot("job-failed");
  await page.click("[data-testid=retry]");
  await page.waitForSelector("dialog[open]");
  await page.click("[data-testid=confirm-retry]");
  await page.waitForURL((url) => /\/jobs\/[0-9a-f-]{36}$/.test(url.pathname) && !url.pathname.endsWith(failedId));
  // The new job's page, not the old one's tabs still on screen for a moment.
  await page.locator(".job-head h1 code", { hasText: jobIdFromUrl().slice(0, 8) }).waitFor();
  await page.click("button[data-tab=info]");
  const retryOf = page.locator("[data-testid=retry-of]");
  await retryOf.waitFor();
  expect((await retryOf.textContent()) === failedId, "retry_of link");
  await shot("job-retry-info");
  await retryOf.click();
  await page.waitForURL(`**/jobs/${failedId}?tab=info`).catch(() => page.waitForURL(`**/jobs/${failedId}`));
  await page.waitForSelector("[data-testid=retries] a");
});

await step("the jobs list updates live and filters by state", async () => {
  await page.goto(`${base}/jobs`);
  await page.waitForSelector(`tr[data-job='${completedId}'] .badge[data-state=COMPLETED]`);
  // A job submitted elsewhere appears and moves on without a reload.
  const created = await post(page, "/v1/jobs", { model: "mlp-policy", datasetUrl: "synthetic://reach", hyperparameters: { steps: 100 } });
  listedId = created.id;
  await page.waitForSelector(`tr[data-job='${created.id}']`, { timeout: LONG });
  await page.waitForSelector(`tr[data-job='${created.id}'] .badge[data-state=COMPLETED]`, { timeout: LONG });
  await shot("jobs-list");
  await page.check("input[value=FAILED]");
  await page.waitForFunction(
    () => document.querySelectorAll("tbody tr").length > 0 && [...document.querySelectorAll("tbody tr")].every((r) => r.dataset.state === "FAILED"),
  );
  await page.uncheck("input[value=FAILED]");
});

await step("compare two jobs: one chart, their metrics, the settings that differ", async () => {
  await page.goto(`${base}/jobs`);
  await page.waitForSelector(`tr[data-job='${listedId}'] .badge[data-state=COMPLETED]`);
  expect(await page.isDisabled("[data-testid=compare]"), "compare enabled with nothing picked");
  await page.check(`input[data-pick='${completedId}']`);
  expect(await page.isDisabled("[data-testid=compare]"), "compare enabled with one job");
  await page.check(`input[data-pick='${listedId}']`);
  await page.click("[data-testid=compare]");
  await page.waitForURL("**/compare?jobs=*");
  const url = new URL(page.url());
  expect(url.searchParams.get("jobs").split(",").sort().join() === [completedId, listedId].sort().join(), `compare URL ${page.url()}`);
  // A line per job, drawn from their real points.
  await page.waitForFunction(() => {
    const c = document.querySelector("[data-testid=compare-chart]");
    return c?.dataset.series === "2" && Number(c.dataset.points) >= 10;
  });
  expect((await page.locator("[data-testid=compare-chart] canvas").count()) > 0, "no chart canvas");
  // steps differs (400 against 100) and is marked; the recipe does not.
  const steps = page.locator("tr[data-setting=steps]");
  expect((await steps.getAttribute("class")).includes("differs"), "steps not marked as differing");
  expect((await steps.textContent()).includes("400") && (await steps.textContent()).includes("100"), `steps row: ${await steps.textContent()}`);
  expect(!((await page.getAttribute("tr[data-setting=recipe]", "class")) ?? "").includes("differs"), "recipe marked as differing");
  await page.waitForSelector("table[aria-label='Metrics compared'] td[data-metric=train_loss]");
  // Another metric: the chart follows, and the URL keeps it.
  await page.selectOption("#compare-metric", "learning_rate");
  await page.waitForFunction(() => document.querySelector("[data-testid=compare-chart]")?.dataset.metric === "learning_rate");
  expect(page.url().includes("metric=learning_rate"), `metric not in the URL: ${page.url()}`);
  await shot("compare");
  // A job that is not there (or not yours) is named, and the rest still compare.
  const ghost = "00000000-0000-4000-8000-000000000000";
  await page.goto(`${base}/compare?jobs=${completedId},${listedId},${ghost}`);
  await page.waitForSelector(`.compared li[data-job='${ghost}']:has-text('no such job')`);
  await page.waitForFunction(() => document.querySelector("[data-testid=compare-chart]")?.dataset.series === "2");
});

await step("filter the list by a sweep's label, pick the page and compare it", async () => {
  const sweep = [];
  for (const lr of [0.01, 0.003, 0.001]) {
    const job = await post(page, "/v1/jobs", {
      model: "mlp-policy",
      datasetUrl: "synthetic://reach",
      hyperparameters: { steps: 30, learning_rate: lr },
      labels: { sweep: "ui-1" },
    });
    sweep.push(job.id);
  }
  await page.goto(`${base}/jobs`);
  await page.fill("#label-filter", "novalue");
  await page.press("#label-filter", "Enter");
  await page.waitForFunction(() => document.querySelector("#label-filter-error")?.textContent.length > 0);
  expect((await page.getAttribute("#label-filter", "aria-invalid")) === "true", "bad filter not marked");
  await page.fill("#label-filter", "sweep=ui-1");
  await page.press("#label-filter", "Enter");
  await page.waitForFunction(
    (ids) => {
      const rows = [...document.querySelectorAll("tbody tr")].map((r) => r.dataset.job);
      return rows.length === ids.length && ids.every((id) => rows.includes(id));
    },
    sweep,
  );
  expect(new URL(page.url()).searchParams.get("label") === "sweep=ui-1", `filter not in the URL: ${page.url()}`);
  expect((await page.textContent("#label-filter-error")) === "", "the error stayed");
  // The filter survives a reload (it is in the URL).
  await page.reload();
  await page.waitForFunction(() => document.querySelectorAll("tbody tr").length === 3);
  await page.check("[data-testid=pick-all]");
  expect((await page.textContent("[data-testid=compare]")) === "Compare (3)", await page.textContent("[data-testid=compare]"));
  await page.click("[data-testid=compare]");
  await page.waitForURL("**/compare?jobs=*");
  await page.waitForFunction(() => document.querySelectorAll(".compared li").length === 3);
  await page.waitForSelector("tr[data-setting=learning_rate].differs");
  await page.waitForSelector("tr[data-setting='label sweep']:not(.differs)");
  await shot("compare-sweep");
  // Picks are kept while browsing: clear them for the steps that follow.
  await page.goto(`${base}/jobs?label=sweep%3Dui-1`);
  await page.waitForFunction(() => document.querySelectorAll("tbody tr").length === 3);
  await page.uncheck("[data-testid=pick-all]");
  expect(await page.isDisabled("[data-testid=compare]"), "picks not cleared");
  // The sweep's jobs finish here (live in the filtered list), not in the middle of the next step.
  await page.waitForFunction(
    () => [...document.querySelectorAll("tbody tr")].filter((r) => r.dataset.state === "COMPLETED").length === 3,
    undefined,
    { timeout: LONG },
  );
});

await step("notifications arrive live, are marked read, and read state follows the user", async () => {
  await page.waitForFunction(() => Number(document.querySelector("[data-testid=unread]")?.textContent || 0) > 0);
  await page.click("button.bell");
  await page.waitForSelector(".menu .note.unread");
  // Each job's news, linked to it; a failure says why.
  await page.waitForSelector(`.menu .note[data-kind=COMPLETED] a[href='/jobs/${completedId}']`);
  await page.waitForSelector(`.menu .note[data-kind=CANCELLED] a[href='/jobs/${cancelledId}']`);
  const failedNote = page.locator(`.menu .note[data-kind=FAILED]:has(a[href='/jobs/${failedId}'])`);
  expect((await failedNote.textContent()).includes("does not exist"), `failed note: ${await failedNote.textContent()}`);
  await shot("notifications");
  await page.click(".menu-head button");
  await page.waitForFunction(() => document.querySelector("[data-testid=unread]")?.textContent === "");
  expect((await page.locator(".menu .note.unread").count()) === 0, "still unread");
  await page.click("button.bell");  // closed

  // Another device (a fresh browser profile): the same inbox, already read;
  // news arrives there live and is marked read one by one.
  const device = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const other = await device.newPage();
  other.setDefaultTimeout(30_000);
  await signIn(process.env.DEV_USER, process.env.DEV_PASSWORD, other);
  await other.click("button.bell");
  await other.waitForSelector(`.menu .note[data-kind=COMPLETED] a[href='/jobs/${completedId}']`);
  expect((await other.locator(".menu .note.unread").count()) === 0, "read state did not follow the user");
  expect((await other.textContent("[data-testid=unread]")) === "", "unread count on the other device");
  const created = await post(other, "/v1/jobs", { model: "mlp-policy", datasetUrl: "synthetic://reach", hyperparameters: { steps: 1000000 } });
  await post(other, `/v1/jobs/${created.id}:cancel`, { reason: "from the other device" });
  const fresh = other.locator(`.menu .note.unread[data-kind=CANCELLED]:has(a[href='/jobs/${created.id}'])`);
  await fresh.waitFor();
  expect((await fresh.textContent()).includes("from the other device"), `cancel note: ${await fresh.textContent()}`);
  await fresh.locator("button:has-text('Mark read')").click();
  await other.locator(`.menu .note.unread:has(a[href='/jobs/${created.id}'])`).waitFor({ state: "detached" });
  await other.screenshot({ path: `${shots}/notifications-other-device.png`, fullPage: true });
  await device.close();
  // And back on the first device, after a reload, it is read there too.
  await page.reload();
  await page.click("button.bell");
  await page.waitForSelector(`.menu .note[data-kind=CANCELLED]:has(a[href='/jobs/${created.id}'])`);
  expect((await page.locator(".menu .note.unread").count()) === 0, "read on one device, unread on the other");
  await page.click("button.bell");
});

await step("phone width: no sideways scrolling", async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${base}/jobs`);
  await page.waitForSelector("tbody tr");
  expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1), "page wider than the phone");
  await shot("jobs-phone");
  await page.goto(`${base}/jobs/${completedId}`);
  await page.waitForSelector(".job-head .badge[data-state=COMPLETED]");
  expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1), "job page wider than the phone");
  await shot("job-phone");
  await page.setViewportSize({ width: 1280, height: 900 });
});

await step("keyboard: Tab walks the form in order and Enter submits it", async () => {
  await page.goto(`${base}/jobs/new`);
  await page.waitForSelector("#hp-steps");
  await page.focus("#model");
  await page.keyboard.press("Tab");
  expect(await page.evaluate(() => document.activeElement?.id === "dataset"), "Tab from the recipe goes to the dataset");
  await page.keyboard.press("Tab");
  expect(await page.evaluate(() => document.activeElement?.id === "priority"), "then to the priority");
  await page.fill("#dataset", "synthetic://reach");
  await page.fill("#hp-steps", "20");
  await page.focus("#hp-steps");
  await page.keyboard.press("Enter");
  await page.waitForURL(/\/jobs\/[0-9a-f-]{36}$/);
});

await step("a second user sees none of the first user's jobs", async () => {
  await page.click("header button.link:has-text('Sign out')");
  await page.waitForURL("**/signin");
  await signIn(process.env.OTHER_USER, process.env.OTHER_PASSWORD);
  await page.waitForFunction(() => document.querySelector("main [role=status]")?.textContent === "No jobs here yet.");
  expect((await page.locator("tbody tr").count()) === 0, "other user's jobs listed");
  await page.click("button.bell");
  await page.waitForSelector(".menu p.muted:has-text('Nothing yet.')");
  expect((await page.locator(".menu .note").count()) === 0, "other user's notifications listed");
  await page.click("button.bell");
  await page.goto(`${base}/jobs/${completedId}`);
  await page.waitForSelector("text=No such job.");
  // No agent of theirs is online: the header says so, and a job of theirs
  // waits in the queue with its position and the reason.
  await page.goto(`${base}/jobs`);
  await page.waitForSelector("[data-testid=agents].offline");
  expect((await page.textContent("[data-testid=agents]")).includes("waiting for agent"), "agent indicator");
  const created = await post(page, "/v1/jobs", { model: "mlp-policy", datasetUrl: "synthetic://reach" });
  await page.waitForSelector(`tr[data-job='${created.id}'][data-state=QUEUED] [data-testid=queue]`);
  const note = await page.textContent(`tr[data-job='${created.id}'] [data-testid=queue]`);
  expect(/#1 in queue — ./.test(note), `queue note: ${note}`);
  await shot("second-user");
});

await step("an expired or revoked session goes back to sign-in with the reason", async () => {
  await page.evaluate(() => sessionStorage.setItem("trainmesh.token", "not-a-token"));
  await page.goto(`${base}/jobs`);
  await page.waitForURL("**/signin**");
  await page.waitForFunction(() => /Signed out: ./.test(document.querySelector("[data-testid=signin-error]")?.textContent ?? ""));
});

await step("no console errors", async () => {
  expect(consoleErrors.length === 0, consoleErrors.join("\n"));
});

await browser.close();
console.log(failures === 0 ? "dashboard: all steps passed" : `dashboard: ${failures} step(s) failed`);
process.exit(failures === 0 ? 0 : 1);
