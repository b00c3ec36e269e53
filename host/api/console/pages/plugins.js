// Plugins: every version the token sees with its state, counters and pause
// reason; enable and disable; the tenant's installations (on/off, config)
// for admins; and uploading a `.wasm` component (file input or drag and
// drop), showing a refusal exactly as the API words it.
import { api, el, failure, hasRole, heading, me, table, when, micros, ApiError } from "../app.js";

export async function render(main) {
  // The outcome's element is made when there is one, so its presence is the answer.
  const outcome = el("div", { class: "upload-outcome" });
  const file = el("input", { id: "plugin-file", type: "file", accept: ".wasm,application/wasm" });
  const drop = el("div", { id: "plugin-drop", class: "dropzone" },
    el("p", {}, "Drop a plugin component (.wasm) here, or choose one: "),
    file);
  const message = el("div", { id: "plugins-message" });
  const listBox = el("div", { id: "plugin-list" });
  const installBox = el("div", { id: "plugin-installations" });
  main.append(
    heading("Plugins"),
    el("section", {}, el("h2", {}, "Upload"), drop, outcome),
    message,
    el("section", {}, el("h2", {}, "Versions"), listBox),
    el("section", {}, el("h2", {}, "This tenant's installations"), installBox),
  );

  const refresh = async () => {
    await Promise.all([showVersions(listBox, message, refresh), showInstallations(installBox, message)]);
  };

  let uploading = false;
  const upload = async (chosen) => {
    if (!chosen || uploading) return;
    uploading = true;
    outcome.replaceChildren();
    try {
      const bytesRead = await chosen.arrayBuffer();
      const done = await api("/v1/plugins", { method: "POST", body: bytesRead, headers: { "Content-Type": "application/wasm" } });
      const p = done.plugin;
      await refresh();
      outcome.append(el("p", { id: "plugin-upload-ok", role: "status", class: "notice" }, done.created
        ? `Uploaded ${p.name}@${p.version} (${p.kind}); it is enabled.`
        : `${p.name}@${p.version} was uploaded before with the same bytes; nothing changed.`));
    } catch (e) {
      const detail = e instanceof ApiError && e.problem && e.problem.detail ? e.problem.detail : e.message;
      outcome.append(el("p", { id: "plugin-upload-error", role: "alert", class: "alert" }, detail));
    } finally {
      uploading = false;
      file.value = "";
    }
  };
  file.addEventListener("change", () => upload(file.files[0]));
  drop.addEventListener("dragover", (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    upload(e.dataTransfer.files[0]);
  });

  await refresh();
  return null;
}

async function showVersions(box, message, refresh) {
  let plugins;
  try {
    plugins = await api("/v1/plugins");
  } catch (e) {
    box.replaceChildren(failure(e, "Listing plugins"));
    return;
  }
  plugins.sort((a, b) => a.name.localeCompare(b.name) || b.created_at - a.created_at);
  const rows = plugins.map((p) => {
    const s = p.stats;
    const toggle = async (button, action) => {
      message.replaceChildren();
      button.disabled = true;
      try {
        await api(`/v1/plugins/${encodeURIComponent(p.name)}/${encodeURIComponent(p.version)}/${action}`, { method: "POST" });
        message.append(el("p", { class: "notice", role: "status" }, `${p.name}@${p.version} ${action}d.`));
        await refresh();
      } catch (e) {
        button.disabled = false;
        message.append(failure(e, `Could not ${action} ${p.name}@${p.version}`));
      }
    };
    const enable = el("button", { type: "button", class: "enable", disabled: p.enabled }, "Enable");
    const disable = el("button", { type: "button", class: "disable", disabled: !p.enabled }, "Disable");
    enable.addEventListener("click", () => toggle(enable, "enable"));
    disable.addEventListener("click", () => toggle(disable, "disable"));
    const avg = s.calls ? micros(Math.round(s.total_wall_us / s.calls)) : "";
    return el("tr", { class: "plugin", "data-plugin": p.name, "data-version": p.version },
      el("td", {}, el("strong", {}, p.name), el("div", { class: "muted" }, p.kind)),
      el("td", {}, p.version, el("div", { class: "muted" }, when(p.created_at))),
      el("td", {}, el("span", { class: p.enabled ? "badge ok" : "badge" }, p.enabled ? "enabled" : "disabled"),
        p.installed === false ? el("div", { class: "muted" }, "not installed here") : null,
        s.paused_reason ? el("div", { class: "wrap" }, el("span", { class: "badge bad" }, `paused: ${s.paused_reason}`)) : null),
      el("td", {}, p.owner ? `tenant ${p.owner}` : `global (${p.install})`),
      el("td", { class: "num" }, `${s.calls} / ${s.succeeded} / ${s.failed}`),
      el("td", { class: "num" }, `${s.retried} / ${s.dead_lettered} / ${s.reused}`),
      el("td", { class: "num" }, avg),
      // Only the action that changes something is offered.
      el("td", {}, p.enabled ? disable : enable));
  });
  box.replaceChildren(rows.length
    ? table(["Plugin", "Version", "State", "Owner", "Calls / ok / failed", "Retried / dead / reused", "Avg wall", ""], rows, { id: "plugins-table" })
    : el("p", { class: "muted" }, "No plugins yet."));
}

async function showInstallations(box, message) {
  const who = me();
  if (!who || !hasRole("admin")) {
    box.replaceChildren(el("p", { class: "muted" }, "Installations and their config are for the tenant's admin: this token is a " + (who ? who.role : "guest") + "."));
    return;
  }
  const base = `/v1/tenants/${encodeURIComponent(who.tenant)}/installations`;
  let installations;
  try {
    installations = await api(base);
  } catch (e) {
    box.replaceChildren(failure(e, "Listing installations"));
    return;
  }
  const rows = installations.map((inst) => {
    const path = `${base}/${encodeURIComponent(inst.plugin)}`;
    const toggle = el("button", { type: "button", class: "install-toggle" }, inst.enabled ? "Turn off" : "Turn on");
    toggle.addEventListener("click", async () => {
      message.replaceChildren();
      toggle.disabled = true;
      try {
        const now = await api(path, { method: "PUT", json: { enabled: !inst.enabled } });
        Object.assign(inst, now);
        toggle.textContent = inst.enabled ? "Turn off" : "Turn on";
        state.replaceChildren(installState(inst));
      } catch (e) {
        message.append(failure(e, `Installation of ${inst.plugin}`));
      } finally {
        toggle.disabled = false;
      }
    });
    const editor = el("textarea", { class: "config", rows: 3, spellcheck: "false", "aria-label": `Config of ${inst.plugin}` },
      Object.entries(inst.config).map(([k, v]) => `${k}=${v}`).join("\n"));
    const save = el("button", { type: "button", class: "config-save" }, "Save config");
    save.addEventListener("click", async () => {
      message.replaceChildren();
      const config = {};
      for (const line of editor.value.split("\n")) {
        if (!line.trim()) continue;
        const eq = line.indexOf("=");
        if (eq <= 0) {
          message.append(el("p", { class: "alert", role: "alert" }, `Config lines are key=value; “${line}” is not.`));
          return;
        }
        config[line.slice(0, eq).trim()] = line.slice(eq + 1);
      }
      if (Object.values(config).includes("[redacted]")) {
        message.append(el("p", { class: "alert", role: "alert" }, "A value still reads [redacted]: saving it would replace the real value. Remove that line or give the value."));
        return;
      }
      save.disabled = true;
      try {
        await api(`${path}/config`, { method: "PUT", json: { config } });
        message.append(el("p", { class: "notice", role: "status" }, `Config of ${inst.plugin} saved.`));
      } catch (e) {
        message.append(failure(e, `Config of ${inst.plugin}`));
      } finally {
        save.disabled = false;
      }
    });
    const state = el("div", {}, installState(inst));
    return el("tr", { class: "installation", "data-plugin": inst.plugin },
      el("td", {}, el("strong", {}, inst.plugin)),
      el("td", {}, state, toggle),
      el("td", { class: "wrap" }, editor, save,
        inst.secrets.length ? el("div", { class: "muted" }, "Secrets: ", inst.secrets.map((s) => `${s.name}${s.set ? ` (v${s.version})` : " (unset)"}`).join(", ")) : null));
  });
  box.replaceChildren(rows.length
    ? table(["Plugin", "Installed", "Config (key=value per line)"], rows)
    : el("p", { class: "muted" }, "No installations."));
}

function installState(inst) {
  return [
    el("span", { class: inst.enabled ? "badge ok" : "badge" }, inst.enabled ? "on" : "off"),
    inst.explicit ? null : el("span", { class: "muted" }, " (by install policy)"),
    inst.paused
      ? el("div", { class: "alert" }, `Paused: ${inst.paused.reason} (version ${inst.paused.version}); probe ${new Date(inst.paused.probe_at).toLocaleTimeString()}`)
      : null,
  ];
}
