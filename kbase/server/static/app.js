// The kbase web page: ask (now or as of a date), browse facts, a fact's timeline,
// documents with their edits and a Forget button. Plain DOM, no build step; every
// value is inserted as text, and only http(s) links are made clickable.
"use strict";

const view = document.getElementById("view");

// -- small helpers ------------------------------------------------------------------
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function safeUrl(url) {
  return typeof url === "string" && /^https?:\/\//i.test(url) ? url : null;
}

function external(url, label) {
  const href = safeUrl(url);
  return href ? el("a", { href, target: "_blank", rel: "noopener noreferrer" }, label || url) : null;
}

const docHref = (id) => `#/documents/${encodeURIComponent(id)}`;
const factHref = (id) => `#/facts/${encodeURIComponent(id)}`;
const docLink = (id, label) => el("a", { href: docHref(id), class: "doc" }, label || id);

class ApiError extends Error {}

async function api(method, path, body) {
  const options = { method, headers: { accept: "application/json" } };
  if (body !== undefined) {
    options.headers["content-type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  let data = null;
  try {
    data = await response.json();
  } catch (_) {
    /* not JSON */
  }
  if (!response.ok) {
    throw new ApiError((data && data.error) || `${response.status} ${response.statusText}`);
  }
  return data;
}

function errorBox(error) {
  return el("p", { class: "error", role: "alert" }, error instanceof ApiError ? error.message : String(error));
}

function show(...nodes) {
  view.replaceChildren(...nodes);
}

function setNav(name) {
  for (const link of document.querySelectorAll("[data-nav]")) {
    link.classList.toggle("active", link.dataset.nav === name);
  }
}

async function refreshTotals() {
  try {
    const stats = await api("GET", "/stats");
    document.getElementById("totals").textContent =
      `${stats.documents} documents · ${stats.facts_current} current facts · ${stats.facts_closed} closed`;
  } catch (_) {
    document.getElementById("totals").textContent = "";
  }
}

function dated(published) {
  return published ? el("time", { datetime: published }, published) : el("span", { class: "muted" }, "undated");
}

// -- ask ------------------------------------------------------------------------------
let lastAsk = { question: "", as_of: "" };

function askView() {
  setNav("ask");
  const question = el("input", {
    id: "question", type: "text", name: "question", required: true, autocomplete: "off",
    placeholder: "Who is the chief executive of Acme Robotics?", value: lastAsk.question,
  });
  const asOf = el("input", { id: "as-of", type: "date", name: "as_of", value: lastAsk.as_of });
  const result = el("section", { id: "answer" });
  const button = el("button", { type: "submit", id: "ask-button" }, "Ask");
  const form = el(
    "form",
    { id: "ask-form", class: "ask", onsubmit: (event) => { event.preventDefault(); ask(); } },
    el("label", { for: "question", class: "grow" }, "Question", question),
    el("label", { for: "as-of" }, "As of (optional)", asOf),
    button,
  );

  async function ask() {
    const text = question.value.trim();
    if (!text) return;
    lastAsk = { question: text, as_of: asOf.value };
    button.disabled = true;
    result.replaceChildren(el("p", { class: "muted" }, "Thinking…"));
    const body = { question: text };
    if (asOf.value) body.as_of = asOf.value;
    try {
      result.replaceChildren(...answerNodes(await api("POST", "/ask", body), asOf.value));
    } catch (error) {
      result.replaceChildren(errorBox(error));
    } finally {
      button.disabled = false;
    }
  }

  show(el("h1", {}, "Ask"), form, result);
  question.focus();
}

function answerNodes(answer, asOf) {
  const sources = answer.citations.map((c, i) =>
    el("li", { class: "source" },
      el("span", { class: "num" }, `[${i + 1}]`), " ",
      docLink(c.doc_id, c.title || c.doc_id), " · ", dated(c.published),
      safeUrl(c.url) ? [" · ", external(c.url, new URL(c.url).hostname)] : null,
    ));
  const facts = answer.facts.map((f) =>
    el("li", {}, el("a", { href: factHref(f.id) }, f.text), " ", el("span", { class: "muted" }, `(${f.doc_id})`)));
  return [
    el("div", { class: "card answer" },
      asOf ? el("p", { class: "muted" }, `As the knowledge base stood on ${asOf}:`) : null,
      el("p", { class: "answer-text", id: "answer-text" }, answer.answer)),
    el("h2", {}, "Sources"),
    sources.length ? el("ol", { class: "sources", id: "sources" }, sources) : el("p", { class: "muted" }, "No sources cited."),
    facts.length ? el("details", {}, el("summary", {}, `${facts.length} fact${facts.length === 1 ? "" : "s"} retrieved`), el("ul", { class: "facts" }, facts)) : null,
  ];
}

// -- facts ----------------------------------------------------------------------------
async function factsView(params) {
  setNav("facts");
  const all = params.get("all") === "1";
  const toggle = el("a", { href: all ? "#/facts" : "#/facts?all=1", id: "toggle-closed" },
    all ? "Current facts only" : "Include closed versions");
  show(el("h1", {}, "Facts"), el("p", {}, toggle), el("p", { class: "muted" }, "Loading…"));
  try {
    const rows = await api("GET", `/facts${all ? "?all=true" : ""}`);
    const table = el("table", { id: "facts-table" },
      el("thead", {}, el("tr", {}, el("th", {}, "Fact"), el("th", {}, "From"), el("th", {}, "State"))),
      el("tbody", {}, rows.map((f) =>
        el("tr", { class: f.current ? "" : "closed" },
          el("td", {}, el("a", { href: factHref(f.id), class: "fact" }, f.text)),
          el("td", {}, docLink(f.doc_id)),
          el("td", {}, f.current ? el("span", { class: "badge current" }, "current")
            : el("span", { class: "badge" }, f.close_reason || "closed"))))));
    show(el("h1", {}, "Facts"), el("p", {}, toggle),
      rows.length ? table : el("p", { class: "muted" }, "No facts yet: ingest some documents."));
  } catch (error) {
    show(el("h1", {}, "Facts"), errorBox(error));
  }
}

async function timelineView(factId) {
  setNav("facts");
  show(el("h1", {}, "Timeline"), el("p", { class: "muted" }, "Loading…"));
  try {
    const { versions } = await api("GET", `/facts/${encodeURIComponent(factId)}/history`);
    const items = versions.map((v) => {
      const until = v.valid_until
        ? [dated(v.valid_until.published), " (", docLink(v.valid_until.doc_id), ")"]
        : [el("strong", {}, "now")];
      const closed = v.closed_by
        ? el("p", {}, `${v.close_reason || "closed"} by `, docLink(v.closed_by))
        : null;
      return el("li", { class: `version ${v.current ? "current" : "closed"}`, id: `version-${v.id}` },
        el("div", { class: "when" }, dated(v.valid_from.published), " → ", until),
        el("div", { class: "card" },
          el("p", { class: "version-text" }, v.text, " ",
            v.current ? el("span", { class: "badge current" }, "current") : el("span", { class: "badge" }, v.close_reason || "closed")),
          el("p", {}, "created by ", docLink(v.created_by),
            v.valid_from.doc_id !== v.created_by ? [" (valid from ", docLink(v.valid_from.doc_id), ")"] : null),
          closed,
          el("ul", { class: "evidence" }, v.evidence.map((e) =>
            el("li", {}, el("span", { class: `relation ${e.relation}` }, e.relation), " ", docLink(e.doc_id), " · ", dated(e.published))))));
    });
    show(el("h1", {}, "Timeline of a fact"),
      el("p", { class: "muted" }, `${versions.length} version${versions.length === 1 ? "" : "s"}, oldest first`),
      el("ol", { class: "timeline", id: "timeline" }, items));
  } catch (error) {
    show(el("h1", {}, "Timeline"), errorBox(error));
  }
}

// -- documents ------------------------------------------------------------------------
async function documentsView() {
  setNav("documents");
  show(el("h1", {}, "Documents"), el("p", { class: "muted" }, "Loading…"));
  try {
    const docs = await api("GET", "/documents");
    const table = el("table", { id: "documents-table" },
      el("thead", {}, el("tr", {}, el("th", {}, "Published"), el("th", {}, "Title"), el("th", {}, "Id"))),
      el("tbody", {}, docs.map((d) =>
        el("tr", {},
          el("td", {}, dated(d.published)),
          el("td", {}, docLink(d.doc_id, d.title || d.doc_id)),
          el("td", { class: "muted" }, d.doc_id)))));
    show(el("h1", {}, "Documents"),
      docs.length ? table : el("p", { class: "muted" }, "No documents yet: POST some to /documents or run kb ingest."));
  } catch (error) {
    show(el("h1", {}, "Documents"), errorBox(error));
  }
}

async function documentView(docId) {
  setNav("documents");
  show(el("h1", {}, docId), el("p", { class: "muted" }, "Loading…"));
  let doc;
  try {
    doc = await api("GET", `/documents/${encodeURIComponent(docId)}`);
  } catch (error) {
    show(el("h1", {}, docId), errorBox(error));
    return;
  }
  const receipt = el("section", { id: "receipt" });
  const actions = el("div", { class: "actions" });

  function askFirst() {
    actions.replaceChildren(
      el("span", {}, "Forget this document as if it had never been ingested? "),
      el("button", { class: "danger", id: "confirm-forget", onclick: forget }, "Yes, forget it"), " ",
      el("button", { id: "cancel-forget", onclick: idle }, "Cancel"));
  }
  function idle() {
    actions.replaceChildren(el("button", { class: "danger", id: "forget", onclick: askFirst }, "Forget"));
  }
  async function forget() {
    actions.replaceChildren(el("span", { class: "muted" }, "Forgetting…"));
    try {
      const r = await api("DELETE", `/documents/${encodeURIComponent(docId)}`);
      actions.replaceChildren();
      receipt.replaceChildren(receiptCard(r));
      title.append(" ", el("span", { class: "badge" }, "forgotten"));
      stored.replaceChildren(el("p", { class: "muted" },
        "No longer stored: its facts and edits are gone, as if it had never been ingested."));
      refreshTotals();
    } catch (error) {
      idle();
      receipt.replaceChildren(errorBox(error));
    }
  }
  idle();

  const edits = doc.edits.map((e) =>
    el("tr", {},
      el("td", {}, el("span", { class: `relation ${e.relation}` }, e.relation)),
      el("td", {}, el("a", { href: factHref(e.fact_id) }, e.text))));
  const title = el("h1", {}, doc.title || doc.doc_id);
  const stored = el("section", { id: "stored" },
    el("h2", {}, "Edits it caused"),
    edits.length ? el("table", { id: "edits-table" }, el("tbody", {}, edits)) : el("p", { class: "muted" }, "None."),
    el("h2", {}, "Text"),
    el("blockquote", { class: "text" }, doc.text));
  show(
    title,
    el("dl", { class: "meta" },
      el("dt", {}, "Id"), el("dd", {}, doc.doc_id),
      el("dt", {}, "Published"), el("dd", {}, dated(doc.published)),
      el("dt", {}, "Received"), el("dd", {}, doc.ingested_at + (doc.version > 1 ? ` (version ${doc.version})` : "")),
      el("dt", {}, "Source"), el("dd", {}, doc.source),
      safeUrl(doc.url) ? [el("dt", {}, "Link"), el("dd", {}, external(doc.url))] : null,
      el("dt", {}, "LLM"), el("dd", {}, `${doc.llm_calls} calls, ${doc.prompt_tokens} prompt tokens, ${doc.model_seconds.toFixed(1)} s`)),
    actions,
    receipt,
    stored,
  );
}

function receiptCard(r) {
  const row = (label, value) => [el("dt", {}, label), el("dd", {}, String(value))];
  return el("div", { class: `card receipt ${r.verify_ok ? "ok" : "bad"}`, id: "receipt-card" },
    el("h2", {}, `Forgot ${r.forgotten.join(", ")}`),
    el("dl", { class: "meta" },
      row("Facts removed", r.facts_removed),
      row("Facts restored", r.facts_restored),
      row("Later documents replayed", r.documents_replayed),
      row("Answers from the record", r.replayed_calls),
      row("Model calls", r.model_calls),
      row("Few-shot selection", r.fewshot_changed ? "changed" : "unchanged"),
      row("Verify", r.verify_ok ? "ok: the index and SQL agree" : `problems: ${r.verify_problems.join("; ")}`),
      row("Took", `${r.seconds.toFixed(2)} s`)),
    el("p", {}, el("a", { href: "#/documents" }, "Back to the documents")));
}

// -- routing --------------------------------------------------------------------------
function route() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "facts" && parts.length === 2) return timelineView(parts[1]);
  if (parts[0] === "facts") return factsView(params);
  if (parts[0] === "documents" && parts.length >= 2) return documentView(parts.slice(1).join("/"));
  if (parts[0] === "documents") return documentsView();
  return askView();
}

window.addEventListener("hashchange", () => { route(); refreshTotals(); });
route();
refreshTotals();
