// The edgegnn artifact format (docs/artifact.md) in plain JavaScript: the manifest checks, the
// .npy item index, and the Recommender's query semantics. No I/O and no dependency: node.js
// and browser.js read the files and hand over an ONNX Runtime session (onnxruntime-node or
// onnxruntime-web: the same API) and its Tensor class.
//
// Written by hand because no npm package reads the artifact: the .npy parser handles the
// three dtypes the index uses (|S{w}, <i4, and <i8/<f4 for completeness), nothing else.

export const FORMAT = "edgegnn-artifact";
export const SCHEMA_VERSION = 1;
export const MANIFEST = "manifest.json";
export const CLASS_OUTPUT = "class_probabilities";
export const INDEX_FILES = ["items.npy", "items_sorted.npy", "items_sorted_rows.npy"];
const REQUIRED = ["files", "model_file", "inputs", "outputs", "top_k", "variant", "num_items", "target"];

/** A damaged, foreign or too-new artifact; `hint` says what to do. */
export class ArtifactError extends Error {
  constructor(message, hint) {
    super(hint ? `${message} (${hint})` : message);
    this.name = "ArtifactError";
    this.hint = hint;
  }
}

/** A query the artifact cannot answer as asked (bad k, bad history). */
export class RecommendError extends Error {
  constructor(message) {
    super(message);
    this.name = "RecommendError";
  }
}

/** Parse manifest.json's text and check what this runtime reads (format, version, fields). */
export function parseManifest(text, where = MANIFEST) {
  let manifest;
  try {
    manifest = JSON.parse(text);
  } catch (error) {
    throw new ArtifactError(`${where}: damaged manifest (${error.message})`);
  }
  if (manifest === null || typeof manifest !== "object" || manifest.format !== FORMAT) {
    throw new ArtifactError(`${where}: not an edgegnn artifact manifest (format is not '${FORMAT}')`);
  }
  const version = manifest.schema_version;
  if (!Number.isInteger(version) || version < 1) {
    throw new ArtifactError(`${where}: schema_version=${JSON.stringify(version)} is invalid`);
  }
  if (version > SCHEMA_VERSION) {
    throw new ArtifactError(`${where}: manifest schema version ${version} is newer than this runtime supports ` +
                            `(${SCHEMA_VERSION})`, "upgrade @edgegnn/runtime to open this artifact");
  }
  for (const key of REQUIRED) {
    if (!(key in manifest)) throw new ArtifactError(`${where}: the manifest has no '${key}'`);
  }
  for (const name of Object.keys(manifest.files)) {
    if (name.includes("/") || name.includes("\\") || name === "." || name === "..") {
      throw new ArtifactError(`${where}: file entry ${JSON.stringify(name)} is not a plain file name`);
    }
  }
  if (manifest.kind !== "onnx") {
    throw new ArtifactError(`${where}: a ${manifest.kind} artifact; the JavaScript runtime runs ONNX artifacts`,
                            "export for a target whose runtime is onnxruntime, e.g. --target cpu-x86_64");
  }
  return manifest;
}

/** Check one file's size and sha256 (hex) against its manifest entry. */
export function checkFile(name, entry, size, sha256) {
  if (size !== entry.bytes) {
    throw new ArtifactError(`${name}: size ${size} bytes, the manifest says ${entry.bytes}: the file is truncated ` +
                            "or was changed", "export the artifact again");
  }
  if (sha256 !== entry.sha256) {
    throw new ArtifactError(`${name}: sha256 does not match the manifest: the file was changed or is damaged`,
                            "export the artifact again");
  }
}

/** Lowercase hex of a byte array (a digest). */
export function hex(bytes) {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * A .npy file (numpy's format 1.0-3.0): {descr, shape, data}. data is a Uint8Array of the raw
 * bytes for |S{w} (fixed-width, NUL-padded), else an Int32Array / BigInt64Array / Float32Array.
 */
export function parseNpy(bytes, name = "array.npy") {
  const u8 = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];       // \x93NUMPY
  if (u8.length < 10 || magic.some((b, i) => u8[i] !== b)) throw new ArtifactError(`${name}: not a .npy file`);
  const view = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
  const major = u8[6];
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  const header = new TextDecoder("latin1").decode(u8.subarray(start, start + headerLength));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || fortran !== "False" || shapeText === undefined) {
    throw new ArtifactError(`${name}: unsupported .npy header ${header.trim()}`);
  }
  const shape = shapeText.split(",").map((s) => s.trim()).filter(Boolean).map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  const body = u8.subarray(start + headerLength);
  const typed = {"<i4": Int32Array, "<i8": BigInt64Array, "<f4": Float32Array}[descr];
  if (/^\|S\d+$/.test(descr)) {
    const width = Number(descr.slice(2));
    return {descr, shape, width, data: body.subarray(0, count * width)};
  }
  if (!typed) throw new ArtifactError(`${name}: unsupported dtype ${descr}`);
  const copy = body.slice(0, count * typed.BYTES_PER_ELEMENT);   // aligned for the typed view
  return {descr, shape, data: new typed(copy.buffer, 0, count)};
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8");

/**
 * Row <-> raw item id over the index files: items.npy (id of row r, UTF-8 NUL-padded to w
 * bytes), items_sorted.npy (the ids in byte order) and items_sorted_rows.npy (int32: the row of
 * each sorted id). id -> row is a binary search comparing bytes, as numpy's searchsorted does.
 */
export class ItemIndex {
  constructor(ids, sortedIds, sortedRows) {
    this.width = ids.width;
    this.ids = ids.data;
    this.sorted = sortedIds.data;
    this.sortedRows = sortedRows.data;
    this.length = ids.width ? ids.data.length / ids.width : 0;
  }

  /** The index of a legacy items.json list (artifacts before 0.2). */
  static fromIds(list) {
    const encoded = list.map((id) => encoder.encode(String(id)));
    const width = Math.max(1, ...encoded.map((e) => e.length));
    const pack = (order) => {
      const out = new Uint8Array(order.length * width);
      order.forEach((row, i) => out.set(encoded[row], i * width));
      return out;
    };
    const rows = encoded.map((_, i) => i);
    const order = [...rows].sort((a, b) => compareBytes(pad(encoded[a], width), pad(encoded[b], width)) || a - b);
    return new ItemIndex({width, data: pack(rows)}, {width, data: pack(order)}, {data: Int32Array.from(order)});
  }

  /** The raw id of table row `row` (trailing NULs are padding). */
  idOf(row) {
    const entry = this.ids.subarray(row * this.width, (row + 1) * this.width);
    let end = entry.length;
    while (end > 0 && entry[end - 1] === 0) end -= 1;
    return decoder.decode(entry.subarray(0, end));
  }

  /** The row of a raw id, -1 when the catalog does not hold it. */
  rowOf(id) {
    const query = encoder.encode(id);
    if (query.length > this.width || this.length === 0) return -1;
    const padded = pad(query, this.width);
    let low = 0;
    let high = this.length;
    while (low < high) {                        // the first sorted entry >= the query
      const middle = (low + high) >>> 1;
      const entry = this.sorted.subarray(middle * this.width, (middle + 1) * this.width);
      if (compareBytes(entry, padded) < 0) low = middle + 1;
      else high = middle;
    }
    if (low === this.length) return -1;
    const entry = this.sorted.subarray(low * this.width, (low + 1) * this.width);
    return compareBytes(entry, padded) === 0 ? this.sortedRows[low] : -1;
  }
}

function pad(bytes, width) {
  if (bytes.length === width) return bytes;
  const out = new Uint8Array(width);
  out.set(bytes);
  return out;
}

function compareBytes(a, b) {
  for (let i = 0; i < a.length; i += 1) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return 0;
}

/**
 * A loaded artifact: the manifest, its item index, an ONNX Runtime session and Tensor class.
 * Semantics as the Python runtime's (edgegnn.runtime.recommender, docs/artifact.md "Queries").
 */
export class Recommender {
  constructor(manifest, items, session, Tensor, {onWarning = (text) => console.warn(text)} = {}) {
    this.manifest = manifest;
    this.items = items;
    this.session = session;
    this.Tensor = Tensor;
    this.inputs = Object.fromEntries(manifest.inputs.map((spec) => [spec.name, spec]));
    this.onWarning = onWarning;
    this.saidNoPopularity = false;
  }

  get maxK() { return this.manifest.top_k; }

  get historyLength() { return this.manifest.history_length ?? null; }

  get numItems() { return this.items.length; }

  /** (a, b) of P(like) = σ(a · score + b), or null (exported without validation data). */
  get calibration() {
    const record = this.manifest.probability;
    return record ? [record.scale, record.offset] : null;
  }

  /** Class labels of the user or item head, or null. */
  classes(node = "user") {
    return this.manifest.class_heads?.[node]?.classes ?? null;
  }

  /** Top-k {id, score} for one history (raw ids, oldest first): see recommendBatch. */
  async recommend(history, k = 10, options = {}) {
    return (await this.recommendBatch([history], k, options))[0];
  }

  /**
   * Top-k for many histories, one graph call per batch. Each result is {items: [{id, score}],
   * skipped, truncated, fallback}; `excludeSeen` (default true) leaves every known history item
   * out; `probabilities` gives σ(a · score + b) instead of the score.
   */
  async recommendBatch(histories, k = 10, {excludeSeen = true, probabilities = false} = {}) {
    if (probabilities && this.calibration === null) {
      throw new RecommendError("this artifact has no probability calibration (export it with --data that has a " +
                               "validation split)");
    }
    if (this.manifest.variant !== "history") {
      throw new RecommendError("this artifact takes user embeddings: use recommendEmbedding()");
    }
    this.checkK(k);
    if (!Array.isArray(histories)) throw new RecommendError("histories must be a list of histories (lists of item ids)");
    const queries = histories.map((history) => this.query(history));
    const active = queries.map((q, i) => (q.rows.length ? i : -1)).filter((i) => i >= 0);
    const results = queries.map((q) => (q.rows.length ? null : this.popular(q, k)));
    if (active.length) {
      const excluded = active.map((i) => (excludeSeen ? queries[i].seen : new Set()));
      const width = Math.max(0, ...excluded.map((s) => s.size));
      const [rows, scores] = await this.runRows(active.map((i) => queries[i].rows), width);
      active.forEach((i, b) => {
        const picked = [];
        for (let j = 0; j < rows[b].length && picked.length < k; j += 1) {
          if (!excluded[b].has(rows[b][j])) picked.push({id: this.items.idOf(rows[b][j]), score: scores[b][j]});
        }
        results[i] = {items: picked, skipped: queries[i].skipped, truncated: queries[i].truncated, fallback: false};
      });
    }
    return probabilities ? results.map((r) => this.asProbabilities(r)) : results;
  }

  /** Top-k for user embeddings e_u (variant "user" artifacts): a [d] array or a list of them. */
  async recommendEmbedding(embeddings, k = 10) {
    if (this.manifest.variant !== "user") throw new RecommendError("this artifact takes histories: use recommend()");
    this.checkK(k);
    const dim = this.inputs.user_embedding.shape[1];
    const batch = Array.isArray(embeddings[0]) || ArrayBuffer.isView(embeddings[0]) ? embeddings : [embeddings];
    const data = new Float32Array(batch.length * dim);
    batch.forEach((row, b) => {
      if (row.length !== dim || !Array.from(row).every(Number.isFinite)) {
        throw new RecommendError(`user_embedding row ${b} must hold ${dim} finite numbers`);
      }
      data.set(row, b * dim);
    });
    const out = await this.session.run({user_embedding: new this.Tensor("float32", data, [batch.length, dim])});
    const [rows, scores] = this.unpack(out);
    return rows.map((r, b) => ({items: r.slice(0, k).map((row, j) => ({id: this.items.idOf(row), score: scores[b][j]})),
                                skipped: [], truncated: 0, fallback: false}));
  }

  /** P(class | history) per history from the user head, in classes("user") order; null for no known item. */
  async classProbabilities(histories) {
    const classes = this.classes("user");
    if (classes === null) throw new RecommendError("this artifact has no user class head (export it with --head)");
    const queries = histories.map((history) => this.query(history));
    const active = queries.map((q, i) => (q.rows.length ? i : -1)).filter((i) => i >= 0);
    const out = queries.map(() => null);
    if (active.length) {
      const result = await this.session.run(this.feeds(active.map((i) => queries[i].rows), 0));
      const probabilities = result[CLASS_OUTPUT].data;
      active.forEach((i, b) => { out[i] = Array.from(probabilities.subarray(b * classes.length, (b + 1) * classes.length)); });
    }
    return out;
  }

  /** [[class, probability]] of one history, most likely first; [] for no known item. */
  async classify(history) {
    const [probabilities] = await this.classProbabilities([history]);
    if (probabilities === null) return [];
    const classes = this.classes("user");
    return classes.map((c, i) => [c, probabilities[i]]).sort((a, b) => b[1] - a[1]);
  }

  // ---- the graph call -----------------------------------------------------------------------

  /** The graph's top rows and scores per history ([B][W'] arrays), W slots >= minWidth. */
  async runRows(histories, minWidth) {
    return this.unpack(await this.session.run(this.feeds(histories, minWidth)));
  }

  unpack(out) {
    const items = out.top_items;
    const scores = out.top_scores.data;
    const [batch, width] = items.dims.map(Number);
    const rows = [];
    const values = [];
    for (let b = 0; b < batch; b += 1) {
      const row = Array.from(items.data.subarray(b * width, (b + 1) * width), Number);   // int64 arrives as BigInt
      const value = Array.from(scores.subarray(b * width, (b + 1) * width));
      const pad = row.indexOf(-1);      // inverted lists short of the width: -1 pads the end
      if (pad >= 0) {
        row.length = pad;
        value.length = pad;
      }
      rows.push(row);
      values.push(value);
    }
    return [rows, values];
  }

  /** history int32 [B, W] (rows, zero-padded), history_mask float32 [B, W], user_base zeros [B, d⁰]. */
  feeds(histories, minWidth = 0) {
    const fixed = this.inputs.history.shape[1];
    const limit = Number.isInteger(fixed) ? fixed : this.historyLength;
    const kept = histories.map((rows) => (limit ? rows.slice(-limit) : rows));
    const width = Number.isInteger(fixed) ? fixed : Math.max(1, minWidth, ...kept.map((rows) => rows.length));
    const history = new Int32Array(kept.length * width);
    const mask = new Float32Array(kept.length * width);
    kept.forEach((rows, b) => {
      history.set(rows, b * width);
      mask.fill(1, b * width, b * width + rows.length);
    });
    const feeds = {
      history: new this.Tensor("int32", history, [kept.length, width]),
      history_mask: new this.Tensor("float32", mask, [kept.length, width]),
    };
    if (this.inputs.user_base) {
      const dim = this.inputs.user_base.shape[1];
      feeds.user_base = new this.Tensor("float32", new Float32Array(kept.length * dim), [kept.length, dim]);
    }
    return feeds;
  }

  // ---- helpers ------------------------------------------------------------------------------

  /** One history in table rows: unknown ids skipped, repeats once (the newest), the newest H kept. */
  query(history) {
    if (typeof history === "string" || history === null || typeof history?.[Symbol.iterator] !== "function") {
      throw new RecommendError("a history must be a list of item ids, not " +
                               (typeof history === "string" ? "one string" : describe(history)));
    }
    const items = Array.from(history);
    const bad = items.findIndex((x) => !(typeof x === "string" || typeof x === "bigint" || Number.isInteger(x)));
    if (bad >= 0) {
      throw new RecommendError(`history item ${bad} is ${describe(items[bad])}: item ids are strings or integers`);
    }
    const rows = [];
    const skipped = [];
    const seen = new Set();
    for (let i = items.length - 1; i >= 0; i -= 1) {      // newest first: keep the last repeat
      const id = String(items[i]);
      const row = this.items.rowOf(id);
      if (row < 0) skipped.push(id);
      else if (!seen.has(row)) {
        seen.add(row);
        rows.push(row);
      }
    }
    rows.reverse();
    skipped.reverse();
    const truncated = this.historyLength ? Math.max(0, rows.length - this.historyLength) : 0;
    return {rows: rows.slice(truncated), seen, skipped, truncated};
  }

  popular(query, k) {
    const popularity = this.manifest.popularity;
    if (!popularity) {
      if (!this.saidNoPopularity) {
        this.onWarning("a history holds no item this model knows, and the artifact has no popularity list to " +
                       "fall back on (export it with --data): such users get no recommendations");
        this.saidNoPopularity = true;
      }
      return {items: [], skipped: query.skipped, truncated: query.truncated, fallback: true};
    }
    const total = popularity.total || 1;
    const items = popularity.rows.slice(0, k).map((row, j) => ({id: this.items.idOf(row), score: popularity.counts[j] / total}));
    return {items, skipped: query.skipped, truncated: query.truncated, fallback: true};
  }

  asProbabilities(result) {
    const [scale, offset] = this.calibration;
    const sigmoid = (z) => 0.5 * (1 + Math.tanh(0.5 * z));             // overflow-free
    return {...result, items: result.items.map(({id, score}) => ({id, score: sigmoid(scale * (result.fallback ? 0 : score) + offset)}))};
  }

  checkK(k) {
    if (!Number.isInteger(k) || k < 1 || k > this.maxK) {
      throw new RecommendError(`k=${JSON.stringify(k)} is invalid: must be an integer in [1, ${this.maxK}] ` +
                               `(the artifact returns at most top_k=${this.maxK}; export with a larger --top-k)`);
    }
  }
}

function describe(value) {
  if (value === null) return "null";
  if (value === undefined) return "undefined";
  return `${typeof value === "string" ? JSON.stringify(value) : String(value)} (${typeof value})`;
}

/** The item index from the manifest's files (bytes by name), .npy or the legacy items.json. */
export function itemIndexFrom(manifest, bytesOf) {
  if ((manifest.items_file ?? "items.json") === "items.json") {
    const list = JSON.parse(decoder.decode(bytesOf("items.json")));
    if (!Array.isArray(list) || list.length !== manifest.num_items) {
      throw new ArtifactError(`items.json: expected a list of ${manifest.num_items} item ids`);
    }
    return ItemIndex.fromIds(list);
  }
  const [ids, sorted, rows] = INDEX_FILES.map((name) => parseNpy(bytesOf(name), name));
  const count = (array) => array.shape[0];
  if (!(count(ids) === count(sorted) && count(sorted) === count(rows) && count(rows) === manifest.num_items)) {
    throw new ArtifactError(`the item index files do not hold ${manifest.num_items} items each`);
  }
  return new ItemIndex(ids, sorted, rows);
}
