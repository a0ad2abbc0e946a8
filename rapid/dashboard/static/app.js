// rapid's dashboard: plain JS, no build step. State comes from /_rapid/api/* and live
// events from /_rapid/api/events (Server-Sent Events); the page re-renders what changed.
"use strict";

const API = "/_rapid/api";
const MAX_ROWS = 200;
const MAX_LOG_LINES = 1000;
const state = { functions: [], invocations: [], logs: [], selected: null, minutes: {}, details: {} };

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return node;
}

const num = (v, digits = 0) => (v === null || v === undefined ? "" : Number(v).toFixed(digits));
const clock = (t) => new Date(t * 1000).toLocaleTimeString();

async function getJSON(path) {
  const r = await fetch(API + path);
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}

// -- functions and instances ------------------------------------------------------------

// Versions, aliases and layers come from the Lambda API itself, on this same port.
async function lambda(method, path, body) {
  const r = await fetch(path, { method, headers: { "Content-Type": "application/json" },
                                body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${path}: HTTP ${r.status} ${text}`);
  return text ? JSON.parse(text) : {};
}

async function refreshDetails() {
  await Promise.all(state.functions.map(async (f) => {
    const base = `/2015-03-31/functions/${encodeURIComponent(f.name)}`;
    try {
      const [versions, aliases, config] = await Promise.all([
        lambda("GET", `${base}/versions`), lambda("GET", `${base}/aliases`), lambda("GET", `${base}/configuration`)]);
      state.details[f.name] = {
        versions: versions.Versions.map((v) => v.Version),
        aliases: aliases.Aliases.map((a) => ({ name: a.Name, version: a.FunctionVersion,
                                              weights: (a.RoutingConfig || {}).AdditionalVersionWeights || {} })),
        layers: (config.Layers || []).map((l) => l.Arn.split(":").slice(-2).join(":")),
      };
    } catch (e) {
      state.details[f.name] = null;
    }
  }));
  renderFunctions();
}

function aliasText(a) {
  const extra = Object.entries(a.weights).map(([v, w]) => ` + ${v} at ${Math.round(w * 100)}%`).join("");
  return `${a.name} → ${a.version}${extra}`;
}

async function act(what, run) {
  try {
    await run();
    $("#invoke-result").textContent = `${what}: done`;
  } catch (e) {
    $("#invoke-result").textContent = `${what}: ${e.message}`;
  }
  await refreshHost();
  await refreshDetails();
}

function publish(name) {
  return act(`publish ${name}`, () => lambda("POST", `/2015-03-31/functions/${encodeURIComponent(name)}/versions`, {}));
}

function shiftWeight(name, alias) {
  const answer = prompt(`Extra version and weight for ${name}:${alias.name}, e.g. "2 0.1" (empty: none)`);
  if (answer === null) return;
  const [version, weight] = answer.trim().split(/\s+/);
  const weights = version ? { [version]: Number(weight) } : {};
  return act(`shift ${name}:${alias.name}`, () => lambda("PUT",
    `/2015-03-31/functions/${encodeURIComponent(name)}/aliases/${encodeURIComponent(alias.name)}`,
    { RoutingConfig: { AdditionalVersionWeights: weights } }));
}

function renderFunctions() {
  const body = $("#functions tbody");
  body.replaceChildren(...state.functions.map((f) => { const d = state.details[f.name]; return el("tr", { "data-function": f.name },
    el("td", {}, f.name), el("td", { class: "versions" }, d ? d.versions.join(", ") : f.version),
    el("td", { class: "aliases" }, ...(d ? d.aliases.map((a) => el("button", {
      class: "alias", "data-alias": a.name, title: "shift weight", onclick: () => shiftWeight(f.name, a) }, aliasText(a))) : [])),
    el("td", { class: "layers" }, d ? d.layers.join(", ") : ""), el("td", {}, f.runtime),
    el("td", { class: "num" }, `${f.memoryMB} MB`), el("td", { class: "num" }, `${f.timeout} s`),
    el("td", { class: "num" }, f.reservedConcurrency ?? "-"), el("td", { class: "num" }, f.provisionedConcurrency),
    el("td", { class: "num" }, f.instances.length), el("td", { class: "num" }, f.queued),
    el("td", {}, spark(f.name)),
    el("td", {}, el("button", { class: "publish", onclick: () => publish(f.name) }, "publish"),
      el("button", { class: "concurrency", onclick: () => setConcurrency(f.name) }, "concurrency")),
  ); }));
  const rows = [];
  for (const f of state.functions) {
    for (const i of f.instances) {
      rows.push(el("tr", { "data-instance": i.id },
        el("td", {}, f.name), el("td", {}, i.version), el("td", {}, el("code", {}, i.id.slice(0, 8))),
        el("td", { class: `state-${i.state}` }, i.state + (i.provisioned ? " (provisioned)" : "")),
        el("td", {}, i.uid ?? "daemon's"), el("td", { class: "num" }, num(i.memoryMB, 1)),
        el("td", { class: "num" }, num(i.peakMB, 1)), el("td", { class: "num" }, num(i.ageSeconds, 0)),
        el("td", { class: "num" }, i.invocations)));
    }
  }
  $("#instances tbody").replaceChildren(...rows);
  const select = $("#invoke-function");
  const chosen = select.value;
  select.replaceChildren(...state.functions.map((f) => el("option", { value: f.name }, f.name)));
  if (chosen) select.value = chosen;
}

function spark(name) {
  // Invocations (grey) and errors and throttles (red) per minute, the last hour.
  const canvas = el("canvas", { class: "spark", width: 120, height: 24, "data-spark": name });
  const minutes = state.minutes[name];
  if (!minutes) return canvas;
  const ctx = canvas.getContext("2d");
  const top = Math.max(1, ...minutes.map((m) => m[1] + m[3]));
  minutes.forEach(([, calls, errors, throttles], x) => {
    const h = (n) => Math.max(n ? 1 : 0, Math.round((n / top) * 22));
    ctx.fillStyle = "#9aa4b2";
    ctx.fillRect(x * 2, 24 - h(calls), 2, h(calls));
    ctx.fillStyle = "#b42318";
    ctx.fillRect(x * 2, 24 - h(errors + throttles), 2, h(errors + throttles));
  });
  return canvas;
}

async function refreshHost() {
  const host = await getJSON("/host");
  $("#isolation").textContent = host.isolation;
  state.functions = host.functions;
  await Promise.all(host.functions.map(async (f) => {
    state.minutes[f.name] = (await getJSON(`/minutes?function=${encodeURIComponent(f.name)}`)).minutes;
  }));
  renderFunctions();
}

async function refreshAsync() {
  const queues = await getJSON("/async");
  $("#async tbody").replaceChildren(...Object.entries(queues).map(([name, q]) => el("tr", {},
    el("td", {}, name), el("td", { class: "num" }, q.depth), el("td", { class: "num" }, q.running),
    el("td", { class: "num" }, num(q.oldestAgeSeconds, 1)))));
}

// Gradual deployments (rapid.deployments): newest first, each with its steps and outcome.
async function refreshDeployments() {
  const deployments = await getJSON("/deployments");
  $("#deployments tbody").replaceChildren(...deployments.slice(0, 50).map((d) => el("tr",
    { class: d.status === "Failed" || d.status === "Stopped" ? "error" : "" },
    el("td", {}, clock(d.created)), el("td", {}, el("code", {}, d.id)), el("td", {}, `${d.function}:${d.alias}`),
    el("td", {}, `${d.from_version ?? "-"} \u2192 ${d.to_version}`), el("td", {}, d.type),
    el("td", { class: "num" }, `${Math.round(d.weight * 100)} %`),
    el("td", { title: d.reason ?? "" }, d.reason ? `${d.status}: ${d.reason}` : d.status),
    el("td", {}, d.events.map((e) => e.event + (e.weight === null ? "" : ` ${Math.round(e.weight * 100)}%`)
      + (e.status === "Succeeded" ? "" : ` (${e.status})`)).join(" \u2192 ")))));
}

function setConcurrency(name) {
  const value = prompt(`Reserved concurrency for ${name} (empty: remove)`);
  if (value === null) return;
  const path = `/2017-10-31/functions/${encodeURIComponent(name)}/concurrency`;
  return act(`concurrency ${name}`, () => value === ""
    ? lambda("DELETE", path) : lambda("PUT", path, { ReservedConcurrentExecutions: Number(value) }));
}

// -- invocations and logs ---------------------------------------------------------------

function invocationRow(inv) {
  const failed = inv.status !== "success";
  return el("tr", {
    class: `clickable${failed ? " error" : ""}${inv.requestId === state.selected ? " selected" : ""}`,
    "data-request-id": inv.requestId, onclick: () => showRequest(inv.requestId),
  },
  el("td", {}, clock(inv.time)), el("td", {}, inv.function), el("td", {}, inv.version),
  el("td", {}, el("code", {}, inv.requestId)), el("td", { class: "num" }, num(inv.durationMs, 2)),
  el("td", { class: "num" }, inv.billedDurationMs), el("td", { class: "num" }, num(inv.initDurationMs, 2)),
  el("td", { class: "num" }, inv.maxMemoryUsedMB), el("td", {}, inv.status), el("td", {}, inv.errorType ?? ""));
}

function renderInvocations() {
  $("#invocations tbody").replaceChildren(...state.invocations.map(invocationRow));
}

async function showRequest(requestId) {
  state.selected = requestId;
  renderInvocations();
  const lines = await getJSON(`/logs?requestId=${encodeURIComponent(requestId)}`);
  $("#request-logs").hidden = false;
  $("#request-logs-id").textContent = requestId;
  $("#request-logs-lines").textContent = lines.map((l) => l.text).join("\n");
}

function renderLogs() {
  const filter = $("#log-filter").value;
  const shown = state.logs.filter((l) => !filter || l.text.includes(filter) || l.function.includes(filter));
  $("#logs").textContent = shown.map((l) => `${clock(l.time)} [${l.function}] ${l.text}`).join("\n");
  $("#logs").scrollTop = $("#logs").scrollHeight;
}

// -- live -------------------------------------------------------------------------------

let hostRefresh = null;
function soonRefreshHost() {
  if (hostRefresh === null) hostRefresh = setTimeout(() => { hostRefresh = null; refreshHost(); }, 500);
}

// The stream sends rows as arrays, in the order its first event ("fields") names.
const asObject = (names, row) => Object.fromEntries(names.map((n, i) => [n, row[i]]));

function connect() {
  const source = new EventSource(`${API}/events`);
  let fields = null;
  source.onopen = () => { $("#live").className = "badge on"; $("#live").textContent = "live"; };
  source.onerror = () => { $("#live").className = "badge off"; $("#live").textContent = "reconnecting"; };
  source.addEventListener("fields", (e) => { fields = JSON.parse(e.data); });
  source.addEventListener("batch", (e) => {
    const batch = JSON.parse(e.data);
    const seen = new Set(state.invocations.map((i) => i.seq));
    const fresh = batch.invocations.map((r) => asObject(fields.invocations, r)).filter((i) => !seen.has(i.seq));
    if (fresh.length) {
      state.invocations.unshift(...fresh.reverse());
      state.invocations.length = Math.min(state.invocations.length, MAX_ROWS);
      renderInvocations();
    }
    const last = state.logs.length ? state.logs[state.logs.length - 1].seq : -1;
    const lines = batch.logs.map((r) => asObject(fields.logs, r)).filter((l) => l.seq > last);
    if (lines.length) {
      state.logs.push(...lines);
      if (state.logs.length > MAX_LOG_LINES) state.logs.splice(0, state.logs.length - MAX_LOG_LINES);
      renderLogs();
    }
    if (fresh.length || batch.throttles.length) soonRefreshHost();
    if (batch.dropped) $("#live").title = `${batch.dropped} live events were too many to send; reload for all`;
  });
}

async function main() {
  $("#invoke-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const name = $("#invoke-function").value;
    const r = await fetch(`${API}/invoke/${encodeURIComponent(name)}`, { method: "POST", body: $("#invoke-payload").value });
    const out = await r.json();
    $("#invoke-result").textContent = out.error
      ? `${out.status} ${out.error}: ${out.message}`
      : `${out.status}${out.functionError ? " " + out.functionError : ""} (version ${out.executedVersion})\n${out.payload}\n\n${out.log}`;
  });
  $("#log-filter").addEventListener("input", renderLogs);
  state.invocations = await getJSON(`/invocations?limit=${MAX_ROWS}`);
  state.logs = await getJSON(`/logs?limit=${MAX_LOG_LINES}`);
  renderInvocations();
  renderLogs();
  await Promise.all([refreshHost(), refreshAsync(), refreshDeployments().catch(() => {})]);
  await refreshDetails();
  connect();
  setInterval(() => { refreshHost(); refreshAsync(); refreshDeployments().catch(() => {}); }, 2000);
  setInterval(refreshDetails, 10000);
  document.body.dataset.ready = "true";
}

main();
