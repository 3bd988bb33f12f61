// The Node runtime (onnxruntime-node) answers every golden query as the Python runtime does.
// The goldens are written by the Python tests (tests/runtime/test_js_runtime.py, which runs this
// file); EDGEGNN_GOLDEN names their folder (default: test/golden).

import assert from "node:assert/strict";
import {existsSync, readFileSync} from "node:fs";
import {join} from "node:path";
import {test} from "node:test";
import {fileURLToPath} from "node:url";

import {open} from "../src/node.js";
import {mismatch, runGolden} from "./compare.js";

const ROOT = process.env.EDGEGNN_GOLDEN ?? fileURLToPath(new URL("golden", import.meta.url));
const PATH = join(ROOT, "golden.json");
if (!existsSync(PATH)) {
  throw new Error(`${PATH}: no golden vectors; write them with ` +
                  "`.venv/bin/python -m pytest tests/runtime/test_js_runtime.py` (make test does)");
}
const golden = JSON.parse(readFileSync(PATH, "utf8"));

test("every golden artifact answers as the Python runtime", async () => {
  const failures = await runGolden(golden, open, (dir) => join(ROOT, dir));
  assert.deepEqual(failures, []);
  assert.ok(golden.artifacts.length >= 20);
});

test("the comparison catches a wrong answer", () => {
  const expected = golden.artifacts[0].cases[0].expected;
  const answer = (items) => ({...expected, items: items.map(([id, score]) => ({id, score}))});
  assert.equal(mismatch(answer(expected.items), expected), null);
  assert.match(mismatch(answer([...expected.items].reverse()), expected), /item 0/);
  assert.match(mismatch(answer(expected.items.slice(1)), expected), /items, expected/);
  assert.match(mismatch({...answer(expected.items), fallback: !expected.fallback}, expected), /fallback/);
});

test("a TFLite artifact is refused in one line", async () => {
  for (const {dir, error} of golden.refused) {
    await assert.rejects(open(join(ROOT, dir)), (e) => e.name === "ArtifactError" && e.message.includes(error));
  }
});

test("a changed file is refused, naming it", async () => {
  const {mkdtempSync, cpSync, appendFileSync} = await import("node:fs");
  const {tmpdir} = await import("node:os");
  const copy = mkdtempSync(join(tmpdir(), "edgegnn-js-"));
  cpSync(join(ROOT, golden.artifacts[0].dir), copy, {recursive: true});
  appendFileSync(join(copy, "items_sorted.npy"), "x");
  await assert.rejects(open(copy), /items_sorted\.npy: size \d+ bytes, the manifest says \d+/);
  await assert.rejects(open(join(copy, "nothing")), /no such artifact directory/);
});

test("bad queries are refused in one line", async () => {
  const entry = golden.artifacts.find((e) => e.variant === "history");
  const rec = await open(join(ROOT, entry.dir));
  await assert.rejects(rec.recommend(["a", null], 5), /history item 1 is null: item ids are strings or integers/);
  await assert.rejects(rec.recommend(["a", 1.5], 5), /history item 1 is 1.5 \(number\)/);
  await assert.rejects(rec.recommend("abc", 5), /not one string/);
  await assert.rejects(rec.recommend([], 0), /k=0 is invalid: must be an integer in \[1, \d+\]/);
  await assert.rejects(rec.recommend([], 10, {probabilities: true}), /no probability calibration/);
});

test("a newer or foreign manifest is refused", async () => {
  const {parseManifest} = await import("../src/core.js");
  const manifest = JSON.parse(readFileSync(join(ROOT, golden.artifacts[0].dir, "manifest.json"), "utf8"));
  assert.throws(() => parseManifest(JSON.stringify({...manifest, schema_version: 2})), /schema version 2 is newer/);
  assert.throws(() => parseManifest(JSON.stringify({...manifest, format: "x"})), /not an edgegnn artifact manifest/);
  assert.throws(() => parseManifest("{nope"), /damaged manifest/);
  const {top_k: _, ...noTopK} = manifest;
  assert.throws(() => parseManifest(JSON.stringify(noTopK)), /the manifest has no 'top_k'/);
});
