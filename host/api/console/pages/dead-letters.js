// Dead letters: jobs that failed for good, with the reason and what the
// last run cost; an admin replays one (its job runs again as the next attempt).
import { api, el, failure, heading, pager, table, blobLink, when, micros, bytes } from "../app.js";

export async function render(main) {
  const message = el("div", { id: "dead-letters-message", role: "status" });
  const box = el("div", {});

  const load = async (from) => {
    const query = new URLSearchParams({ limit: "100" });
    if (from) query.set("cursor", from);
    let page;
    try {
      page = await api(`/v1/dead-letters?${query}`);
    } catch (e) {
      box.replaceChildren(failure(e, "Listing dead letters"));
      return null;
    }
    const rows = page.items.map((d) => {
      const replay = el("button", { type: "button", class: "replay", disabled: Boolean(d.replayed_at) }, "Replay");
      const row = el("tr", { class: d.replayed_at ? "dead-letter replayed" : "dead-letter", "data-job-id": d.job.id, "data-dead-letter-id": d.id },
        el("td", {}, `${d.job.plugin}@${d.job.version}`, el("div", { class: "muted" }, `attempt ${d.job.attempt}`)),
        el("td", {}, blobLink(d.job.blob_id)),
        el("td", { class: "wrap" }, d.reason),
        el("td", { class: "num" }, micros(d.cost.wall_us), el("div", { class: "muted" }, bytes(d.cost.peak_memory))),
        el("td", {}, when(d.created_at)),
        el("td", {}, d.replayed_at ? when(d.replayed_at) : replay));
      replay.addEventListener("click", async () => {
        replay.disabled = true;
        message.replaceChildren();
        try {
          const job = await api(`/v1/dead-letters/${encodeURIComponent(d.id)}/replay`, { method: "POST" });
          row.classList.add("replayed");
          replay.replaceWith(el("span", { class: "badge ok" }, "replayed"));
          message.append(el("p", { class: "notice" }, `Replayed job ${job.id} (${job.plugin}@${job.version}): it is ${job.state} again as attempt ${job.attempt}.`));
        } catch (e) {
          replay.disabled = false;
          message.append(failure(e, `Replaying job ${d.job.id}`));
        }
      });
      return row;
    });
    box.replaceChildren(rows.length
      ? table(["Job", "Input", "Reason", "Cost", "Died", "Replay"], rows, { id: "dead-letters" })
      : el("p", { class: "muted" }, "No dead letters."));
    return page.next_cursor || null;
  };
  const pages = pager(load);
  main.append(heading("Dead letters"), message, box, pages.element);
  await pages.show(null);
  return null;
}
