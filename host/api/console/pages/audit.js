// Audit: what operators and admins did (uploads, enables, tokens, replays),
// oldest first, a page at a time. The API shows an admin its own tenant's
// entries and the operator every entry.
import { api, el, failure, heading, table, when } from "../app.js";

const PAGE = 100;

export async function render(main) {
  const box = el("div", {});
  const newer = el("button", { type: "button", hidden: true }, "Newer entries");
  const first = el("button", { type: "button", hidden: true }, "From the start");
  main.append(heading("Audit"), box, el("div", { class: "pager" }, first, newer));
  let after = 0;

  const load = async (from) => {
    let entries;
    try {
      entries = await api(`/v1/audit?after=${from}&limit=${PAGE}`);
    } catch (e) {
      box.replaceChildren(failure(e, "Reading the audit log"));
      newer.hidden = true;
      return;
    }
    first.hidden = from === 0;
    newer.hidden = entries.length < PAGE;
    if (entries.length) after = entries[entries.length - 1].seq;
    const rows = entries.map((a) => el("tr", { class: "audit", "data-seq": a.seq },
      el("td", { class: "num" }, String(a.seq)),
      el("td", {}, when(a.at)),
      el("td", {}, a.actor),
      el("td", {}, a.tenant || el("span", { class: "muted" }, "platform")),
      el("td", {}, el("code", {}, a.action)),
      el("td", { class: "wrap" }, a.target),
      el("td", { class: "wrap" }, a.detail),
      el("td", {}, el("span", { class: a.outcome === "ok" ? "badge ok" : "badge bad" }, a.outcome))));
    box.replaceChildren(rows.length
      ? table(["#", "When", "Who", "Tenant", "Action", "Target", "Detail", "Outcome"], rows, { id: "audit" })
      : el("p", { class: "muted" }, "No entries."));
  };
  newer.addEventListener("click", () => load(after));
  first.addEventListener("click", () => load(0));
  await load(0);
  return null;
}
