// nano-vm-mcp run viewer. Every name, output and log shown here comes from
// clients and WebAssembly modules: it is inserted as text only (the h()
// helper makes text nodes of strings), never as HTML.

const TOKEN_KEY = "nano-vm-mcp.token";
const main = document.getElementById("main");

// ---- DOM helpers ----

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "style") Object.assign(el.style, v);
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  add(el, kids);
  return el;
}

function add(el, kids) {
  for (const k of kids.flat(Infinity)) {
    if (k === undefined || k === null || k === false) continue;
    el.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return el;
}

function clear(el) { el.replaceChildren(); return el; }

const badge = (s) => h("span", { class: "badge " + String(s).replace(/[^a-z_]/g, "") }, s);
const kv = (k, v, cls) => h("div", { class: "kv" }, h("div", { class: "k" }, k), h("div", { class: "v " + (cls || "") }, v));
const short = (hash, n = 12) => (hash ? String(hash).slice(0, n) : "—");
const json = (v) => h("pre", { class: "json" }, JSON.stringify(v, null, 2));

function fmtTime(s) {
  if (!s) return "—";
  const d = new Date(s);
  if (isNaN(d)) return String(s);
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

function fmtDur(ms) {
  if (ms === undefined || ms === null || isNaN(ms)) return "—";
  if (ms < 1) return ms.toFixed(2) + " ms";
  if (ms < 1000) return ms.toFixed(ms < 10 ? 1 : 0) + " ms";
  const s = ms / 1000;
  if (s < 60) return s.toFixed(s < 10 ? 2 : 1) + " s";
  const m = Math.floor(s / 60);
  if (m < 60) return m + " min " + Math.round(s % 60) + " s";
  const hr = Math.floor(m / 60);
  if (hr < 48) return hr + " h " + (m % 60) + " min";
  return Math.floor(hr / 24) + " d " + (hr % 24) + " h";
}

// ---- API ----

class AuthError extends Error {}

async function api(path) {
  const headers = { Accept: "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = "Bearer " + token;
  const res = await fetch("api/" + path, { headers, credentials: "omit", cache: "no-store", referrerPolicy: "no-referrer" });
  if (res.status === 401) throw new AuthError("the token was not accepted");
  let body;
  try { body = await res.json(); } catch { body = { message: res.status + " " + res.statusText } }
  if (!res.ok) throw new Error(body.message || body.error || String(res.status));
  return body;
}

// ---- sign-in ----

// A token handed over in the fragment (nano-vm-mcp ui prints such a URL)
// is taken and removed from the address bar and the history entry at once.
function takeFragmentToken() {
  const m = location.hash.match(/^#token=([^&]+)/);
  if (!m) return;
  sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
  history.replaceState(null, "", location.pathname + location.search + "#/runs");
}

function showLogin(message) {
  document.getElementById("nav").hidden = true;
  document.getElementById("signout").hidden = true;
  clear(main).append(document.getElementById("login-tpl").content.cloneNode(true));
  const form = document.getElementById("login-form");
  const err = document.getElementById("login-error");
  if (message) { err.textContent = message; err.hidden = false; }
  const input = document.getElementById("token");
  input.focus();
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    input.value = "";
    await start();
  });
}

document.getElementById("signout").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  showLogin();
});

let info = null;

async function start() {
  try {
    info = await api("info");
  } catch (e) {
    if (e instanceof AuthError) {
      const had = sessionStorage.getItem(TOKEN_KEY);
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin(had ? "That token was not accepted." : "");
      return;
    }
    clear(main).append(h("p", { class: "card error" }, "The viewer could not reach the server: " + e.message));
    return;
  }
  document.getElementById("nav").hidden = false;
  document.getElementById("signout").hidden = !sessionStorage.getItem(TOKEN_KEY);
  document.getElementById("where").textContent = [info.where, info.version].filter(Boolean).join(" · ");
  refreshChainPill();
  route();
}

async function refreshChainPill() {
  const pill = document.getElementById("chain-pill");
  try {
    const rep = await api("audit");
    pill.className = "pill " + (rep.ok ? "ok" : "bad");
    pill.textContent = rep.ok ? "ok" : "broken";
    pill.hidden = false;
  } catch { pill.hidden = true; }
}

// ---- routing: #/runs?…, #/run/ID, #/audit, #/tools, #/policy ----

window.addEventListener("hashchange", () => { if (info) route(); });

function route() {
  const hash = location.hash || "#/runs";
  const [path, query] = hash.slice(1).split("?");
  const parts = path.split("/").filter(Boolean);
  const view = parts[0] || "runs";
  for (const a of document.querySelectorAll("nav a")) {
    a.classList.toggle("active", a.dataset.view === view || (view === "run" && a.dataset.view === "runs"));
  }
  const params = new URLSearchParams(query || "");
  const views = { runs: viewRuns, run: viewRun, audit: viewAudit, tools: viewTools, policy: viewPolicy };
  const fn = views[view] || viewRuns;
  clear(main).append(h("div", { class: "loading" }, "Loading…"));
  fn(parts.slice(1).map(decodeURIComponent), params).catch((e) => {
    if (e instanceof AuthError) { sessionStorage.removeItem(TOKEN_KEY); showLogin("The token is no longer accepted."); return; }
    clear(main).append(h("div", { class: "card error" }, e.message));
  });
}

// ---- runs list ----

const STATUSES = ["running", "success", "failed", "budget_exceeded", "stalled", "suspended"];

async function viewRuns(_, params) {
  const cursors = (params.get("back") || "").split(",").filter(Boolean);
  const q = new URLSearchParams();
  for (const k of ["status", "program", "since", "until", "cursor"]) if (params.get(k)) q.set(k, params.get(k));
  const page = await api("traces?" + q.toString());

  const status = h("select", { name: "status" }, h("option", { value: "" }, "any"), STATUSES.map((s) => h("option", { value: s, selected: params.get("status") === s }, s)));
  const program = h("input", { name: "program", placeholder: "name or saved id", value: params.get("program") || "", size: 22 });
  const since = h("input", { name: "since", type: "datetime-local", value: params.get("since") || "" });
  const until = h("input", { name: "until", type: "datetime-local", value: params.get("until") || "" });
  const go = (extra) => {
    const p = new URLSearchParams();
    if (status.value) p.set("status", status.value);
    if (program.value.trim()) p.set("program", program.value.trim());
    if (since.value) p.set("since", since.value);
    if (until.value) p.set("until", until.value);
    for (const [k, v] of Object.entries(extra || {})) if (v) p.set(k, v);
    location.hash = "#/runs" + (p.toString() ? "?" + p.toString() : "");
  };
  const form = h("form", { class: "filters", onsubmit: (e) => { e.preventDefault(); go(); } },
    h("label", {}, "Status", status), h("label", {}, "Program", program),
    h("label", {}, "Created from (UTC)", since), h("label", {}, "to (UTC)", until),
    h("div", { class: "actions" }, h("button", { class: "plain", type: "submit" }, "Apply"),
      h("button", { class: "plain", type: "button", onclick: () => { location.hash = "#/runs"; } }, "Reset")));

  const rows = page.traces.map((t) => h("tr", {},
    h("td", {}, h("a", { class: "mono", href: "#/run/" + encodeURIComponent(t.trace_id) }, t.trace_id)),
    h("td", {}, t.program_name || h("span", { class: "muted" }, "(unnamed)"), t.program_id ? h("div", { class: "muted mono" }, t.program_id) : null),
    h("td", {}, badge(t.status)),
    h("td", { class: "mono nowrap" }, fmtTime(t.created_at)),
    h("td", { class: "mono nowrap" }, fmtTime(t.updated_at)),
    h("td", { class: "mono muted" }, t.idempotency_key || "")));
  const table = rows.length
    ? h("table", { id: "runs" }, h("thead", {}, h("tr", {}, ["Trace", "Program", "Status", "Created", "Updated", "Idempotency key"].map((c) => h("th", {}, c)))), h("tbody", {}, rows))
    : h("div", { class: "empty" }, "No runs match.");
  const skipped = (page.skipped || []).length ? h("p", { class: "error" }, page.skipped.length + " stored run(s) in this range could not be read back: " + page.skipped.map((s) => s.id + " (" + s.error + ")").join("; ")) : null;

  const here = params.get("cursor") || "";
  const pager = h("div", { class: "pager" },
    params.has("program") || params.has("since") || params.has("until") ? h("span", {}, "scanned " + page.scanned + " run(s)") : null,
    h("button", { class: "plain", type: "button", disabled: !here, onclick: () => {
      const back = cursors.slice(); const prev = back.pop() || "";
      go({ cursor: prev === "-" ? "" : prev, back: back.join(",") });
    } }, "← Newer"),
    h("button", { class: "plain", type: "button", disabled: !page.next_cursor, onclick: () => {
      go({ cursor: page.next_cursor, back: cursors.concat([here || "-"]).join(",") });
    } }, "Older →"));

  clear(main).append(h("div", { class: "stack" },
    h("div", { class: "title" }, h("h1", {}, "Runs"), h("span", { class: "muted" }, "newest first")),
    h("div", { class: "card" }, form),
    h("div", { class: "card" }, skipped, table, pager)));
}

// ---- one run ----

// timeScale maps a time in ms from the run's start to a % of the track.
// Suspended stretches (a pending step until its resume, or until now)
// are drawn as fixed-width breaks, so a run that waited a day still shows
// its steps' durations.
function timeScale(spanMS, breaks) {
  const total = breaks.reduce((s, b) => s + (b.to - b.from), 0);
  const active = Math.max(spanMS - total, 1e-3);
  const each = breaks.length ? Math.min(10, 30 / breaks.length) : 0;
  const activePct = 100 - each * breaks.length;
  const sorted = breaks.slice().sort((a, b) => a.from - b.from);
  return (t) => {
    let x = 0, last = 0;
    for (const b of sorted) {
      if (t <= b.from) break;
      x += ((Math.min(t, b.from) - last) / active) * activePct;
      if (t < b.to) return x + ((t - b.from) / (b.to - b.from)) * each;
      x += each; last = b.to;
    }
    return Math.min(100, x + ((t - last) / active) * activePct);
  };
}

async function viewRun([id, sel], params) {
  const offset = Number(params.get("offset")) || 0;
  const [run, audit] = await Promise.all([api("traces/" + encodeURIComponent(id) + (offset ? "?offset=" + offset : "")), api("traces/" + encodeURIComponent(id) + "/audit").catch((e) => ({ error: e.message }))]);
  const t0 = performance.now();
  const steps = run.steps;
  // A later page of a long run is drawn from its own first record.
  const origin = offset && steps.length ? steps[0].start_ms : 0;
  if (origin) for (const s of steps) {
    s.start_ms -= origin; s.end_ms -= origin;
    for (const sub of s.sub_steps || []) { sub.start_ms -= origin; sub.end_ms -= origin; }
  }
  const nowMS = new Date(run.now) - new Date(run.started_at) - origin;
  let spanMS = offset || run.next_offset ? 0 : run.duration_ms || 0;
  for (const s of steps) spanMS = Math.max(spanMS, s.end_ms);

  // Suspensions: from a pending step's end to the resume record after it,
  // or to now while the run is still suspended.
  const breaks = [];
  steps.forEach((s, i) => {
    if (s.kind === "resume" && i > 0) breaks.push({ from: steps[i - 1].end_ms, to: s.start_ms, step: i - 1 });
  });
  if (run.status === "suspended" && steps.length && !run.next_offset) {
    const last = steps[steps.length - 1];
    breaks.push({ from: last.end_ms, to: Math.max(nowMS, last.end_ms), step: steps.length - 1, open: true });
    spanMS = Math.max(spanMS, nowMS);
  }
  const realBreaks = breaks.filter((b) => b.to > b.from);
  const x = timeScale(spanMS || 1, realBreaks);
  const suspendedMS = realBreaks.reduce((s, b) => s + (b.to - b.from), 0);

  // Header.
  const auditLine = audit.error
    ? h("span", { class: "error" }, "audit: " + audit.error)
    : audit.ok
      ? h("span", { class: "match", id: "run-audit" }, "✓ " + audit.checked + " envelope(s) verified")
      : h("span", { class: "mismatch", id: "run-audit" }, "✗ audit " + (audit.broken ? "broken at seq " + audit.broken.seq + ": " + audit.broken.reason : "failed: " + ((audit.records || [])[0] || {}).reason));
  const header = h("div", { class: "card" },
    h("div", { class: "title" }, h("a", { href: "#/runs" }, "← Runs"), h("h1", {}, run.program_name || "(unnamed program)"), badge(run.status), auditLine),
    h("div", { class: "mono muted" }, run.trace_id),
    run.error ? h("p", { class: "error" }, run.error) : null,
    run.suspended_step_id ? h("p", {}, "Waiting at step ", h("code", {}, run.suspended_step_id), " for resume_program.") : null,
    h("div", { class: "summary" },
      kv("Started", fmtTime(run.started_at), "mono"), kv("Finished", fmtTime(run.finished_at), "mono"),
      kv("Duration", fmtDur(run.duration_ms || spanMS)), kv("Suspended", suspendedMS ? fmtDur(suspendedMS) : "—"),
      kv("Records", String(run.total_steps)), kv("Tool calls", String(run.step_metrics.tool_calls)),
      kv("LLM calls", String(run.step_metrics.llm_calls)), kv("Retries", String(run.step_metrics.retries_total)),
      run.usage.total_tokens ? kv("Tokens", String(run.usage.total_tokens)) : null),
    h("div", { class: "hashes mono" },
      h("span", { class: "k" }, "program"), h("span", {}, run.program_hash || "—"),
      h("span", { class: "k" }, "policy"), h("span", {}, run.policy_hash || "—"),
      h("span", { class: "k" }, "initial state"), h("span", {}, run.initial_state_hash || "—"),
      h("span", { class: "k" }, "state root"), h("span", {}, run.state_root || "—")));

  // Axis: five ticks in active time, labelled with elapsed time.
  const axis = h("div", { class: "tl-axis" });
  for (let i = 0; i <= 4; i++) {
    const t = (spanMS * i) / 4;
    const inBreak = realBreaks.some((b) => t > b.from && t < b.to);
    if (!inBreak) axis.append(h("span", { style: { left: Math.min(97, Math.max(3, x(t))) + "%" } }, fmtDur(t)));
  }

  const detail = h("div", { class: "detail card", id: "detail" }, h("div", { class: "muted" }, "Select a step to see its output, state hash and envelope."));
  const rowsEl = h("div", { class: "tl-rows", id: "timeline-rows" });
  const frag = document.createDocumentFragment();
  const bar = (cls, from, to, title) => h("div", { class: "bar " + cls, title, style: { left: x(from) + "%", width: Math.max(0, x(to) - x(from)) + "%" } });
  steps.forEach((s, i) => {
    const track = h("div", { class: "track" });
    const label = s.kind === "resume" ? "resumed (" + (s.source || "event") + ")" : s.step_id;
    if (s.kind === "resume") track.append(h("div", { class: "bar resume", title: "resume event", style: { left: x(s.start_ms) + "%" } }));
    else track.append(bar(s.status, s.start_ms, s.end_ms, s.step_id + ": " + fmtDur(s.end_ms - s.start_ms)));
    if (s.kind !== "resume") track.append(h("span", { class: "dur", style: { left: x(s.end_ms) + "%" } }, fmtDur(s.end_ms - s.start_ms), s.retries ? " · " + s.retries + " retr." : ""));
    const br = realBreaks.find((b) => b.step === i);
    if (br) {
      track.append(bar("susp", br.from, br.to, "suspended " + fmtDur(br.to - br.from)));
      track.append(h("span", { class: "susp-label", style: { left: x(br.to) + "%" } }, "suspended " + fmtDur(br.to - br.from) + (br.open ? " so far" : "")));
    }
    frag.append(h("div", { class: "tl-row", "data-index": s.index, onclick: () => select(s.index) },
      h("div", { class: "label" }, h("span", { class: "idx" }, String(s.index)), h("span", { class: "sid" }, label), h("span", { class: "typ" }, s.type), s.kind === "resume" ? null : badge(s.status)),
      track));
    for (const sub of s.sub_steps || []) {
      const st = h("div", { class: "track" }, bar("sub " + sub.status, sub.start_ms, sub.end_ms, sub.step_id + ": " + fmtDur(sub.end_ms - sub.start_ms)),
        h("span", { class: "dur", style: { left: x(sub.end_ms) + "%" } }, fmtDur(sub.end_ms - sub.start_ms)));
      frag.append(h("div", { class: "tl-row sub", "data-index": s.index, onclick: () => select(s.index) },
        h("div", { class: "label" }, h("span", { class: "sid" }, "↳ " + sub.step_id), h("span", { class: "typ" }, sub.type), badge(sub.status)), st));
    }
  });
  rowsEl.append(frag);

  const page = (o, text) => h("a", { href: "#/run/" + encodeURIComponent(id) + "?offset=" + o }, text);
  const more = run.next_offset || offset ? h("p", { class: "muted" }, "Records " + offset + "–" + (offset + steps.length - 1) + " of " + run.total_steps + ". ",
    offset ? page(Math.max(0, offset - 5000), "← earlier") : null, " ", run.next_offset ? page(run.next_offset, "later →") : null) : null;
  const legend = h("div", { class: "legend" },
    [["var(--ok)", "success"], ["var(--bad)", "failed"], ["var(--run)", "pending / running"], ["var(--skip)", "skipped"], ["var(--warn)", "resume event"]].map(([c, t]) => h("span", {}, h("i", { style: { background: c } }), t)),
    h("span", {}, h("i", { class: "bar susp", style: { position: "static", display: "inline-block" } }), "suspended (drawn as a break, not to scale)"));
  const timeline = h("div", { class: "card grow" },
    h("h2", {}, "Timeline ", h("span", { class: "muted" }, "· " + steps.length + " record(s)")),
    h("div", { class: "timeline", id: "timeline" }, h("div", { class: "tl-head" }, h("div", { class: "label" }, "step"), axis), rowsEl),
    more, legend);

  clear(main).append(h("div", { class: "stack" }, header, h("div", { class: "row" }, timeline, detail)));
  document.body.dataset.renderMs = (performance.now() - t0).toFixed(1);

  let selected = null;
  async function select(index) {
    if (selected !== null) for (const r of rowsEl.querySelectorAll('.tl-row[data-index="' + selected + '"]')) r.classList.remove("sel");
    selected = index;
    for (const r of rowsEl.querySelectorAll('.tl-row[data-index="' + index + '"]')) r.classList.add("sel");
    history.replaceState(null, "", "#/run/" + encodeURIComponent(id) + "/" + index + (offset ? "?offset=" + offset : ""));
    clear(detail).append(h("div", { class: "loading" }, "Loading step " + index + "…"));
    try {
      const d = await api("traces/" + encodeURIComponent(id) + "/steps/" + index);
      if (selected === index) renderStep(detail, d);
    } catch (e) {
      clear(detail).append(h("p", { class: "error" }, e.message));
    }
  }
  if (sel !== undefined && sel !== "") select(Number(sel));
}

function renderStep(el, d) {
  const s = d.step, env = d.envelope;
  const hashCheck = env ? (env.state_hash === s.state_hash ? h("span", { class: "match" }, " ✓ matches the envelope") : h("span", { class: "mismatch" }, " ✗ differs from the envelope")) : null;
  add(clear(el), [
    h("h2", {}, h("span", { class: "mono muted" }, "#" + s.index), s.kind === "resume" ? "resume event" : s.step_id, badge(s.status)),
    h("div", { class: "summary" },
      kv("Type", s.type), kv("Duration", fmtDur(s.duration_ms)),
      kv("Started", fmtTime(s.started_at), "mono"), kv("Retries", String(s.retries || 0)),
      s.next ? kv("Next", s.next, "mono") : null, s.source ? kv("Source", s.source) : null),
    s.error ? h("div", { class: "section" }, h("div", { class: "k" }, "Error"), h("p", { class: "error" }, s.error)) : null,
    h("div", { class: "section" }, h("div", { class: "k" }, "State hash"), h("div", { class: "mono" }, s.state_hash || "—", hashCheck)),
    s.tool ? h("div", { class: "section" }, h("div", { class: "k" }, "Tool module"),
      h("div", { class: "mono" }, "module ", s.tool.module_sha256), h("div", { class: "mono" }, "manifest ", s.tool.manifest_sha256),
      h("div", {}, s.tool.source ? badge(s.tool.source) : null, " ", Object.entries(s.tool.grants || {}).map(([c, a]) => h("span", { class: "chip" }, c, " ", h("small", {}, a))))) : null,
    h("div", { class: "section" }, h("div", { class: "k" }, "Output"), json(s.output)),
    s.log ? h("div", { class: "section" }, h("div", { class: "k" }, "Log"), h("pre", { class: "json" }, s.log)) : null,
    (s.sub_steps || []).length ? h("div", { class: "section" }, h("div", { class: "k" }, "Sub-steps"),
      s.sub_steps.map((sub) => h("div", { class: "section" }, h("div", {}, h("code", {}, sub.step_id), " ", badge(sub.status), " ", fmtDur(sub.duration_ms)), sub.error ? h("p", { class: "error" }, sub.error) : null, json(sub.output)))) : null,
    h("div", { class: "section", id: "envelope" }, h("div", { class: "k" }, "Audit envelope"),
      env ? h("div", { class: "hashes mono" },
        h("span", { class: "k" }, "seq"), h("span", {}, String(env.seq)),
        h("span", { class: "k" }, "hash"), h("span", {}, env.hash),
        h("span", { class: "k" }, "prev"), h("span", {}, env.prev_hash),
        h("span", { class: "k" }, "policy"), h("span", {}, env.policy_hash),
        h("span", { class: "k" }, "record"), h("span", {}, env.record_sha256 || "—"),
        env.run_status ? [h("span", { class: "k" }, "run status"), h("span", { id: "envelope-run-status" }, env.run_status)] : null,
        h("span", { class: "k" }, "recorded"), h("span", {}, fmtTime(env.recorded_at))) : h("p", { class: "muted" }, "No envelope: only successful steps leave one."),
      env ? json(env.payload) : null)]);
}

// ---- audit ----

async function viewAudit() {
  const rep = await api("audit");
  const b = rep.broken;
  const banner = rep.ok
    ? h("div", { class: "banner ok", id: "audit-status" }, h("span", { class: "icon" }, "✓"), h("div", {}, h("strong", {}, "The audit chain holds"), rep.checked + " envelope(s) and " + rep.records_checked + " record(s) re-hashed; head seq " + rep.head_seq + "."))
    : h("div", { class: "banner bad", id: "audit-status" }, h("span", { class: "icon" }, "✗"), h("div", {},
      h("strong", {}, b ? "The audit chain is BROKEN at seq " + b.seq : "Stored records do not match their envelopes"),
      b ? (b.reason.startsWith(b.problem) ? b.reason : b.problem + ": " + b.reason) + " — " + rep.checked + " envelope(s) checked before it." : (rep.records || []).length + (rep.records_omitted || 0) + " record(s) do not match; the chain links hold."));
  const recs = (rep.records || []).length
    ? h("div", { class: "card" }, h("h2", {}, "Records that do not match"), h("table", {},
      h("thead", {}, h("tr", {}, ["Trace", "Record", "Step", "Seq", "Problem", "Reason"].map((c) => h("th", {}, c)))),
      h("tbody", {}, rep.records.map((r) => h("tr", {},
        h("td", {}, h("a", { class: "mono", href: "#/run/" + encodeURIComponent(r.trace_id) }, r.trace_id)), h("td", {}, r.record),
        h("td", {}, r.step_index === undefined ? "" : String(r.step_index)), h("td", {}, r.seq === undefined ? "" : String(r.seq)), h("td", {}, r.problem), h("td", {}, r.reason))))),
      rep.records_omitted ? h("p", { class: "muted" }, rep.records_omitted + " more not listed.") : null)
    : null;
  const notes = (rep.notes || []).length ? h("div", { class: "card" }, h("h2", {}, "Notes"), rep.notes.map((n) => h("p", { class: "muted" }, n.trace_id + ": " + n.problem + " — " + n.reason))) : null;
  clear(main).append(h("div", { class: "stack" },
    h("div", { class: "title" }, h("h1", {}, "Audit chain")),
    banner,
    h("div", { class: "card" }, h("div", { class: "summary" },
      kv("Envelopes checked", String(rep.checked)), kv("Records checked", String(rep.records_checked)),
      kv("Head seq", rep.head_seq ? String(rep.head_seq) : "—"), kv("Head hash", rep.head_hash || "—", "mono")),
      h("p", { class: "muted" }, "Every successful step leaves an envelope linked by SHA-256 to the one before; this re-hashes each one and every record it covers, as verify_audit does.")),
    recs, notes));
}

// ---- tools ----

async function viewTools() {
  const { tools } = await api("tools");
  const rows = tools.map((t) => h("tr", {},
    h("td", {}, h("strong", {}, t.name), t.version ? h("div", { class: "muted" }, "v" + t.version) : null),
    h("td", {}, badge(t.source)),
    h("td", {}, t.capabilities.length ? t.capabilities.map((c) => h("span", { class: "chip" }, c, t.grants[c] ? h("small", {}, " " + t.grants[c]) : null)) : h("span", { class: "muted" }, "wasi:stdio only")),
    h("td", { class: "mono nowrap", title: t.module_sha256 }, short(t.module_sha256, 16) + "…"),
    h("td", { class: "mono nowrap" }, fmtTime(t.registered_at)),
    h("td", {}, t.description || "")));
  clear(main).append(h("div", { class: "stack" },
    h("div", { class: "title" }, h("h1", {}, "Tools"), h("span", { class: "muted" }, tools.length + " registered")),
    h("div", { class: "card" }, tools.length ? h("table", { id: "tools" },
      h("thead", {}, h("tr", {}, ["Name", "Source", "Capabilities (granted by)", "Module SHA-256", "Registered", "Description"].map((c) => h("th", {}, c)))),
      h("tbody", {}, rows)) : h("div", { class: "empty" }, "No tools registered."))));
}

// ---- policy ----

async function viewPolicy() {
  const p = await api("policy");
  clear(main).append(h("div", { class: "stack" },
    h("div", { class: "title" }, h("h1", {}, "Policy"), p.permissive ? h("span", { class: "badge suspended" }, "default (no policy file)") : h("span", { class: "badge success" }, "operator policy")),
    h("div", { class: "card" }, kv("Policy hash (in every envelope)", p.policy_hash, "mono"),
      (p.warnings || []).length ? h("div", { class: "section" }, h("div", { class: "k" }, "Warnings"), p.warnings.map((w) => h("p", { class: "error" }, w))) : null,
      h("div", { class: "section" }, h("div", { class: "k" }, "Policy"), json(p.policy)))));
}

takeFragmentToken();
start();
