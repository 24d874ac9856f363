// The console: every request goes to the bridge's own API (Mender's
// iot-manager routes) with the signed-in user's Mender token, so the page
// can do exactly what the API lets that user do, and says so in sentences.
"use strict";

const API = "/api/management/v1/iot-manager";
const TOKEN_KEY = "mender-token";
// What AWS IoT Core allows a shadow (see bridge::shadow): 8 KiB of desired
// and reported together, 6 levels inside a section.
const MAX_DOCUMENT_BYTES = 8 * 1024;
const MAX_DEPTH = 6;
const RUN_POLL_MS = 1000;

const $ = (id) => document.getElementById(id);

let session = null; // { token, admin }
let integration = null;
let shadow = null; // { deviceId, integrationId, etag, reported }
let runTimer = null;

// ------------------------------------------------------------ the API

class ApiFailure extends Error {
  constructor(status, body, retryAfter) {
    super(sentence(status, body, retryAfter));
    this.status = status;
    this.fields = (body && Array.isArray(body.fields)) ? body.fields : [];
  }
}

/** Every status the API can answer, as a sentence for people. */
function sentence(status, body, retryAfter) {
  const said = body && typeof body.error === "string" ? body.error : "";
  const because = said ? `: ${said}.` : ".";
  if (status === 0) return "The bridge could not be reached. Check your connection, then try again.";
  if (status === 401) return "Mender did not accept your token; it may have expired or been revoked. Sign in again with a fresh one.";
  if (status === 403) return `Your Mender user may not do this${because}`;
  if (status === 404) return `Not found${because}`;
  if (status === 409) return `That clashes with what is already there${because}`;
  if (status === 412) return "Someone else changed this device's desired state since you loaded it. Your edit is kept below: reload to see their change, then make yours again.";
  if (status === 413) return `That is too large${because}`;
  if (status === 422) return `AWS refused the credentials${because}`;
  if (status === 429) return `Too many requests right now; try again in ${retryAfter || "a few"} seconds.`;
  if (status >= 500) return `The bridge, or a service it relies on, is not available right now${because} Try again shortly.`;
  const fields = body && Array.isArray(body.fields) ? body.fields : [];
  if (fields.length) {
    const each = fields.map(({ field, problem }) => `${fieldLabel(field)} ${problem}`);
    return `Please correct ${fields.length === 1 ? "this field" : "these fields"}: ${each.join("; ")}.`;
  }
  return `The bridge refused the request${because}`;
}

async function call(method, path, { body, headers = {} } = {}) {
  const init = { method, headers: { Authorization: `Bearer ${session.token}`, ...headers } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["content-type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(API + path, init);
  } catch {
    throw new ApiFailure(0, null);
  }
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!response.ok) {
    throw new ApiFailure(response.status, json, response.headers.get("retry-after"));
  }
  return { status: response.status, body: json, etag: response.headers.get("etag") };
}

// ------------------------------------------------------------ page helpers

function notify(text, ok = false) {
  const notice = $("notice");
  notice.textContent = text;
  notice.classList.toggle("ok", ok);
  notice.hidden = !text;
}

/** Runs an action from a button: busy while it runs, its failure shown. */
async function act(button, busyLabel, action) {
  const label = button.textContent;
  button.disabled = true;
  button.textContent = busyLabel;
  try {
    await action();
  } catch (error) {
    if (error instanceof ApiFailure && error.status === 401) signOut();
    notify(error.message);
  } finally {
    button.disabled = false;
    button.textContent = label;
  }
}

function clear(element) {
  while (element.firstChild) element.removeChild(element.firstChild);
}

function add(parent, tag, text, className) {
  const element = document.createElement(tag);
  if (text !== undefined) element.textContent = text;
  if (className) element.className = className;
  parent.appendChild(element);
  return element;
}

function when(rfc3339) {
  return rfc3339 ? new Date(rfc3339).toLocaleString() : "–";
}

// ------------------------------------------------------------ signing in

async function signIn(token) {
  session = { token, admin: false };
  let refusal = "";
  try {
    const listed = await call("GET", "/integrations");
    session.admin = true;
    integration = listed.body[0] || null;
  } catch (error) {
    if (!(error instanceof ApiFailure) || error.status !== 403) {
      session = null;
      throw error;
    }
    refusal = error.message;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  $("sign-in").hidden = true;
  $("sign-out").hidden = false;
  $("device").hidden = false;
  $("who").hidden = false;
  $("who").textContent = session.admin
    ? "Signed in as an admin of the organization"
    : "Signed in (not an admin: you can read device shadows)";
  $("admin-refused").hidden = session.admin;
  $("admin-refused-text").textContent = `${refusal} The integration, its runs and its events are for admins of the organization (Mender's RBAC_ROLE_PERMIT_ALL role).`;
  notify("");
  if (session.admin) await showAdmin();
  $("device-id").focus();
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  session = null;
  integration = null;
  shadow = null;
  clearTimeout(runTimer);
  for (const id of ["device", "shadow", "admin-refused", "integration", "fleet", "events", "who", "sign-out"]) {
    $(id).hidden = true;
  }
  $("sign-in").hidden = false;
  $("token").value = "";
  $("token").focus();
}

// ------------------------------------------------------------ the integration

async function showAdmin() {
  renderIntegration();
  if (integration) {
    await Promise.all([loadLatestRun(), loadEvents()]);
  }
}

function renderIntegration() {
  $("integration").hidden = false;
  const set = integration !== null;
  $("integration-facts").hidden = !set;
  $("integration-actions").hidden = !set;
  $("remove-confirm").hidden = true;
  $("fleet").hidden = !set;
  $("events").hidden = !set;
  showCredentialsForm(!set);
  if (!set) return;
  const facts = $("integration-facts");
  clear(facts);
  const aws = integration.credentials.aws;
  for (const [term, value] of [
    ["Integration id", integration.id],
    ["Description", integration.description || "–"],
    ["Region", aws.region],
    ["Device policy", aws.device_policy_name],
    ["AWS credentials", aws.role_arn ? `role ${aws.role_arn}` : `access key ${aws.access_key_id}`],
    ["Webhook URL (in Mender)", integration.webhook_url],
    ["Bridge's Mender token expires", integration.mender_token_expires_at
      ? `${when(integration.mender_token_expires_at)} (renewal: ${integration.mender_token_renewal})`
      : "never"],
    ["Set up", when(integration.created_at)],
  ]) {
    add(facts, "dt", term);
    add(facts, "dd", value);
  }
}

function showCredentialsForm(visible) {
  const form = $("credentials-form");
  form.hidden = !visible;
  clear($("credentials-problems"));
  if (!visible) return;
  const setup = integration === null;
  $("credentials-title").textContent = setup ? "Set up the integration" : "Change credentials";
  $("setup-only").hidden = !setup;
  $("credentials-save").textContent = setup ? "Set up" : "Save credentials";
  $("credentials-cancel").hidden = setup;
  if (!setup) {
    const aws = integration.credentials.aws;
    $("region").value = aws.region;
    $("device_policy_name").value = aws.device_policy_name;
  }
}

function credentialKind() {
  return document.querySelector("input[name=credential-kind]:checked").value;
}

async function onCredentialKind() {
  const role = credentialKind() === "role";
  $("keys-fields").hidden = role;
  $("role-fields").hidden = !role;
  if (role && !$("external-id-hint").textContent) {
    try {
      const trust = (await call("GET", "/external-id")).body;
      $("external-id-hint").textContent = `The role must trust the bridge with external id ${trust.external_id} and session name ${trust.role_session_name}.`;
    } catch (error) {
      $("external-id-hint").textContent = error.message;
    }
  }
}

/** The API's field names, as the form labels them. */
function fieldLabel(field) {
  const name = field.split(".").pop();
  const label = document.querySelector(`label[for="${CSS.escape(name)}"]`);
  return label ? label.textContent : field;
}

function showProblems(error) {
  const list = $("credentials-problems");
  clear(list);
  for (const input of document.querySelectorAll("#credentials-form [aria-invalid]")) {
    input.removeAttribute("aria-invalid");
  }
  for (const { field, problem } of error.fields) {
    add(list, "li", `${fieldLabel(field)}: ${problem}`);
    const input = $(field.split(".").pop());
    if (input) input.setAttribute("aria-invalid", "true");
  }
}

async function saveCredentials(event) {
  event.preventDefault();
  const aws = { region: $("region").value.trim(), device_policy_name: $("device_policy_name").value.trim() };
  if (credentialKind() === "role") {
    aws.role_arn = $("role_arn").value.trim();
  } else {
    aws.access_key_id = $("access_key_id").value.trim();
    aws.secret_access_key = $("secret_access_key").value;
  }
  const credentials = { type: "aws", aws };
  const setup = integration === null;
  await act($("credentials-save"), setup ? "Setting up…" : "Saving…", async () => {
    try {
      if (setup) {
        const body = { provider: "iot-core", credentials };
        const description = $("description").value.trim();
        if (description) body.description = description;
        integration = (await call("POST", "/integrations", { body })).body;
      } else {
        await call("PUT", `/integrations/${integration.id}/credentials`, { body: credentials });
        integration = (await call("GET", `/integrations/${integration.id}`)).body;
      }
    } catch (error) {
      if (error instanceof ApiFailure) showProblems(error);
      throw error;
    }
    $("secret_access_key").value = "";
    notify(setup
      ? "The integration is set up: Mender now sends the organization's device events to the bridge."
      : "The credentials are saved.", true);
    await showAdmin();
  });
}

async function removeIntegration() {
  await act($("remove-yes"), "Removing…", async () => {
    await call("DELETE", `/integrations/${integration.id}`);
    integration = null;
    clearTimeout(runTimer);
    notify("The integration is removed. Things and certificates stay in AWS.", true);
    renderIntegration();
  });
}

// ------------------------------------------------------------ runs and counts

async function loadLatestRun() {
  try {
    renderRun((await call("GET", `/integrations/${integration.id}/reconcile/latest`)).body);
  } catch (error) {
    if (!(error instanceof ApiFailure) || error.status !== 404) throw error;
    $("run").hidden = true;
    $("counts-about").textContent = "No sync run yet: start one to count the organization's devices.";
  }
}

function renderRun(run) {
  const running = run.state === "running";
  const census = run.devices || {};
  for (const state of ["provisioned", "disabled", "conflict", "failed"]) {
    $(`count-${state}`).textContent = census[state] ?? "–";
  }
  $("counts-about").textContent = running
    ? "Counted so far by the sync run under way."
    : `As the sync run that ended ${when(run.ended_at)} left them.`;
  $("run").hidden = false;
  const seen = run.counts.seen;
  const progress = $("run-progress");
  if (run.total) {
    progress.max = run.total;
    progress.value = running ? Math.min(seen, run.total) : run.total;
  } else if (running) {
    progress.removeAttribute("value");
  } else {
    progress.max = 1;
    progress.value = 1;
  }
  const of = run.total ? ` of ${run.total}` : "";
  const states = { running: "running", done: "done", failed: "failed", held: "held, waiting for you" };
  $("run-label").textContent = `Sync run ${run.run_id}: ${states[run.state] || run.state}, ${seen}${of} devices`;
  const c = run.counts;
  $("run-summary").textContent = `Provisioned ${c.provisioned}, repaired ${c.repaired}, disabled ${c.disabled}, removed ${c.removed}, in sync ${c.in_sync}, conflicts ${c.conflicts}, failed ${c.failed}.`
    + (run.held ? ` Held: ${run.held}` : "");
  $("run-confirm").hidden = run.state !== "held";
  $("run-confirm").dataset.runId = run.run_id;
  const failures = $("run-failures");
  clear(failures);
  for (const failure of run.failures) {
    add(failures, "li", failure.device_id ? `${failure.device_id}: ${failure.reason}` : failure.reason);
  }
  $("run-start").hidden = running;
  clearTimeout(runTimer);
  if (running) runTimer = setTimeout(() => follow(run.run_id), RUN_POLL_MS);
  else loadEvents().catch((error) => notify(error.message));
}

async function follow(runId) {
  if (!integration) return;
  try {
    renderRun((await call("GET", `/integrations/${integration.id}/reconcile/${runId}`)).body);
  } catch (error) {
    notify(error.message);
    if (error instanceof ApiFailure && error.status === 401) {
      signOut();
    } else if (!(error instanceof ApiFailure) || ![403, 404].includes(error.status)) {
      // An outage or throttling: try again, more slowly. A refusal stands.
      runTimer = setTimeout(() => follow(runId), RUN_POLL_MS * 5);
    }
  }
}

async function startRun(body) {
  const started = await call("POST", `/integrations/${integration.id}/reconcile`, { body });
  notify("");
  await follow(started.body.run_id);
}

// ------------------------------------------------------------ events

async function loadEvents() {
  if (!integration) return;
  const query = new URLSearchParams({ per_page: "50", integration_id: integration.id });
  const events = (await call("GET", `/events?${query}`)).body;
  const failuresOnly = $("failures-only").checked;
  const rows = $("event-rows");
  clear(rows);
  const shown = events.filter((event) => !failuresOnly || event.outcome === "failed");
  for (const event of shown) {
    const row = add(rows, "tr", undefined, event.outcome === "failed" ? "failed" : "");
    add(row, "td", when(event.time));
    const device = add(add(row, "td"), "button", event.data.id, "link");
    device.type = "button";
    device.addEventListener("click", () => {
      $("device-id").value = event.data.id;
      lookUp().catch((error) => notify(error.message));
      $("device-id").focus();
    });
    add(row, "td", event.source === "webhook" ? event.outcome : `${event.outcome} (${event.source})`);
    add(row, "td", event.reason || "");
  }
  $("events-empty").hidden = shown.length > 0;
}

// ------------------------------------------------------------ a device's shadow

async function lookUp() {
  const deviceId = $("device-id").value.trim();
  const path = `/devices/${encodeURIComponent(deviceId)}/state`;
  const states = (await call("GET", path)).body;
  const integrationId = Object.keys(states)[0];
  const one = await call("GET", `${path}/${encodeURIComponent(integrationId)}`);
  shadow = { deviceId, integrationId, etag: one.etag, reported: one.body.reported || {} };
  renderShadow(one.body);
}

function renderShadow(state) {
  $("shadow").hidden = false;
  $("shadow-about").textContent = `Device ${shadow.deviceId}, version ${shadow.etag ? shadow.etag.replaceAll("\"", "") : "none yet"}.`;
  $("reported").textContent = JSON.stringify(state.reported || {}, null, 2);
  const desired = $("desired");
  desired.value = JSON.stringify(state.desired || {}, null, 2);
  desired.readOnly = !session.admin;
  $("desired-save").hidden = !session.admin;
  checkDesired();
}

function depth(value) {
  if (value === null || typeof value !== "object") return 0;
  const inner = Object.values(value).map(depth);
  return 1 + (inner.length ? Math.max(...inner) : 0);
}

/** What the API would refuse, said before sending; the desired state, or null. */
function checkDesired() {
  const check = $("desired-check");
  const save = $("desired-save");
  if (!session.admin) {
    check.textContent = "Editing the desired state needs an admin of the organization (Mender's RBAC_ROLE_PERMIT_ALL role).";
    return null;
  }
  let desired;
  try {
    desired = JSON.parse($("desired").value);
  } catch (error) {
    check.textContent = `Not valid JSON: ${error.message}`;
    save.disabled = true;
    return null;
  }
  let problem = "";
  if (desired === null || typeof desired !== "object" || Array.isArray(desired)) {
    problem = "The desired state must be a JSON object, like {\"mode\": \"eco\"}.";
  } else if (depth(desired) > MAX_DEPTH) {
    problem = `It nests ${depth(desired)} levels deep; AWS IoT Core allows ${MAX_DEPTH}.`;
  }
  const size = new TextEncoder().encode(JSON.stringify({ desired, reported: shadow.reported })).length;
  const budget = `${size} of ${MAX_DOCUMENT_BYTES} bytes (desired and reported together, as AWS IoT Core counts them).`;
  if (!problem && size > MAX_DOCUMENT_BYTES) problem = `Too large: ${budget}`;
  check.textContent = problem || budget;
  save.disabled = Boolean(problem);
  return problem ? null : desired;
}

async function saveDesired(event) {
  event.preventDefault();
  const desired = checkDesired();
  if (desired === null) return;
  await act($("desired-save"), "Saving…", async () => {
    const path = `/devices/${encodeURIComponent(shadow.deviceId)}/state/${encodeURIComponent(shadow.integrationId)}`;
    const headers = shadow.etag ? { "If-Match": shadow.etag } : {};
    const saved = await call("PUT", path, { body: { desired }, headers });
    shadow.etag = saved.etag;
    shadow.reported = saved.body.reported || {};
    renderShadow(saved.body);
    notify("The desired state is saved; the device gets it when it next connects.", true);
  });
  checkDesired();
}

// ------------------------------------------------------------ wiring

document.addEventListener("DOMContentLoaded", () => {
  $("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const button = event.submitter || $("sign-in-form").querySelector("button");
    act(button, "Signing in…", () => signIn($("token").value.trim()));
  });
  $("sign-out").addEventListener("click", () => {
    signOut();
    notify("Signed out: the token is gone from this tab.", true);
  });
  $("device-form").addEventListener("submit", (event) => {
    event.preventDefault();
    act(event.submitter || $("device-form").querySelector("button"), "Looking up…", lookUp);
  });
  $("desired").addEventListener("input", checkDesired);
  $("desired-form").addEventListener("submit", saveDesired);
  $("desired-reload").addEventListener("click", () => act($("desired-reload"), "Reloading…", async () => {
    await lookUp();
    notify("");
  }));
  for (const radio of document.querySelectorAll("input[name=credential-kind]")) {
    radio.addEventListener("change", () => onCredentialKind());
  }
  $("credentials-form").addEventListener("submit", saveCredentials);
  $("show-credentials").addEventListener("click", () => {
    showCredentialsForm(true);
    $("region").focus();
  });
  $("credentials-cancel").addEventListener("click", () => showCredentialsForm(false));
  $("remove").addEventListener("click", () => {
    $("remove-confirm").hidden = false;
    $("remove-no").focus();
  });
  $("remove-no").addEventListener("click", () => {
    $("remove-confirm").hidden = true;
    $("remove").focus();
  });
  $("remove-yes").addEventListener("click", removeIntegration);
  $("run-start").addEventListener("click", () => act($("run-start"), "Starting…", () => startRun(undefined)));
  $("run-confirm").addEventListener("click", () => act($("run-confirm"), "Starting…",
    () => startRun({ confirm: $("run-confirm").dataset.runId })));
  $("events-reload").addEventListener("click", () => act($("events-reload"), "Reloading…", loadEvents));
  $("failures-only").addEventListener("change", () => loadEvents().catch((error) => notify(error.message)));

  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) {
    signIn(token).catch((error) => {
      signOut();
      notify(error.message);
    });
  } else {
    $("token").focus();
  }
});
