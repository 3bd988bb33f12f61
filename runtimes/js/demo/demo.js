// The demo: pick items, see this device's recommendations for that history, live. The artifact
// folder comes from ?artifact= (default /artifact/, what `edgegnn demo` serves), k from ?k=.

import {open} from "/src/browser.js";

const params = new URLSearchParams(location.search);
const K = Number(params.get("k") ?? 10);
const CATALOG_SHOWN = 60;
const $ = (id) => document.getElementById(id);
const history = [];

const status = $("status");
let rec;
try {
  const started = performance.now();
  rec = await open(params.get("artifact") ?? "/artifact/", {wasmPaths: "/ort/"});
  const m = rec.manifest;
  status.textContent = `${m.model?.kind ?? "model"} · ${m.precision} · ${rec.numItems.toLocaleString()} items · ` +
    `${Object.keys(m.files).length} files verified (sha256) · loaded in ${Math.round(performance.now() - started)} ms`;
} catch (error) {
  status.textContent = `cannot open the artifact: ${error.message}`;
  throw error;
}

/** Catalog rows to show: the most popular first (the manifest's list), else the first rows. */
function shownRows(filter) {
  const rows = [];
  const popular = rec.manifest.popularity?.rows ?? [];
  const order = filter ? null : popular.concat([...Array(Math.min(rec.numItems, CATALOG_SHOWN)).keys()]);
  const seen = new Set();
  const candidates = order ?? [...Array(rec.numItems).keys()];
  for (const row of candidates) {
    if (rows.length >= CATALOG_SHOWN) break;
    const id = rec.items.idOf(row);
    if (seen.has(row) || (filter && !id.toLowerCase().includes(filter))) continue;
    seen.add(row);
    rows.push(id);
  }
  return rows;
}

function renderCatalog() {
  const ids = shownRows($("search").value.trim().toLowerCase());
  $("catalog").replaceChildren(...ids.map((id) => {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = id;
    button.dataset.item = id;
    button.addEventListener("click", () => pick(id));
    return button;
  }));
}

async function pick(id) {
  history.push(id);
  await refresh();
}

async function refresh() {
  $("history").replaceChildren(...history.map((id) => Object.assign(document.createElement("li"), {textContent: id})));
  const started = performance.now();
  const result = await rec.recommend(history, K);
  const ms = performance.now() - started;
  $("timing").textContent = result.fallback ? "no history yet: the most popular items"
    : `answered in ${ms.toFixed(1)} ms in this browser`;
  $("recommendations").replaceChildren(...result.items.map(({id, score}) => {
    const li = document.createElement("li");
    li.dataset.item = id;
    li.append(id, Object.assign(document.createElement("span"), {className: "score", textContent: score.toFixed(4)}));
    li.addEventListener("click", () => pick(id));
    return li;
  }));
  document.body.dataset.answered = String(history.length);      // for the browser test: this history is shown
  window.edgegnnDemo = {history: [...history], items: result.items};
}

$("search").addEventListener("input", renderCatalog);
$("clear").addEventListener("click", async () => { history.length = 0; await refresh(); });
renderCatalog();
await refresh();
status.dataset.ready = "true";
