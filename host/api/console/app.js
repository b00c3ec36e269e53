// The Reyna console: sign-in, navigation, the hash router and what every
// page shares (the API client, element building, the live event stream).
// No framework and no build step: the host serves these files as they are.
// Text from the API always goes into the page as text nodes, never as HTML.

const TOKEN_KEY = "reyna.token";

/** The pages, in the navigation's order: hash name and label. */
const PAGES = [
  ["overview", "Overview"],
  ["blobs", "Blobs"],
  ["plugins", "Plugins"],
  ["dead-letters", "Dead letters"],
  ["jobs", "Jobs"],
  ["schemas", "Schemas"],
  ["audit", "Audit"],
  ["studio", "Studio"],
];

/** A refused or failed API call. */
export class ApiError extends Error {
  constructor(status, problem, statusText) {
    super((problem && (problem.detail || problem.title)) || statusText || `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.problem = problem || null;
  }
}

/** The signed-in token, or null. */
export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

/** The WebSocket API's URL on this host. */
export function wsUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/v1/ws`;
}

/** Goes to a hash route (`#/blobs/<id>`); renders again if already there. */
export function navigate(hash) {
  if (location.hash === hash) {
    route();
  } else {
    location.hash = hash;
  }
}

/**
 * Calls the API with the signed-in token and returns the `Response` once it
 * is a success; throws `ApiError` (with the problem+json body) otherwise.
 */
export async function request(path, { method = "GET", body, json, headers = {}, signal } = {}, bearer = token()) {
  const sent = { Accept: "application/json", ...headers };
  if (bearer) sent.Authorization = `Bearer ${bearer}`;
  if (json !== undefined) {
    sent["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(path, { method, headers: sent, body, signal, cache: "no-store" });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, null, `the host did not answer (${e.message})`);
  }
  if (!response.ok) {
    let problem = null;
    if ((response.headers.get("Content-Type") || "").includes("json")) {
      problem = await response.json().catch(() => null);
    }
    throw new ApiError(response.status, problem, response.statusText);
  }
  return response;
}

/** Calls the API: parsed JSON, `null` for 204, or text for other bodies. */
export async function api(path, options = {}, bearer = token()) {
  const response = await request(path, options, bearer);
  if (response.status === 204) return null;
  const type = response.headers.get("Content-Type") || "";
  return type.includes("json") ? response.json() : response.text();
}

/** Builds an element: attributes (`on<event>` functions become listeners) and children. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (name === "class") {
      node.className = value;
    } else {
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

// ---- shared pieces of the pages ---------------------------------------------

/** A table inside its own horizontally scrolling box. */
export function table(headings, rows, attrs = {}) {
  return el("div", { class: "table-wrap" },
    el("table", attrs,
      el("thead", {}, el("tr", {}, headings.map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, rows)));
}

/** An alert box saying why a call failed (the problem's detail, as the API gave it). */
export function failure(error, what) {
  return el("div", { class: "alert", role: "alert" }, what ? `${what}: ` : null, error.message);
}

/** A page heading with optional controls beside it. */
export function heading(title, ...controls) {
  return el("div", { class: "page-head" }, el("h1", {}, title), controls.length ? el("div", { class: "controls" }, controls) : null);
}

/**
 * "First page" and "Next page" buttons over a cursor-paged listing.
 * `load(cursor)` shows a page (cursor null: the first) and returns the next
 * page's cursor, or null on the last page or a failure.
 */
export function pager(load) {
  const next = el("button", { type: "button", class: "next-page", hidden: true }, "Next page");
  const first = el("button", { type: "button", class: "first-page", hidden: true }, "First page");
  let cursor = null;
  const show = async (from) => {
    cursor = await load(from);
    next.hidden = !cursor;
    first.hidden = !from;
  };
  next.addEventListener("click", () => show(cursor));
  first.addEventListener("click", () => show(null));
  return { element: el("div", { class: "pager" }, first, next), show };
}

/** A job's state as a badge (dead ones stand out). */
export function jobState(state) {
  const tone = { dead: " bad", done: " ok" }[state] || "";
  return el("span", { class: `badge${tone}` }, state);
}

/** A link to a blob's page, showing a shortened id. */
export function blobLink(id) {
  return el("a", { href: `#/blobs/${id}`, class: "id", title: id }, shortId(id));
}

export function shortId(id) {
  return id && id.length > 12 ? `${id.slice(0, 6)}…${id.slice(-6)}` : id || "";
}

export function when(ms) {
  if (!ms) return "";
  const d = new Date(ms);
  return el("time", { datetime: d.toISOString(), title: d.toISOString() }, d.toLocaleString());
}

export function bytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = Number(n);
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

export function micros(us) {
  if (us === null || us === undefined) return "";
  if (us < 1000) return `${us} µs`;
  if (us < 1_000_000) return `${(us / 1000).toFixed(1)} ms`;
  return `${(us / 1_000_000).toFixed(2)} s`;
}

/** Who the token is (`GET /v1/me`), fetched once per sign-in. */
let whoami = null;
export function me() {
  return whoami;
}

/** Whether the token may do what the given role may. */
export function hasRole(role) {
  const order = ["reader", "writer", "admin", "operator"];
  return whoami !== null && order.indexOf(whoami.role) >= order.indexOf(role);
}

/**
 * Follows the tenant's live events (`GET /v1/events`, server-sent events
 * read through fetch so the bearer header goes along), calling `onEvent`
 * with each event. Reconnects after a drop, resuming after the last
 * sequence seen (a `lagged` ending says where). Returns the function that
 * stops it.
 */
export function follow(subject, onEvent, onState = () => {}) {
  const controller = new AbortController();
  let last = null;
  let retry = null;
  let stopped = false;
  const connect = async () => {
    const query = new URLSearchParams({ subject });
    if (last !== null) query.set("after", String(last));
    try {
      const response = await request(`/v1/events?${query}`, { headers: { Accept: "text/event-stream" }, signal: controller.signal });
      onState("live");
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
          const message = parseSse(block);
          if (message.event === "lagged") {
            const word = safeJson(message.data);
            if (word && typeof word.last_seq === "number") last = word.last_seq;
          } else if (message.data) {
            const event = safeJson(message.data);
            if (event) {
              last = event.seq;
              onEvent(event);
            }
          }
        }
      }
    } catch (e) {
      if (stopped) return;
      onState(e instanceof ApiError ? e.message : "disconnected");
      if (e instanceof ApiError && (e.status === 401 || e.status === 403)) return;
    }
    if (!stopped) {
      onState("reconnecting");
      retry = setTimeout(connect, 2000);
    }
  };
  connect();
  return () => {
    stopped = true;
    clearTimeout(retry);
    controller.abort();
  };
}

function parseSse(block) {
  const message = { event: "message", data: "" };
  for (const line of block.split(/\r?\n/)) {
    if (line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") message.event = value;
    else if (field === "data") message.data += (message.data ? "\n" : "") + value;
  }
  return message;
}

function safeJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

// ---- sign-in, navigation, routing ---------------------------------------------

const main = () => document.getElementById("page");
let cleanup = null;
let generation = 0;

function leavePage() {
  const done = cleanup;
  cleanup = null;
  if (typeof done === "function") {
    try {
      done();
    } catch (e) {
      console.error("leaving the page", e);
    }
  }
}

function showSignIn(message) {
  generation += 1; // a page still rendering is dropped
  leavePage();
  whoami = null;
  document.getElementById("nav")?.remove();
  document.getElementById("who").textContent = "";
  const page = main();
  page.replaceChildren();
  page.dataset.page = "signin";
  const input = el("input", { id: "token", type: "password", name: "token", autocomplete: "off", required: true, spellcheck: "false" });
  // The alert is made when there is something to say, so its presence means a refusal.
  const error = el("div", { class: "signin-message" });
  if (message) error.append(signInError(message));
  const form = el("form", { id: "signin", class: "card signin", onsubmit: (e) => { e.preventDefault(); signIn(input.value.trim(), error); } },
    el("h1", {}, "Sign in"),
    el("p", { class: "muted" }, "Paste an API token (reyna_…). It stays in this tab only, and every page calls the API with it: the console can do exactly what the token can."),
    el("label", { for: "token" }, "Token"),
    input,
    error,
    el("button", { id: "signin-submit", type: "submit", class: "primary" }, "Sign in"));
  page.append(form);
  page.dataset.ready = "true";
  input.focus();
}

function signInError(message) {
  return el("p", { id: "signin-error", role: "alert", class: "alert" }, message);
}

async function signIn(candidate, errorBox) {
  errorBox.replaceChildren();
  if (!candidate) {
    errorBox.append(signInError("enter a token"));
    return;
  }
  try {
    whoami = await api("/v1/me", {}, candidate);
  } catch (e) {
    errorBox.append(signInError(e.message));
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, candidate);
  showShell();
  if (!location.hash || location.hash === "#" || location.hash === "#/") {
    location.hash = "#/overview"; // its hashchange renders the page
  } else {
    route();
  }
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  showSignIn();
}

function showShell() {
  document.getElementById("who").textContent = whoami ? `${whoami.tenant} · ${whoami.role}` : "";
  if (document.getElementById("nav")) return;
  const links = PAGES.map(([name, label]) => el("a", { href: `#/${name}`, "data-page": name }, label));
  const nav = el("nav", { id: "nav", "aria-label": "Console" },
    el("div", { class: "nav-links" }, links,
      el("button", { id: "signout", type: "button", onclick: signOut }, "Sign out")));
  document.getElementById("shell").prepend(nav);
}

/** Parses the hash into a page name and its parameters. */
function parseHash() {
  const parts = (location.hash || "#/overview").replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  if (parts.length === 0) return { name: "overview", params: {} };
  if (parts[0] === "blobs" && parts[1]) return { name: "blob", params: { id: parts[1] } };
  return { name: parts[0], params: {} };
}

async function route() {
  if (!token() || !whoami) return;
  const { name, params } = parseHash();
  const mine = ++generation;
  leavePage();
  const page = main();
  page.replaceChildren();
  delete page.dataset.ready;
  page.dataset.page = name;
  const navName = name === "blob" ? "blobs" : name;
  for (const a of document.querySelectorAll("#nav a[data-page]")) {
    if (a.dataset.page === navName) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.title = `${name} · Reyna`;
  const known = PAGES.some(([p]) => p === name) || name === "blob";
  if (!known) {
    page.append(heading("Not found"), el("p", {}, `There is no page “${name}”. `, el("a", { href: "#/overview" }, "Go to the overview"), "."));
    page.dataset.ready = "true";
    return;
  }
  let done = null;
  try {
    const module = await import(`./pages/${name}.js`);
    if (mine !== generation) return;
    done = await module.render(page, params);
  } catch (e) {
    console.error(`rendering ${name}`, e);
    if (mine !== generation) return;
    if (e instanceof ApiError && e.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      showSignIn(e.message);
      return;
    }
    page.append(failure(e, `The ${name} page failed`));
  }
  if (mine !== generation) {
    if (typeof done === "function") done();
    return;
  }
  cleanup = done;
  page.dataset.ready = "true";
}

async function start() {
  window.addEventListener("hashchange", route);
  const stored = token();
  if (!stored) {
    showSignIn();
    return;
  }
  try {
    whoami = await api("/v1/me");
  } catch (e) {
    if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
      sessionStorage.removeItem(TOKEN_KEY);
      showSignIn(e.message);
      return;
    }
    showSignIn(e.message);
    return;
  }
  showShell();
  route();
}

start();
