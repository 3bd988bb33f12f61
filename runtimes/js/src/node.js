// Open an edgegnn artifact directory in Node with onnxruntime-node (the native ONNX Runtime
// core that Android and iOS apps embed): the manifest checked, every file's size and sha256
// verified (node:crypto, streamed), the item index parsed, the session created from the path
// (so an external-data file beside model.onnx is mapped by ONNX Runtime itself).

import {createHash} from "node:crypto";
import {createReadStream} from "node:fs";
import {readFile, stat} from "node:fs/promises";
import {join} from "node:path";

import * as ort from "onnxruntime-node";

import {ArtifactError, MANIFEST, Recommender, checkFile, itemIndexFrom, parseManifest} from "./core.js";

export {ArtifactError, RecommendError, Recommender} from "./core.js";

/**
 * open(path, {verify = true, threads}) -> Recommender.
 * threads: ONNX Runtime intra-op threads (default: the target's, else 1).
 */
export async function open(path, {verify = true, threads, onWarning} = {}) {
  const manifest = parseManifest(await readManifest(path), join(path, MANIFEST));
  if (verify) {
    for (const [name, entry] of Object.entries(manifest.files).sort()) {
      const file = join(path, name);
      const info = await stat(file).catch(() => null);
      if (info === null || !info.isFile()) throw new ArtifactError(`${file}: listed in the manifest but missing`);
      checkFile(file, entry, info.size, await sha256(file));
    }
  }
  const names = manifest.items_file === "items.npy" ? ["items.npy", "items_sorted.npy", "items_sorted_rows.npy"]
    : ["items.json"];
  const bytes = Object.fromEntries(await Promise.all(names.map(async (n) => [n, await readFile(join(path, n))])));
  const items = itemIndexFrom(manifest, (name) => new Uint8Array(bytes[name].buffer, bytes[name].byteOffset,
                                                                  bytes[name].byteLength));
  const session = await ort.InferenceSession.create(join(path, manifest.model_file), {
    executionProviders: ["cpu"],
    intraOpNumThreads: threads ?? manifest.target.threads ?? 1,
    interOpNumThreads: 1,
  });
  return new Recommender(manifest, items, session, ort.Tensor, onWarning ? {onWarning} : {});
}

async function readManifest(path) {
  const info = await stat(path).catch(() => null);
  if (info === null || !info.isDirectory()) {
    throw new ArtifactError(`${path}: no such artifact directory`, "give the folder `edgegnn export --out` wrote");
  }
  try {
    return await readFile(join(path, MANIFEST), "utf8");
  } catch {
    throw new ArtifactError(`${path}: not an edgegnn artifact (no ${MANIFEST})`,
                            "give the folder `edgegnn export --out` wrote");
  }
}

function sha256(file) {
  return new Promise((resolve, reject) => {
    const digest = createHash("sha256");
    createReadStream(file).on("data", (chunk) => digest.update(chunk)).on("error", reject)
      .on("end", () => resolve(digest.digest("hex")));
  });
}
