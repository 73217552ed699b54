// The test-run page: plain JS, no build step, no inline script (the CSP forbids it).
//
// Live events come from GET /api/test-runs/<id>/events, read with fetch() streaming rather
// than EventSource: EventSource cannot send an Authorization header, and the other way round
// it (a token in the URL) would put the token in access logs and browser history. fetch()
// sends the bearer header, and this file resumes a dropped stream with Last-Event-ID itself.
"use strict";

const TOKEN_KEY = "testruns.api-token";
const RECENT = 5;
const cards = new Map(); // workflow id -> card elements and state

// -- helpers ------------------------------------------------------------------------------------

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("data-") || key.startsWith("aria-") || key === "for") {
      node.setAttribute(key, value);
    } else node[key] = value;
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

function authHeaders() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: `Bearer ${token}` } : {};
}

async function api(method, path, body) {
  const headers = authHeaders();
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  let data = null;
  try { data = await resp.json(); } catch { data = null; }
  if (resp.status === 401) askForToken(sessionStorage.getItem(TOKEN_KEY) ? "That token was refused." : "");
  return { status: resp.status, data, headers: resp.headers };
}

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const when = (iso) => (iso ? new Date(iso).toLocaleTimeString() : "");
const runLink = (runId) => el("a", { href: `#run/${runId}`, text: runId });

function say(card, kind, ...parts) {
  card.message.dataset.kind = kind;
  card.message.replaceChildren(...parts);
}

// -- the token ----------------------------------------------------------------------------------

function askForToken(message) {
  document.getElementById("token").hidden = false;
  document.getElementById("workflows").hidden = true;
  document.getElementById("token-message").textContent = message || "";
  document.getElementById("token-input").focus();
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = document.getElementById("token-input").value.trim();
    if (!value) return;
    sessionStorage.setItem(TOKEN_KEY, value);
    document.getElementById("token-input").value = "";
    load();
  });
  window.addEventListener("hashchange", openFromHash);
  load();
});

// -- workflows ----------------------------------------------------------------------------------

async function load() {
  const main = document.getElementById("workflows");
  const { status, data } = await api("GET", "/api/workflows");
  if (status === 401) return;
  if (status !== 200) {
    document.getElementById("notice").textContent =
      status === 503 ? "The queue is unavailable: Redis cannot be reached. Reload to try again."
                     : `Could not list the workflows (${status}).`;
    return;
  }
  document.getElementById("token").hidden = true;
  main.hidden = false;
  main.replaceChildren();
  cards.clear();
  for (const workflow of data.workflows) main.append(buildCard(workflow));
  main.setAttribute("aria-busy", "false");
  for (const workflow of data.workflows) {
    refreshWorkflow(workflow.id);
    refreshRecent(workflow.id);
  }
  openFromHash();
}

function buildCard(workflow) {
  const id = workflow.id;
  const inputId = `input-${id}`;
  const card = {
    id,
    state: el("p", { class: "state", text: "State: …" }),
    input: el("textarea", { id: inputId, spellcheck: false, placeholder: '{}  (optional)' }),
    inputBox: el("div", { class: "input" }),
    fields: null, // name -> {input, error, type}, once the workflow's schema asks for a form
    message: el("p", { class: "message", role: "status", "aria-live": "polite" }),
    pending: el("p", { class: "pending", hidden: true }),
    button: null,
    busy: false,
    poll: null,
    run: el("div", { class: "run", hidden: true }),
    recent: el("ol"),
    watching: null,
  };
  card.inputBox.append(el("label", { for: inputId, text: `Input for ${id} (JSON object, optional)` }),
                       card.input);
  const button = el("button", { type: "button", class: "trigger", text: "Test run",
                                "aria-label": `Test run ${id}` });
  button.addEventListener("click", () => trigger(card, null));
  card.button = button;
  const section = el("section", { class: "workflow", "data-workflow": id,
                                  "aria-labelledby": `title-${id}` },
    el("h2", { id: `title-${id}`, text: id }),
    el("p", { class: "description", text: workflow.description || "" }),
    card.state,
    card.pending,
    card.inputBox,
    button,
    card.message,
    card.run,
    el("details", { class: "recent" }, el("summary", { text: `Recent runs of ${id}` }), card.recent),
  );
  cards.set(id, card);
  return section;
}

// While a workflow's slot is held, its card reads it again every BUSY_POLL_MS: a slot passes
// when the run ends, but also later (a cancelled run's slot waits for its body to stop) and
// from elsewhere (another tab, a pending run promoted), which no event of the watched run says.
const BUSY_POLL_MS = 1000;

async function refreshWorkflow(id) {
  const card = cards.get(id);
  const { status, data } = await api("GET", `/api/workflows/${encodeURIComponent(id)}`);
  if (status !== 200 || !card) return;
  if (card.fields === null && formable(data.input_schema)) buildForm(card, data.input_schema);
  const active = data.active_run;
  const pending = data.pending_run;
  card.busy = Boolean(active || pending);
  if (!active) {
    card.state.replaceChildren("State: idle");
  } else if (active.status === "running" || active.status === "queued") {
    const since = active.started_at || active.created_at;
    card.state.replaceChildren(`State: ${active.status} since ${when(since)} — `, runLink(active.run_id));
  } else {  // ended over its head (cancelled, replaced): the slot waits for its body to stop
    card.state.replaceChildren(`State: ${active.status}, stopping — `, runLink(active.run_id));
  }
  card.pending.replaceChildren(...(pending
    ? ["Will run next: ", runLink(pending.run_id), ` (pending since ${when(pending.created_at)})`]
    : []));
  card.pending.hidden = !pending;
  card.button.textContent = card.busy ? "Queue test run" : "Test run";
  clearTimeout(card.poll);
  if (card.busy) card.poll = setTimeout(() => refreshWorkflow(id), BUSY_POLL_MS);
}

async function refreshRecent(id) {
  const card = cards.get(id);
  const { status, data } = await api("GET",
    `/api/workflows/${encodeURIComponent(id)}/test-runs?limit=${RECENT}`);
  if (status !== 200 || !card) return;
  card.recent.replaceChildren(...data.runs.map((run) =>
    el("li", {}, runLink(run.run_id), ` ${run.status}, ${when(run.created_at)}`)));
  if (!data.runs.length) card.recent.append(el("li", { text: "none yet" }));
}

// -- the input form, built from the workflow's input schema ---------------------------------------
// A schema whose properties are all numbers, integers, strings or booleans becomes one field
// each, filled with its default; any other schema (or none) keeps the JSON box. A number is
// typed as text, so whatever a person types is sent and the service's own check (422
// invalid_input, a JSON Pointer per problem) is shown next to its field: nothing is started.

const SIMPLE = new Set(["number", "integer", "string", "boolean"]);

function formable(schema) {
  if (!schema || schema.type !== "object" || !schema.properties) return false;
  const props = Object.values(schema.properties);
  return props.length > 0 && props.every((p) => SIMPLE.has(p.type));
}

function buildForm(card, schema) {
  const required = new Set(schema.required || []);
  const fieldset = el("fieldset", { class: "fields" }, el("legend", { text: `Input for ${card.id}` }));
  card.fields = {};
  for (const [name, prop] of Object.entries(schema.properties)) {
    const fieldId = `input-${card.id}-${name}`;
    const error = el("p", { class: "field-error", id: `${fieldId}-error`, role: "alert" });
    const input = prop.type === "boolean"
      ? el("input", { id: fieldId, type: "checkbox", checked: prop.default === true })
      : el("input", { id: fieldId, type: "text", spellcheck: false,
                      inputMode: prop.type === "string" ? "text" : "decimal",
                      value: prop.default === undefined ? "" : String(prop.default) });
    input.setAttribute("aria-label", `${name} for ${card.id}`);
    input.setAttribute("aria-describedby", error.id);
    const hint = [prop.description, required.has(name) ? "required" : ""].filter(Boolean).join("; ");
    fieldset.append(el("div", { class: "field" },
      el("label", { for: fieldId, text: name }), input,
      hint ? el("small", { text: hint }) : null, error));
    card.fields[name] = { input, error, type: prop.type };
  }
  card.inputBox.replaceChildren(fieldset);
}

function clearFieldErrors(card) {
  for (const field of Object.values(card.fields || {})) {
    field.error.textContent = "";
    field.input.removeAttribute("aria-invalid");
  }
}

function readForm(card) {
  const input = {};
  for (const [name, field] of Object.entries(card.fields)) {
    if (field.type === "boolean") { input[name] = field.input.checked; continue; }
    const raw = field.input.value.trim();
    if (raw === "") continue; // the workflow's default applies
    const number = Number(raw);
    input[name] = field.type !== "string" && raw !== "" && Number.isFinite(number) ? number : raw;
  }
  return { input };
}

// 422 invalid_input: each problem next to its field; one the form has no field for, in the message
function showInputErrors(card, data) {
  const elsewhere = [];
  for (const problem of data.errors || []) {
    const name = (problem.pointer || "").split("/")[1];
    const field = card.fields && name !== undefined ? card.fields[name.replace(/~1/g, "/").replace(/~0/g, "~")] : null;
    if (field) {
      field.error.textContent = problem.message;
      field.input.setAttribute("aria-invalid", "true");
    } else {
      elsewhere.push(`${problem.pointer || "input"}: ${problem.message}`);
    }
  }
  say(card, "error", "Not started: the input does not fit this workflow." +
      (elsewhere.length ? ` ${elsewhere.join("; ")}` : ""));
  const first = Object.values(card.fields || {}).find((f) => f.error.textContent);
  if (first) first.input.focus();
}

// -- triggering ---------------------------------------------------------------------------------

function readInput(card) {
  if (card.fields) return readForm(card);
  const text = card.input.value.trim();
  if (!text) return { input: {} };
  let value;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { error: `Input is not valid JSON: ${error.message}` };
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return { error: 'Input must be a JSON object, e.g. {"seconds": 2}' };
  }
  return { input: value };
}

async function trigger(card, input) {
  clearFieldErrors(card);
  if (input === null) {
    const read = readInput(card);
    if (read.error) {
      say(card, "error", read.error);
      card.input.focus();
      return;
    }
    input = read.input;
  }
  // while a run is in progress, Test run queues: the newest click waits and runs next
  const queue = card.busy;
  say(card, "info", queue ? `Queueing a test run of ${card.id}…` : `Starting a test run of ${card.id}…`);
  let answer;
  try {
    answer = await api("POST", `/api/workflows/${encodeURIComponent(card.id)}/test-runs` +
                       (queue ? "?on_conflict=queue" : ""), { input });
  } catch (error) {
    say(card, "error", `The service could not be reached: ${error.message}`);
    return;
  }
  const { status, data, headers } = answer;
  if ((status === 202 || status === 200) && data.status === "pending") {
    say(card, "ok", `Test run ${data.run_id} will run next: it starts as soon as the run in ` +
        "progress has ended (a newer click takes its place).");
    watch(card, data.run_id);
  } else if (status === 202 || status === 200) {
    say(card, "ok", `Test run ${data.run_id} started.`);
    watch(card, data.run_id);
  } else if (status === 422 && data && data.error === "invalid_input") {
    showInputErrors(card, data);
  } else if (status === 409 && data && data.error === "test_run_in_progress") {
    say(card, "error", `A test run of ${card.id} is already in progress: `, runLink(data.run_id));
  } else if (status === 503) {
    say(card, "error", `The queue is unavailable (${(data && data.what) || "unreachable"}): ` +
        "nothing was started. Try again shortly.");
  } else if (status === 429) {
    say(card, "error", `Too many test runs: try again in ${headers.get("Retry-After") || "a few"} s.`);
  } else if (status !== 401) {
    say(card, "error", `Not started (${status}): ${(data && data.message) || "unexpected answer"}`);
  }
  refreshWorkflow(card.id);
  refreshRecent(card.id);
}

// -- one run, live ------------------------------------------------------------------------------

function openFromHash() {
  const match = /^#run\/(.+)$/.exec(location.hash);
  if (!match) return;
  const runId = decodeURIComponent(match[1]);
  const workflowId = runId.replace(/-[0-9a-f]{32}$/, "");
  const card = cards.get(workflowId);
  if (card) watch(card, runId);
}

function renderRun(card, run) {
  const view = card.view;
  view.run = run;
  setStatus(card, run.status);
  view.logs.replaceChildren(...(run.logs || []).map((line) => el("li", { text: line })));
  view.outcome.replaceChildren();
}

function setStatus(card, status) {
  card.view.status.textContent = status;
  card.view.status.dataset.status = status;
}

function renderEnd(card, run) {
  const view = card.view;
  if (run && run.status) {
    renderRun(card, run);
    if (run.error_type || run.error) {
      view.outcome.append(el("p", { text: `Error (${run.error_type || "error"}): ${run.error || ""}` }));
    }
    if (run.result !== null && run.result !== undefined) {
      view.outcome.append(el("p", { text: "Result:" }),
                          el("pre", { class: "result", text: JSON.stringify(run.result, null, 2) }));
    }
  }
  view.cancel.hidden = true;
  view.again.hidden = false;
}

function buildRunView(card, runId) {
  const status = el("strong", { text: "…" });
  const cancel = el("button", { type: "button", class: "cancel", text: "Cancel",
                                "aria-label": `Cancel ${runId}` });
  const again = el("button", { type: "button", class: "again", text: "Run again",
                               "aria-label": `Run again ${card.id}`, hidden: true });
  const view = {
    runId, status, cancel, again, run: null,
    logs: el("ol", { class: "logs", "aria-label": `Log of ${runId}` }),
    outcome: el("div", { class: "outcome", "aria-live": "polite" }),
  };
  cancel.addEventListener("click", () => cancelRun(card, runId));
  again.addEventListener("click", () => trigger(card, (view.run && view.run.input) || {}));
  card.run.replaceChildren(
    el("h3", {}, "Run ", runLink(runId)),
    el("p", { class: "status", role: "status" }, "Status: ", status),
    cancel, again,
    el("h4", { text: "Log" }), view.logs, view.outcome);
  card.run.hidden = false;
  card.view = view;
}

async function cancelRun(card, runId) {
  const { status, data } = await api("POST", `/api/test-runs/${encodeURIComponent(runId)}/cancel`);
  if (status === 202) say(card, "ok", `Test run ${runId} cancelled.`);
  else if (status === 409) say(card, "info", `Test run ${runId} had already ended: ${data.status}.`);
  else if (status === 503) say(card, "error", "The queue is unavailable: the run was not cancelled.");
  else if (status !== 401) say(card, "error", `Cancel failed (${status}): ${(data && data.message) || ""}`);
}

function handleEvent(card, event) {
  const view = card.view;
  if (event.event === "run") {
    renderRun(card, event.data);
  } else if (event.event === "status") {
    setStatus(card, event.data.status);
    refreshWorkflow(card.id);
  } else if (event.event === "log") {
    view.logs.append(el("li", { text: event.data.line }));
    view.logs.scrollTop = view.logs.scrollHeight;
  } else if (event.event === "end") {
    renderEnd(card, event.data);
    refreshWorkflow(card.id);
    refreshRecent(card.id);
    return true;
  }
  return false;
}

function parseFrame(frame) {
  const event = { event: "message", id: null, data: [] };
  for (const line of frame.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const key = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (key === "event") event.event = value;
    else if (key === "id") event.id = value;
    else if (key === "data") event.data.push(value);
  }
  if (!event.data.length) return null;
  event.data = JSON.parse(event.data.join("\n"));
  return event;
}

async function watch(card, runId) {
  if (card.watching) card.watching.abort();
  const control = new AbortController();
  card.watching = control;
  buildRunView(card, runId);
  let lastId = null;
  for (let attempt = 0; attempt < 30 && !control.signal.aborted; attempt++) {
    const headers = authHeaders();
    if (lastId) headers["Last-Event-ID"] = lastId;
    let resp;
    try {
      resp = await fetch(`/api/test-runs/${encodeURIComponent(runId)}/events`,
                         { headers, signal: control.signal });
    } catch {
      if (control.signal.aborted) return;
      await delay(1000);
      continue;
    }
    if (resp.status === 401) { askForToken("That token was refused."); return; }
    if (resp.status === 404) { say(card, "error", `No test run ${runId}.`); return; }
    if (resp.status === 403) { say(card, "error", "This token may not watch runs (no read scope)."); return; }
    if (!resp.ok) {
      await delay(1000 * Number(resp.headers.get("Retry-After") || 2));
      continue;
    }
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n/g, "\n");
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const event = parseFrame(buffer.slice(0, cut));
          buffer = buffer.slice(cut + 2);
          if (!event) continue;
          if (event.id) lastId = event.id;
          if (handleEvent(card, event)) {
            control.abort();
            return;
          }
        }
      }
    } catch {
      if (control.signal.aborted) return;
    }
    await delay(1000); // the stream broke off before its end: resume after lastId
  }
}
