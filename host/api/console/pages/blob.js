// A blob's page: its metadata, its data (pretty JSON, or its size and a
// download), its producer (plugin, version, attempt, cost, effect calls with
// their outcomes), its parents and derived blobs, and its lineage graph.
import { api, request, el, failure, heading, table, blobLink, when, bytes, micros, shortId, jobState } from "../app.js";

/** Largest data shown inline; bigger blobs are offered as a download. */
const INLINE_BYTES = 256 * 1024;

export async function render(main, { id }) {
  let blob;
  try {
    blob = await api(`/v1/blobs/${encodeURIComponent(id)}`);
  } catch (e) {
    main.append(heading("Blob"), failure(e, `Blob ${id}`), el("p", {}, el("a", { href: "#/blobs" }, "Back to the blobs")));
    return null;
  }
  const urls = [];
  const dataBox = el("div", { id: "blob-data", class: "card" }, el("span", { class: "muted" }, "Loading…"));
  const derivedBox = el("div", { id: "blob-derived" }, el("span", { class: "muted" }, "Loading…"));
  const lineageBox = el("div", { id: "blob-lineage", class: "card lineage-box" });
  main.append(
    heading(`Blob ${shortId(blob.id)}`, el("span", { class: "badge" }, blob.schema)),
    el("div", { class: "split" },
      el("section", {}, el("h2", {}, "Metadata"), el("div", { class: "card" }, metadata(blob))),
      el("section", {}, el("h2", {}, "Producer"), el("div", { id: "blob-producer", class: "card" }, producer(blob)))),
    el("section", {}, el("h2", {}, "Data"), dataBox),
    el("section", {}, el("h2", {}, "Derived blobs"), derivedBox),
    el("section", {}, el("h2", {}, "Lineage"), lineageBox),
  );

  await Promise.all([
    showData(blob, dataBox, urls),
    showDerived(blob, derivedBox),
    showLineage(blob, lineageBox),
  ]);
  return () => urls.forEach((u) => URL.revokeObjectURL(u));
}

function metadata(blob) {
  return el("dl", { class: "meta" },
    el("dt", {}, "Id"), el("dd", {}, el("code", {}, blob.id)),
    el("dt", {}, "Schema"), el("dd", {}, blob.schema),
    el("dt", {}, "Created"), el("dd", {}, when(blob.created_at)),
    el("dt", {}, "Size"), el("dd", {}, bytes(blob.size)),
    el("dt", {}, "Digest"), el("dd", {}, el("code", {}, blob.digest)),
    el("dt", {}, "Hop"), el("dd", {}, String(blob.hop)),
    el("dt", {}, "Parents"), el("dd", {}, blob.parents.length
      ? blob.parents.flatMap((p, i) => (i ? [", ", blobLink(p)] : [blobLink(p)]))
      : el("span", { class: "muted" }, "none (ingested)")));
}

function producer(blob) {
  const p = blob.producer;
  if (!p) return el("p", { class: "muted" }, "Ingested through the API: no plugin made it.");
  const c = p.cost || {};
  return [
    el("dl", { class: "meta" },
      el("dt", {}, "Plugin"), el("dd", {}, el("a", { href: "#/plugins" }, p.plugin), " ", el("span", { class: "badge" }, p.version)),
      el("dt", {}, "Attempt"), el("dd", {}, String(p.attempt)),
      el("dt", {}, "Job"), el("dd", {}, el("code", {}, p.job_id)),
      p.reused_from ? [el("dt", {}, "Reused from"), el("dd", {}, el("code", {}, p.reused_from))] : null,
      el("dt", {}, "Wall time"), el("dd", {}, micros(c.wall_us)),
      el("dt", {}, "CPU time"), el("dd", {}, micros(c.cpu_us)),
      c.fuel !== null && c.fuel !== undefined ? [el("dt", {}, "Fuel"), el("dd", {}, String(c.fuel))] : null,
      el("dt", {}, "Peak memory"), el("dd", {}, bytes(c.peak_memory)),
      el("dt", {}, "Bytes in / out"), el("dd", {}, `${bytes(c.bytes_in)} / ${bytes(c.bytes_out)}`),
      el("dt", {}, "Component"), el("dd", {}, el("code", {}, p.component_digest)),
      el("dt", {}, "Config digest"), el("dd", {}, el("code", {}, p.config_digest)),
      p.secrets && p.secrets.length
        ? [el("dt", {}, "Secrets read"), el("dd", {}, p.secrets.map((s) => `${s.plugin}/${s.name} v${s.version}`).join(", "))]
        : null),
    el("h3", {}, `Effect calls (${p.effect_calls.length})`),
    p.effect_calls.length
      ? table(["Effect", "Duration", "Outcome"], p.effect_calls.map((call) => el("tr", { class: "effect-call" },
        el("td", {}, `${call.effect}@${call.version || "?"}`),
        el("td", { class: "num" }, micros(call.duration_us)),
        el("td", { class: "wrap" }, el("span", { class: call.outcome === "ok" || call.outcome === "replayed" ? "badge ok" : "badge bad" }, call.outcome)))))
      : el("p", { class: "muted" }, "None."),
  ];
}

async function showData(blob, box, urls) {
  const download = el("button", { type: "button", class: "download" }, `Download (${bytes(blob.size)})`);
  download.addEventListener("click", async () => {
    download.disabled = true;
    try {
      const response = await request(`/v1/blobs/${encodeURIComponent(blob.id)}/data`);
      const url = URL.createObjectURL(await response.blob());
      urls.push(url);
      const link = el("a", { href: url, download: `${blob.id}.json` }, "Save the file");
      download.replaceWith(link);
      link.click();
    } catch (e) {
      box.append(failure(e, "Download"));
      download.disabled = false;
    }
  });
  if (blob.size > INLINE_BYTES) {
    box.replaceChildren(el("p", {}, `${bytes(blob.size)}: too large to show here.`), download);
    return;
  }
  try {
    const response = await request(`/v1/blobs/${encodeURIComponent(blob.id)}/data`);
    const text = await response.text();
    let pretty = null;
    try {
      pretty = JSON.stringify(JSON.parse(text), null, 2);
    } catch {
      pretty = null;
    }
    box.replaceChildren(
      pretty !== null ? el("pre", { class: "json" }, pretty) : el("p", {}, `${bytes(blob.size)} of data that is not JSON.`),
      el("div", { class: "pager" }, download));
  } catch (e) {
    box.replaceChildren(failure(e, "Reading the data"));
  }
}

async function showDerived(blob, box) {
  try {
    const d = await api(`/v1/blobs/${encodeURIComponent(blob.id)}/derived`);
    const rows = d.derived.map((b) => el("tr", { class: "derived-blob", "data-blob-id": b.id },
      el("td", {}, blobLink(b.id)),
      el("td", {}, b.schema),
      el("td", {}, b.producer ? `${b.producer.plugin}@${b.producer.version}` : ""),
      el("td", {}, when(b.created_at))));
    const jobs = d.jobs.map((j) => el("tr", { class: "job", "data-job-id": j.id },
      el("td", {}, `${j.plugin}@${j.version}`),
      el("td", {}, jobState(j.state)),
      el("td", { class: "num" }, String(j.attempt)),
      el("td", { class: "wrap" }, j.last_error || "")));
    box.replaceChildren(
      rows.length ? table(["Blob", "Schema", "Made by", "Created"], rows) : el("p", { class: "muted" }, "No derived blobs."),
      el("h3", {}, `Jobs for this blob (${jobs.length})`),
      jobs.length ? table(["Plugin", "State", "Attempt", "Last error"], jobs) : el("p", { class: "muted" }, d.settled ? "No plugin subscribes to it." : "None yet."));
  } catch (e) {
    box.replaceChildren(failure(e, "Derived blobs"));
  }
}

async function showLineage(blob, box) {
  let renderLineage;
  try {
    ({ renderLineage } = await import("../lineage.js"));
  } catch (e) {
    box.replaceChildren(el("p", { class: "alert", role: "alert" }, `The lineage view could not be loaded (${e.message}).`));
    return;
  }
  try {
    await renderLineage(box, blob.id);
  } catch (e) {
    box.append(failure(e, "Lineage"));
  }
}
