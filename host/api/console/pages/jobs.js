// Jobs: the tenant's plugin runs by state, a page at a time, each with its
// logs (what the plugin logged per attempt) on demand.
import { api, request, el, failure, heading, pager, table, blobLink, when, shortId, jobState } from "../app.js";

const STATES = ["", "pending", "running", "done", "dead"];

export async function render(main) {
  const state = el("select", { id: "job-state", name: "state" },
    STATES.map((s) => el("option", { value: s }, s || "every state")));
  const box = el("div", {});

  const load = async (from) => {
    const query = new URLSearchParams({ limit: "100" });
    if (state.value) query.set("state", state.value);
    if (from) query.set("cursor", from);
    let jobs;
    let cursor;
    try {
      const response = await request(`/v1/jobs?${query}`);
      cursor = response.headers.get("x-next-cursor");
      jobs = await response.json();
    } catch (e) {
      box.replaceChildren(failure(e, "Listing jobs"));
      return null;
    }
    const rows = jobs.map((j) => {
      const logsCell = el("td", {});
      const logs = el("button", { type: "button", class: "logs-toggle" }, "Logs");
      logs.addEventListener("click", () => showLogs(j, logs, logsCell));
      logsCell.append(logs);
      return el("tr", { class: "job", "data-job-id": j.id, "data-state": j.state },
        el("td", {}, el("code", { title: j.id }, shortId(j.id))),
        el("td", {}, `${j.plugin}@${j.version}`),
        el("td", {}, blobLink(j.blob_id)),
        el("td", {}, jobState(j.state)),
        el("td", { class: "num" }, String(j.attempt)),
        el("td", {}, when(j.updated_at)),
        el("td", { class: "wrap" }, j.last_error || ""),
        el("td", {}, j.outputs.length ? j.outputs.flatMap((o, i) => (i ? [", ", blobLink(o)] : [blobLink(o)])) : ""),
        logsCell);
    });
    box.replaceChildren(rows.length
      ? table(["Job", "Plugin", "Input", "State", "Attempt", "Updated", "Last error", "Outputs", ""], rows, { id: "jobs" })
      : el("p", { class: "muted" }, "No jobs."));
    return cursor;
  };
  const pages = pager(load);
  main.append(heading("Jobs", el("label", { for: "job-state" }, "State"), state), box, pages.element);
  state.addEventListener("change", () => pages.show(null));
  await pages.show(null);
  return null;
}

async function showLogs(job, button, cell) {
  button.disabled = true;
  const old = cell.querySelector(".logs");
  if (old) {
    old.remove();
    button.disabled = false;
    return;
  }
  const box = el("div", { class: "logs" });
  cell.append(box);
  try {
    const attempts = await api(`/v1/jobs/${encodeURIComponent(job.id)}/logs`);
    if (!attempts.length) {
      box.append(el("p", { class: "muted" }, "This job logged nothing."));
    }
    for (const a of attempts) {
      box.append(
        el("h3", {}, `Attempt ${a.attempt}${a.truncated ? " (truncated)" : ""}`),
        el("pre", {}, a.lines.map((l) => `${l.level.padEnd(5)} ${l.message}`).join("\n")));
    }
  } catch (e) {
    box.append(failure(e, "Logs"));
  } finally {
    button.disabled = false;
  }
}
