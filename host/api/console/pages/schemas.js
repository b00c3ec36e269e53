// Schemas: the registered JSON Schemas; view one, and validate a pasted
// document against it (each violation with its JSON pointer and rule).
import { api, request, el, failure, heading, table, when, ApiError } from "../app.js";

export async function render(main) {
  const listBox = el("div", {});
  const title = el("h2", {}, "Schema");
  const view = el("pre", { id: "schema-json", class: "json" });
  const doc = el("textarea", { id: "schema-doc", spellcheck: "false", placeholder: "{ \"content\": \"…\" }", "aria-label": "Document to validate" });
  const validate = el("button", { id: "schema-validate", type: "button", class: "primary" }, "Validate");
  const result = el("div", { id: "schema-result", "aria-live": "polite" });
  const detail = el("div", { class: "split", hidden: true },
    el("section", {}, title, view),
    el("section", {}, el("h2", {}, "Validate a document"), doc, el("div", { class: "pager" }, validate), result));
  main.append(heading("Schemas"), listBox, detail);

  let selected = null;
  const select = async (id) => {
    selected = id;
    for (const row of listBox.querySelectorAll("tr.schema")) row.classList.toggle("live", row.dataset.schema === id);
    title.textContent = `Schema ${id}`;
    result.replaceChildren();
    detail.hidden = false;
    try {
      const s = await api(`/v1/schemas/${encodeURIComponent(id)}`);
      view.textContent = JSON.stringify(s.schema, null, 2);
    } catch (e) {
      view.replaceChildren(failure(e, `Schema ${id}`));
    }
  };

  validate.addEventListener("click", async () => {
    if (!selected) return;
    validate.disabled = true;
    result.replaceChildren();
    try {
      const response = await request(`/v1/schemas/${encodeURIComponent(selected)}/validate`, {
        method: "POST",
        body: doc.value,
        headers: { "Content-Type": "application/json" },
      });
      const outcome = await response.json();
      if (outcome.valid) {
        result.append(el("p", { id: "schema-valid", class: "notice" }, `The document matches ${selected}.`));
      } else {
        result.append(
          el("p", { class: "alert", role: "alert" }, `${outcome.total} violation${outcome.total === 1 ? "" : "s"} of ${selected}${outcome.total > outcome.errors.length ? ` (the first ${outcome.errors.length} listed)` : ""}:`),
          el("ul", { class: "violations" }, outcome.errors.map((v) => el("li", { class: "violation" },
            el("code", { class: "pointer" }, v.pointer), v.pointer ? " " : "(the whole document) ", el("span", { class: "badge" }, v.rule), " ", v.message))));
      }
    } catch (e) {
      // A body that is not JSON is refused with a problem naming where it broke.
      result.append(failure(e, e instanceof ApiError && e.status === 400 ? "Not a JSON document" : "Validating"));
    } finally {
      validate.disabled = false;
    }
  });

  let schemas;
  try {
    schemas = await api("/v1/schemas");
  } catch (e) {
    listBox.append(failure(e, "Listing schemas"));
    return null;
  }
  const rows = schemas.map((s) => {
    const open = el("button", { type: "button", class: "view" }, "View");
    open.addEventListener("click", () => select(s.id));
    return el("tr", { class: "schema", "data-schema": s.id },
      el("td", {}, el("strong", {}, s.id)),
      el("td", {}, when(s.created_at)),
      el("td", { class: "wrap" }, el("code", {}, s.digest)),
      el("td", {}, open));
  });
  listBox.append(rows.length ? table(["Schema", "Registered", "Digest", ""], rows, { id: "schemas" }) : el("p", { class: "muted" }, "No schemas registered."));
  if (schemas.length) await select(schemas[0].id);
  return null;
}
