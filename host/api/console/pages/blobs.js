// Blobs: the tenant's blobs, filtered by schema and optionally by a field
// (a JSON pointer and its value), a page at a time; new blobs of the filter
// appear at the top as their `blob.created` events arrive.
import { api, el, failure, follow, heading, pager, table, blobLink, when, bytes } from "../app.js";

export async function render(main) {
  const schemaSelect = el("select", { id: "blob-schema", name: "schema" }, el("option", { value: "" }, "every schema"));
  const field = el("input", { id: "blob-field", name: "field", placeholder: "/metadata/book_id", spellcheck: "false", size: 18 });
  const value = el("input", { id: "blob-value", name: "value", placeholder: "value", spellcheck: "false", size: 14 });
  const form = el("form", { class: "inline-form", id: "blob-filter" },
    el("div", {}, el("label", { for: "blob-schema" }, "Schema"), schemaSelect),
    el("div", {}, el("label", { for: "blob-field" }, "Field (JSON pointer)"), field),
    el("div", {}, el("label", { for: "blob-value" }, "equals"), value),
    el("button", { type: "submit", class: "primary" }, "Filter"));
  const status = el("span", { class: "badge" }, "connecting");
  const message = el("div", {});
  const body = el("tbody", {});
  const list = table(["Blob", "Schema", "Created", "Size", "Made by"], [], { id: "blob-list" });
  list.querySelector("tbody").replaceWith(body);
  const empty = el("p", { class: "muted", hidden: true }, "No blobs match.");
  const pages = pager((from) => load(from));
  main.append(heading("Blobs", el("span", { class: "muted" }, "live: "), status), form, message, list, empty, pages.element);

  try {
    const schemas = await api("/v1/schemas");
    for (const s of schemas) schemaSelect.append(el("option", { value: s.id }, s.id));
  } catch (e) {
    message.append(failure(e, "Listing schemas"));
  }

  let filter = { schema: "", field: "", value: "" };
  let shown = new Set();
  const row = (blob, live) => el("tr", { class: live ? "blob live" : "blob", "data-blob-id": blob.id },
    el("td", {}, blobLink(blob.id)),
    el("td", {}, blob.schema),
    el("td", {}, when(blob.created_at)),
    el("td", { class: "num" }, bytes(blob.size)),
    el("td", {}, blob.producer ? `${blob.producer.plugin}@${blob.producer.version}` : el("span", { class: "muted" }, "ingested")));

  const load = async (from) => {
    message.replaceChildren();
    const query = new URLSearchParams();
    if (filter.schema) query.set("schema", filter.schema);
    if (filter.field) {
      query.set("field", filter.field);
      query.set("value", filter.value);
    }
    if (from) query.set("cursor", from);
    try {
      const page = await api(`/v1/blobs?${query}`);
      body.replaceChildren(...page.items.map((b) => row(b, false)));
      shown = new Set(page.items.map((b) => b.id));
      empty.hidden = page.items.length > 0;
      return page.next_cursor || null;
    } catch (e) {
      body.replaceChildren();
      empty.hidden = true;
      message.append(failure(e, "Listing blobs"));
      return null;
    }
  };

  // A new blob joins the list when it matches the filter: its schema by the
  // event's subject, its field by reading its data.
  const onEvent = async (event) => {
    if (!event.subject.startsWith("blob.created.") || !event.blob_id || shown.has(event.blob_id)) return;
    const schema = event.subject.slice("blob.created.".length);
    if (filter.schema && schema !== filter.schema) return;
    const wanted = { ...filter };
    try {
      if (wanted.field) {
        const data = await api(`/v1/blobs/${encodeURIComponent(event.blob_id)}/data`);
        if (!fieldMatches(data, wanted.field, wanted.value)) return;
      }
      const blob = await api(`/v1/blobs/${encodeURIComponent(event.blob_id)}`);
      if (JSON.stringify(wanted) !== JSON.stringify(filter)) return;
      if (shown.has(blob.id)) return;
      shown.add(blob.id);
      body.prepend(row(blob, true));
      empty.hidden = true;
    } catch {
      // Deleted or unreadable since: nothing to show.
    }
  };

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    filter = { schema: schemaSelect.value, field: field.value.trim(), value: value.value };
    pages.show(null);
  });

  await pages.show(null);
  const stop = follow("blob.created.>", onEvent, (state) => {
    status.textContent = state;
    status.className = state === "live" ? "badge ok" : "badge warn";
  });
  return stop;
}

/** Whether the value at JSON pointer `pointer` equals `text`: a string equal
 * to it, or a number or boolean whose JSON text is it (as the API filters). */
function fieldMatches(doc, pointer, text) {
  if (!pointer.startsWith("/")) return false;
  let at = doc;
  for (const raw of pointer.slice(1).split("/")) {
    const key = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    if (at === null || typeof at !== "object" || !(key in at)) return false;
    at = at[key];
  }
  if (typeof at === "string") return at === text;
  if (typeof at === "number" || typeof at === "boolean") return JSON.stringify(at) === text;
  return false;
}
