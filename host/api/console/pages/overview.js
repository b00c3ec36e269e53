// Overview: live counters over the tenant's event stream (blobs created and
// derived per second with a 60-second sparkline), queue depth and holdings,
// failed jobs, dead letters, and the last 20 events.
import { api, request, el, follow, hasRole, heading, me, bytes, shortId } from "../app.js";

const WINDOW = 60;
const RECENT = 20;
/** Blob lookups in flight at once to tell derived blobs from ingested ones. */
const LOOKUPS = 4;
/** Blobs waiting for that lookup; past it, a blob is counted but not classified. */
const BACKLOG = 500;
const SVG = "http://www.w3.org/2000/svg";

export async function render(main) {
  const created = new Array(WINDOW).fill(0);
  const derived = new Array(WINDOW).fill(0);
  let unclassified = 0;
  const status = el("span", { class: "badge" }, "connecting");
  const createdStat = stat("Blobs created / s", "created");
  const derivedStat = stat("Derived blobs / s", "derived");
  const queueStat = stat("Queue depth", null);
  const heldStat = stat("Stored", null);
  const failedStat = stat("Failed jobs", null);
  const deadStat = stat("Dead letters", null);
  const recent = el("ul", { class: "events", id: "recent-events" });
  main.append(
    heading("Overview", el("span", { class: "muted" }, "events: "), status),
    el("div", { class: "grid" }, createdStat.card, derivedStat.card, queueStat.card, heldStat.card, failedStat.card, deadStat.card),
    el("section", {}, el("h2", {}, "Recent events"), el("div", { class: "card" }, recent,
      el("p", { class: "muted", id: "recent-empty" }, "No events since this page opened."))),
  );

  // Blobs created: every `blob.created` event. Derived ones: those whose
  // metadata names a producer (looked up a few at a time).
  const queue = [];
  let inFlight = 0;
  let closed = false;
  const classify = () => {
    while (!closed && inFlight < LOOKUPS && queue.length) {
      const { id, bucket, by } = queue.shift();
      inFlight += 1;
      api(`/v1/blobs/${encodeURIComponent(id)}`)
        .then((blob) => {
          tick();
          const age = current - bucket.at;
          if (blob.producer && age < WINDOW) derived[WINDOW - 1 - age] += 1;
          by.textContent = blob.producer ? `by ${blob.producer.plugin}@${blob.producer.version}` : "ingested";
        })
        .catch(() => {})
        .finally(() => {
          inFlight -= 1;
          classify();
        });
    }
  };

  let current = second();
  const tick = () => {
    const now = second();
    while (current < now) {
      created.shift();
      created.push(0);
      derived.shift();
      derived.push(0);
      current += 1;
    }
    createdStat.set(String(created[WINDOW - 2]), [created], "ingested and derived, last second");
    derivedStat.set(String(derived[WINDOW - 2]), [derived], unclassified ? `${unclassified} not classified (busy)` : "");
  };
  const timer = setInterval(tick, 1000);

  let refreshSoon = null;
  const onEvent = (event) => {
    tick();
    document.getElementById("recent-empty")?.remove();
    const by = el("span", { class: "by muted" });
    const item = el("li", { "data-seq": event.seq, "data-blob-id": event.blob_id || undefined },
      el("span", { class: "muted" }, new Date(event.at).toLocaleTimeString()),
      el("span", { class: "subject" }, event.subject),
      event.blob_id ? el("a", { href: `#/blobs/${event.blob_id}`, class: "id" }, shortId(event.blob_id)) : null,
      by);
    recent.prepend(item);
    while (recent.children.length > RECENT) recent.lastElementChild.remove();
    if (event.subject.startsWith("blob.created.") && event.blob_id) {
      created[WINDOW - 1] += 1;
      if (queue.length < BACKLOG) {
        queue.push({ id: event.blob_id, bucket: { at: current }, by });
        classify();
      } else {
        unclassified += 1;
      }
    }
    if (event.subject.startsWith("job.failed.") && !refreshSoon) {
      refreshSoon = setTimeout(() => {
        refreshSoon = null;
        refreshFailures();
      }, 500);
    }
  };
  const stop = follow(">", onEvent, (state) => {
    status.textContent = state;
    status.className = state === "live" ? "badge ok" : "badge warn";
  });

  const refreshFailures = async () => {
    // One page of each (the host's default page size); "N+" when there are more.
    try {
      const response = await request("/v1/jobs?state=dead");
      const dead = await response.json();
      const more = response.headers.get("x-next-cursor") ? "+" : "";
      failedStat.set(`${dead.length}${more}`, null, "jobs that failed for good");
    } catch (e) {
      failedStat.set("—", null, e.message);
    }
    try {
      const letters = await api("/v1/dead-letters");
      const waiting = letters.items.filter((d) => !d.replayed_at).length;
      const more = letters.next_cursor ? "+" : "";
      deadStat.set(`${letters.items.length}${more}`, null, `${waiting}${more} not replayed`);
    } catch (e) {
      deadStat.set("—", null, e.message);
    }
  };
  const refreshHoldings = async () => {
    const who = me();
    if (!who || !hasRole("admin")) {
      queueStat.set("—", null, "an admin token sees the queue");
      heldStat.set("—", null, "an admin token sees holdings");
      return;
    }
    try {
      const tenant = await api(`/v1/tenants/${encodeURIComponent(who.tenant)}`);
      const h = tenant.holdings || {};
      queueStat.set(String(h.queued_jobs ?? "—"), null, `${h.running_jobs ?? 0} running`);
      const quota = tenant.effective_quotas && tenant.effective_quotas.stored_bytes;
      heldStat.set(bytes(h.stored_bytes ?? 0), null, quota ? `of ${bytes(quota)}` : "blob data");
    } catch (e) {
      queueStat.set("—", null, e.message);
      heldStat.set("—", null, e.message);
    }
  };
  await Promise.all([refreshFailures(), refreshHoldings()]);
  const poll = setInterval(() => {
    refreshFailures();
    refreshHoldings();
  }, 5000);
  tick();

  return () => {
    closed = true;
    stop();
    clearInterval(timer);
    clearInterval(poll);
    clearTimeout(refreshSoon);
  };
}

function second() {
  return Math.floor(Date.now() / 1000);
}

/** A counter card, with a sparkline when `series` is given. */
function stat(label, series) {
  const value = el("div", { class: "value" }, "—");
  const note = el("div", { class: "note" });
  const svg = series ? document.createElementNS(SVG, "svg") : null;
  if (svg) {
    svg.setAttribute("class", "sparkline");
    svg.setAttribute("viewBox", `0 0 ${WINDOW - 1} 40`);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", `${label}, last ${WINDOW} seconds`);
  }
  const card = el("div", { class: "card stat", "data-stat": series || label },
    el("div", { class: "label" }, label), value, svg, note);
  return {
    card,
    set(text, lines, noteText) {
      value.textContent = text;
      if (noteText !== undefined) note.textContent = noteText;
      if (svg && lines) drawSpark(svg, lines[0], series === "derived" ? "derived" : "");
    },
  };
}

function drawSpark(svg, data, kind) {
  const max = Math.max(1, ...data);
  const points = data.map((v, i) => `${i},${(40 - (v / max) * 38 - 1).toFixed(1)}`).join(" ");
  let line = svg.querySelector("polyline");
  if (!line) {
    const axis = document.createElementNS(SVG, "line");
    axis.setAttribute("class", "axis");
    axis.setAttribute("x1", "0");
    axis.setAttribute("x2", String(WINDOW - 1));
    axis.setAttribute("y1", "39.5");
    axis.setAttribute("y2", "39.5");
    svg.append(axis);
    line = document.createElementNS(SVG, "polyline");
    if (kind) line.setAttribute("class", kind);
    svg.append(line);
  }
  line.setAttribute("points", points);
  const title = svg.querySelector("title") || svg.appendChild(document.createElementNS(SVG, "title"));
  title.textContent = `peak ${Math.max(...data)} / s`;
}
