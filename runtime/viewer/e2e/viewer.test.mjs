// Drives the run viewer in headless Chromium (Debian's /usr/bin/chromium)
// with playwright-core. Started by cmd/nano-vm-mcp's TestViewerInBrowser,
// which serves a real database over HTTP (VIEWER_BASE, VIEWER_TOKEN) and a
// tampered copy of it through "nano-vm-mcp ui" (VIEWER_TAMPERED_URL), and
// reads the JSON this prints last: the measurements. Any failed check
// exits 1 with the reason.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error("missing environment variable " + k);
  return v;
};
const base = env("VIEWER_BASE"); // http://127.0.0.1:PORT
const token = env("VIEWER_TOKEN");
const tamperedURL = env("VIEWER_TAMPERED_URL"); // http://…/ui/#token=…
const brokenSeq = env("VIEWER_BROKEN_SEQ");
const ids = { showcase: env("VIEWER_SHOWCASE_ID"), long: env("VIEWER_LONG_ID"), waiting: env("VIEWER_SUSPENDED_ID"), hostile: env("VIEWER_HOSTILE_ID") };
const longRecords = Number(env("VIEWER_LONG_RECORDS"));
const artifacts = env("VIEWER_ARTIFACTS");

function check(cond, what) {
  if (!cond) throw new Error("check failed: " + what);
}

const profile = mkdtempSync(join(tmpdir(), "viewer-chromium-"));
// A fresh profile (--user-data-dir, which playwright passes for a
// persistent context) and the flags this closed network needs.
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
  viewport: { width: 1440, height: 900 },
  deviceScaleFactor: 1,
});
const out = {};
const problems = [];
try {
  const page = context.pages()[0] || await context.newPage();
  // Any script error or CSP violation fails the run.
  page.on("pageerror", (e) => problems.push("page error: " + e.message));
  page.on("console", (m) => { if (m.type() === "error" && !/401/.test(m.text())) problems.push("console error: " + m.text()); });
  const requests = [];
  page.on("request", (r) => requests.push(r.url()));

  // 1. The login page: the token is asked for, kept in the tab, never in a URL.
  await page.goto(base + "/ui/");
  await page.waitForSelector("#login-form");
  await page.fill("#token", "wrong-token");
  await page.click("#login-form button[type=submit]");
  await page.waitForSelector("#login-error:not([hidden])");
  check((await page.textContent("#login-error")).includes("not accepted"), "a wrong token is refused");
  await page.fill("#token", token);
  await page.click("#login-form button[type=submit]");

  // 2. The runs list.
  await page.waitForSelector("table#runs tbody tr");
  const runsText = await page.textContent("table#runs");
  for (const name of ["showcase_refund", "long_loop", "momo"]) check(runsText.includes(name), "the runs list shows " + name);
  check((await page.$$("table#runs tbody tr")).length >= 3, "at least three runs listed");
  await page.screenshot({ path: join(artifacts, "viewer-runs.png") });

  // Filter: suspended only.
  await page.selectOption("select[name=status]", "suspended");
  await page.click("form.filters button[type=submit]");
  await page.waitForFunction(() => location.hash.includes("status=suspended"));
  await page.waitForSelector("table#runs tbody tr");
  const statuses = await page.$$eval("table#runs tbody tr td:nth-child(3)", (tds) => tds.map((t) => t.textContent.trim()));
  check(statuses.length >= 1 && statuses.every((s) => s === "suspended"), "the status filter keeps suspended runs only: " + statuses);
  check((await page.textContent("table#runs")).includes(ids.waiting), "the suspended run is listed");

  // 3. One run: its steps, the timeline with parallel sub-steps and the
  // suspended stretch, a step's output, state hash and envelope.
  await page.click("text=Reset");
  await page.waitForSelector("table#runs tbody tr");
  await page.click(`a[href="#/run/${ids.showcase}"]`);
  await page.waitForSelector("#timeline-rows .tl-row");
  const labels = await page.$$eval("#timeline-rows .tl-row .sid", (els) => els.map((e) => e.textContent));
  for (const want of ["validate", "fan", "↳ refund", "↳ log", "poll", "resumed (OPERATOR)", "receipt"]) check(labels.includes(want), "the timeline shows " + want + ": " + labels);
  const subs = await page.$$eval("#timeline-rows .tl-row.sub .bar", (els) => els.map((e) => e.getBoundingClientRect()));
  check(subs.length === 2, "two sub-step bars");
  check(Math.abs(subs[0].y - subs[1].y) >= 10, "sub-steps in lanes of their own");
  const susp = await page.$$eval("#timeline-rows .susp-label", (els) => els.map((e) => e.textContent));
  check(susp.length === 1 && susp[0].startsWith("suspended "), "the suspended time is shown: " + susp);
  check((await page.textContent("#run-audit")).includes("verified"), "the run's envelopes verify");
  const fan = await page.$$("#timeline-rows .tl-row:not(.sub)");
  await fan[1].click();
  await page.waitForSelector("#detail #envelope .hashes");
  const detail = await page.textContent("#detail");
  check(detail.includes("matches the envelope"), "the state hash matches the envelope");
  check(detail.includes("refund") && detail.includes("Output"), "the step's output is shown");
  check(/seq\s*\d+/.test(detail), "the envelope's seq is shown");
  // The last step's envelope seals the run's end: its status is shown.
  const rows = await page.$$("#timeline-rows .tl-row:not(.sub)");
  await rows[rows.length - 1].click();
  await page.waitForSelector("#detail #envelope-run-status");
  const sealed = await page.textContent("#detail #envelope-run-status");
  check(sealed === "success", "the last step's envelope shows the run status it seals: " + sealed);
  await page.screenshot({ path: join(artifacts, "viewer-run.png") });
  out.screenshot = join(artifacts, "viewer-run.png");

  // Markup in names, outputs and logs stays text.
  await page.goto(base + "/ui/#/runs");
  await page.waitForSelector("table#runs tbody tr");
  check((await page.textContent("table#runs")).includes("<img src=x onerror=window.__xss=1>"), "a markup program name is shown as text");
  await page.goto(base + "/ui/#/run/" + ids.hostile + "/1");
  await page.waitForSelector("#detail #envelope");
  check((await page.textContent("#detail")).includes("<script>window.__xss=2</script>"), "a markup payload is shown as text");
  const injected = await page.evaluate(() => ({ xss: window.__xss, els: document.querySelectorAll("main img, main script, main b").length }));
  check(injected.xss === undefined && injected.els === 0, "no markup from the data became elements: " + JSON.stringify(injected));

  // 4. A 1,000-step run: one API call for the summaries; time from
  // navigation to every row drawn.
  await page.goto("about:blank");
  const t0 = Date.now();
  await page.goto(base + "/ui/#/run/" + ids.long);
  await page.waitForFunction((n) => document.querySelectorAll("#timeline-rows .tl-row").length === n, longRecords, { timeout: 60000 });
  out.long_run_load_ms = Date.now() - t0;
  out.long_run_render_ms = Number(await page.evaluate(() => document.body.dataset.renderMs));
  const entry = await page.evaluate((id) => {
    const e = performance.getEntriesByType("resource").find((r) => r.name.endsWith("/ui/api/traces/" + id));
    return e ? { ms: e.duration, bytes: e.encodedBodySize } : null;
  }, ids.long);
  check(entry, "the summaries came in one request");
  out.long_run_api_ms = Math.round(entry.ms * 10) / 10;
  out.long_run_api_bytes = entry.bytes;
  out.long_run_records = longRecords;
  const stepCalls = requests.filter((u) => u.includes("/ui/api/traces/" + ids.long + "/steps/")).length;
  check(stepCalls === 0, "no step output fetched before one is selected");

  // 5. The chain holds here.
  await page.goto(base + "/ui/#/audit");
  await page.waitForSelector("#audit-status");
  check((await page.textContent("#audit-status")).includes("holds"), "the chain holds on the untouched database");

  // No token in any URL the page requested.
  check(!requests.some((u) => u.includes(token)), "no request URL carries the token");

  // 6. The tampered copy, through nano-vm-mcp ui: the token from the
  // fragment, gone from the address bar at once.
  const page2 = await context.newPage();
  page2.on("pageerror", (e) => problems.push("page error: " + e.message));
  await page2.goto(tamperedURL);
  await page2.waitForSelector("table#runs tbody tr");
  check(!page2.url().includes("token="), "the fragment token is removed from the address bar: " + page2.url());
  await page2.goto(tamperedURL.split("#")[0] + "#/audit");
  await page2.waitForSelector("#audit-status");
  const st = await page2.textContent("#audit-status");
  check(st.includes("BROKEN at seq " + brokenSeq), "the tampered chain is reported broken at seq " + brokenSeq + ": " + st);
  check((await page2.textContent("#chain-pill")).includes("broken"), "the header's pill says broken");
  await page2.screenshot({ path: join(artifacts, "viewer-audit-broken.png") });
  await page2.goto(tamperedURL.split("#")[0] + "#/run/" + ids.showcase);
  await page2.waitForSelector("#run-audit");
  check((await page2.textContent("#run-audit")).includes("broken at seq " + brokenSeq), "the run shows its broken link");

  // 7. Tools and policy.
  await page2.goto(tamperedURL.split("#")[0] + "#/tools");
  await page2.waitForSelector("table#tools");
  const tools = await page2.textContent("table#tools");
  check(tools.includes("issue_refund") && tools.includes("bundled"), "the tool registry lists the bundled tools");
  await page2.screenshot({ path: join(artifacts, "viewer-tools.png") });
  await page2.goto(tamperedURL.split("#")[0] + "#/policy");
  await page2.waitForSelector("pre.json");
  check((await page2.textContent("main")).includes("Policy hash"), "the policy page shows its hash");

  check(problems.length === 0, problems.join("; "));
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(out));
