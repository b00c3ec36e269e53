// Studio: the Book Writer. Write a chapter on the left; it goes to the host
// as a `text-input-v1` blob over one WebSocket (`/v1/ws`), and every blob
// the plugins derive from it (the expansion, the chapter, word stats)
// appears on the right as it is made. The book's chapters are listed from
// the blob filter (`GET /v1/blobs?schema=chapter-v1&field=/book_id&value=`),
// and Compile asks `book-compile` for the whole book.

import { api, el, token, wsUrl, shortId } from "../app.js";
import { adoptStyles } from "../lineage.js";

const STYLES = `
.studio { display: grid; gap: 1rem; grid-template-columns: minmax(0, 1fr); align-items: start; }
@media (min-width: 900px) { .studio { grid-template-columns: minmax(0, 2fr) minmax(0, 3fr); } }
.studio-form { display: grid; gap: 0.5rem; min-width: 0; }
.studio-form .row { display: flex; flex-wrap: wrap; gap: 0.5rem; }
.studio-form .row label { display: grid; gap: 0.2rem; flex: 1 1 8rem; min-width: 0; }
.studio-form input, .studio-form select, .studio-form textarea { width: 100%; max-width: 100%; font: inherit; }
#studio-text { min-height: 12rem; resize: vertical; }
#studio-output { display: grid; gap: 0.75rem; min-width: 0; }
#studio-output .derived { min-width: 0; overflow-wrap: anywhere; }
#studio-output .derived header { display: flex; flex-wrap: wrap; gap: 0.25rem 0.75rem; align-items: baseline; }
#studio-output .expanded { white-space: pre-wrap; max-height: 24rem; overflow: auto; }
#studio-output dl { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: 0.1rem 0.75rem; margin: 0.5rem 0 0; }
#studio-output dd { margin: 0; }
#studio-chapters { margin: 0.25rem 0; padding-left: 1.25rem; }
.studio-status { font-size: 0.85rem; }
`;


/** Most pages of chapters listed (the filter answers 100 a page). */
const MAX_CHAPTER_PAGES = 20;
/** Wait before opening the socket again after it dropped. */
const RECONNECT_MS = 2000;

function randomBook() {
  const bytes = crypto.getRandomValues(new Uint8Array(3));
  return `book-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

function facts(pairs) {
  return el("dl", {}, pairs.filter(([, v]) => v !== undefined && v !== null && v !== "").map(([k, v]) => [el("dt", {}, k), el("dd", {}, String(v))]));
}

function number(n, digits = 1) {
  return typeof n === "number" ? n.toFixed(digits) : n;
}

/** What a derived blob's card shows, by schema. */
function body(schema, data) {
  switch (schema) {
    case "expanded-text-v1":
      return [
        el("p", { class: "expanded" }, data.expanded ?? ""),
        facts([
          ["Expansion", data.expansion_ratio !== undefined ? `${number(data.expansion_ratio, 2)}×` : null],
          ["Readability", number(data.metrics?.readability_score)],
          ["Complexity", data.metrics?.complexity],
          ["Tone", data.metrics?.tone],
          ["Method", data.model ? `${data.method} (${data.model})` : data.method],
          ["Chapter", data.metadata?.chapter],
        ]),
      ];
    case "word-stats-v1":
      return facts([
        ["Of", data.source_schema],
        ["Words", data.words],
        ["Sentences", data.sentences],
        ["Characters", data.characters],
        ["Words / sentence", number(data.avg_words_per_sentence)],
        ["Reading ease", number(data.flesch_reading_ease)],
      ]);
    case "chapter-v1":
      return facts([
        ["Book", data.book_id],
        ["Chapter", data.index],
        ["Title", data.title],
        ["Words", typeof data.text === "string" ? data.text.split(/\s+/).filter(Boolean).length : null],
      ]);
    case "compiled-book-v1":
      return [
        facts([
          ["Book", data.book_id],
          ["Title", data.title],
          ["Chapters", Array.isArray(data.chapters) ? data.chapters.map((c) => c.index).join(", ") : null],
          ["Words", data.words],
        ]),
        el("p", { class: "expanded" }, data.text ?? ""),
      ];
    default:
      return el("pre", {}, JSON.stringify(data, null, 2));
  }
}

export async function render(main) {
  adoptStyles(STYLES);
  const book = el("input", { id: "studio-book", name: "book", value: randomBook(), maxlength: 128, required: true, spellcheck: "false" });
  const chapter = el("input", { id: "studio-chapter", name: "chapter", type: "number", min: 1, step: 1, value: 1, required: true });
  const style = el("select", { id: "studio-style", name: "style" },
    ["formal", "casual", "creative"].map((s) => el("option", { value: s }, s)));
  const text = el("textarea", { id: "studio-text", name: "text", rows: 10, placeholder: "Write a chapter (at least 10 characters), then Send or Ctrl+Enter." });
  const send = el("button", { id: "studio-send", type: "submit", class: "primary", disabled: true }, "Send");
  const errors = el("div", { id: "studio-error" });
  const status = el("p", { class: "studio-status muted", "aria-live": "polite" }, "Connecting…");
  const chapters = el("ol", { id: "studio-chapters" });
  const chaptersNote = el("p", { class: "muted" }, "No chapters yet.");
  const title = el("input", { id: "studio-title", name: "title", placeholder: "Book title (default: the book id)" });
  const compile = el("button", { id: "studio-compile", type: "button", disabled: true }, "Compile book");
  const output = el("div", { id: "studio-output", "aria-live": "polite" });
  const empty = el("p", { class: "muted" }, "Derived blobs appear here as the plugins make them, newest first.");
  output.append(empty);

  const form = el("form", { class: "studio-form card", onsubmit: (e) => { e.preventDefault(); submit(); } },
    el("div", { class: "row" },
      el("label", { for: "studio-book" }, "Book", book),
      el("label", { for: "studio-chapter" }, "Chapter", chapter),
      el("label", { for: "studio-style" }, "Style", style)),
    el("label", { for: "studio-text" }, "Text"),
    text,
    el("div", { class: "row" }, send),
    errors,
    status,
    el("h2", {}, "Chapters of this book"),
    chaptersNote,
    chapters,
    el("div", { class: "row" }, title, compile));
  main.append(
    el("div", { class: "page-head" }, el("h1", {}, "Studio")),
    el("div", { class: "studio" }, form, el("section", { "aria-label": "Derived blobs" }, output)));

  // ---- the socket -------------------------------------------------------------
  let socket = null;
  let ready = false;
  let closed = false;
  let retry = null;
  let requests = 0;
  const pending = new Map(); // request id -> what it was ("text" or "compile")
  const shown = new Set(); // derived blob ids already on the page
  // When the user sent what a blob descends from (performance.now()): by
  // request id until the host answers, then by blob id, handed down to each
  // derived blob, so every card says how long it took to appear.
  const sentAt = new Map();

  const setStatus = (message) => { status.textContent = message; };
  const setReady = (value) => {
    ready = value;
    send.disabled = !value;
    compile.disabled = !value || chapters.childElementCount === 0;
  };

  function connect() {
    socket = new WebSocket(wsUrl());
    const mine = socket;
    mine.addEventListener("open", () => mine.send(JSON.stringify({ type: "auth", token: token() })));
    mine.addEventListener("message", (e) => {
      let message;
      try {
        message = JSON.parse(e.data);
      } catch {
        return;
      }
      onMessage(message);
    });
    mine.addEventListener("close", (e) => {
      if (mine !== socket) return;
      setReady(false);
      if (closed) return;
      setStatus(`Disconnected${e.reason ? ` (${e.reason})` : ""}; reconnecting…`);
      retry = setTimeout(connect, RECONNECT_MS);
    });
  }

  function onMessage(message) {
    switch (message.type) {
      case "authenticated":
        setStatus(`Connected as ${message.tenant} (${message.role}).`);
        setReady(true);
        break;
      case "created": {
        const what = pending.get(message.request_id);
        pending.delete(message.request_id);
        if (sentAt.has(message.request_id)) {
          sentAt.set(message.id, sentAt.get(message.request_id));
          sentAt.delete(message.request_id);
        }
        // The next chapter is the likely next one to write.
        if (what === "text" && Number.isInteger(Number.parseInt(chapter.value, 10))) {
          chapter.value = String(Number.parseInt(chapter.value, 10) + 1);
        }
        setStatus(what === "compile"
          ? `Compile request ${shortId(message.id)} stored; waiting for the book…`
          : `Sent as blob ${shortId(message.id)}; waiting for the plugins…`);
        break;
      }
      case "error":
        pending.delete(message.request_id);
        sentAt.delete(message.request_id);
        showProblem(message.problem);
        break;
      case "blob.derived":
        showDerived(message);
        break;
      case "lagged":
        setStatus(`The host dropped this connection: ${message.reason}`);
        break;
      default:
        break;
    }
  }

  function showProblem(problem) {
    const detail = problem?.detail || problem?.title || "refused";
    const violations = Array.isArray(problem?.errors) ? problem.errors : [];
    errors.replaceChildren(el("div", { class: "alert", role: "alert" },
      detail,
      violations.length ? el("ul", {}, violations.map((v) => el("li", { class: "violation" }, el("code", { class: "pointer" }, v.pointer || "/"), ` ${v.message}`))) : null));
  }

  async function showDerived(message) {
    const id = message.derived_id;
    if (shown.has(id)) return;
    shown.add(id);
    const since = sentAt.get(message.parent_id);
    const latency = since === undefined ? null : Math.round(performance.now() - since);
    if (since !== undefined) sentAt.set(id, since);
    const card = el("article", { class: "derived card", "data-schema": message.schema, "data-blob-id": id },
      el("header", {},
        el("strong", {}, message.schema),
        el("span", { class: "muted" }, `by ${message.processor}@${message.version}`),
        latency === null ? null : el("span", { class: "muted latency", "data-latency-ms": String(latency), title: "from Send to this card" }, `${latency} ms`),
        el("a", { href: `#/blobs/${id}`, class: "id", title: id }, shortId(id)),
        message.schema === "compiled-book-v1" ? el("a", { href: `#/blobs/${id}`, class: "lineage" }, "Lineage") : null),
      el("p", { class: "muted" }, "Loading…"));
    empty.remove();
    output.prepend(card);
    try {
      const data = await api(`/v1/blobs/${encodeURIComponent(id)}/data`);
      card.lastChild.replaceWith(el("div", {}, body(message.schema, data)));
    } catch (e) {
      card.lastChild.replaceWith(el("p", { class: "alert", role: "alert" }, e.message));
    }
    if (message.schema === "chapter-v1") refreshChapters();
    if (message.schema === "compiled-book-v1") setStatus(`Book compiled: ${shortId(id)}.`);
  }

  function sendMessage(what, schema, data) {
    if (!ready || socket.readyState !== WebSocket.OPEN) {
      showProblem({ detail: "not connected to the host yet; try again in a moment" });
      return false;
    }
    const requestId = `studio-${++requests}`;
    pending.set(requestId, what);
    sentAt.set(requestId, performance.now());
    socket.send(JSON.stringify({ type: "create_blob", request_id: requestId, schema, data }));
    return true;
  }

  function submit() {
    errors.replaceChildren();
    const index = Number.parseInt(chapter.value, 10);
    const metadata = { book_id: book.value.trim(), style: style.value };
    if (Number.isInteger(index)) metadata.chapter = index;
    if (sendMessage("text", "text-input-v1", { content: text.value, metadata })) {
      setStatus("Sending…");
    }
  }

  // ---- the book's chapters -------------------------------------------------------
  const chapterData = new Map(); // blob id -> chapter-v1 data
  let listing = 0;

  async function refreshChapters() {
    const mine = ++listing;
    const bookId = book.value.trim();
    const found = [];
    try {
      let cursor = null;
      for (let page = 0; page < MAX_CHAPTER_PAGES && bookId; page += 1) {
        const query = new URLSearchParams({ schema: "chapter-v1", field: "/book_id", value: bookId });
        if (cursor) query.set("cursor", cursor);
        const result = await api(`/v1/blobs?${query}`);
        found.push(...result.items);
        cursor = result.next_cursor;
        if (!cursor) break;
      }
      for (const blob of found) {
        if (!chapterData.has(blob.id)) chapterData.set(blob.id, await api(`/v1/blobs/${encodeURIComponent(blob.id)}/data`));
      }
    } catch (e) {
      if (mine === listing) {
        chaptersNote.textContent = `The chapters could not be listed: ${e.message}`;
        chaptersNote.hidden = false;
      }
      return;
    }
    if (mine !== listing) return;
    // One entry per chapter number: the newest text of it.
    const byIndex = new Map();
    for (const blob of found) byIndex.set(chapterData.get(blob.id).index, blob);
    const ordered = [...byIndex.entries()].sort((a, b) => a[0] - b[0]);
    // Entries already listed stay the same elements (a reader, or a test,
    // holding one keeps it); new ones are made.
    const listed = new Map([...chapters.children].map((li) => [li.dataset.blobId, li]));
    chapters.replaceChildren(...ordered.map(([index, blob]) =>
      listed.get(blob.id) || el("li", { "data-blob-id": blob.id, "data-index": index },
        el("a", { href: `#/blobs/${blob.id}` }, chapterData.get(blob.id).title || `Chapter ${index}`))));
    chaptersNote.textContent = "No chapters yet.";
    chaptersNote.hidden = ordered.length > 0;
    compile.disabled = !ready || ordered.length === 0;
  }

  let typing = null;
  book.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(refreshChapters, 400);
  });
  text.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      submit();
    }
  });
  compile.addEventListener("click", () => {
    errors.replaceChildren();
    const expected = chapters.childElementCount;
    const bookId = book.value.trim();
    const data = { book_id: bookId, title: title.value.trim() || bookId };
    if (expected > 0) data.expected_chapters = expected;
    if (sendMessage("compile", "book-compile-request-v1", data)) setStatus("Compiling…");
  });

  connect();
  await refreshChapters();
  return () => {
    closed = true;
    clearTimeout(retry);
    clearTimeout(typing);
    if (socket) socket.close(1000, "left the page");
  };
}
