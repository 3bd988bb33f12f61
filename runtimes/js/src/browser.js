// Open an edgegnn artifact in a browser with onnxruntime-web (WebAssembly): every listed file
// fetched once, its size and sha256 verified (WebCrypto, which needs a secure context:
// https or 127.0.0.1), the item index parsed, the session created from the model's bytes with
// any other listed model file (model.onnx.data) passed as external data.
//
// Import "onnxruntime-web" is resolved by the page's import map or by a bundler.

import * as ort from "onnxruntime-web";

import {ArtifactError, INDEX_FILES, MANIFEST, Recommender, checkFile, hex, itemIndexFrom, parseManifest} from "./core.js";

export {ArtifactError, RecommendError, Recommender} from "./core.js";

/**
 * open(url, {verify = true, wasmPaths, threads = 1}) -> Recommender; url is the artifact
 * folder's URL (relative to the page). wasmPaths: where onnxruntime-web's .wasm files are
 * served (default: beside its .mjs). threads > 1 needs a cross-origin isolated page.
 */
export async function open(url, {verify = true, wasmPaths, threads = 1, onWarning} = {}) {
  const base = new URL(url.endsWith("/") ? url : `${url}/`, globalThis.location?.href);
  const manifestUrl = new URL(MANIFEST, base);
  const response = await fetch(manifestUrl);
  if (!response.ok) throw new ArtifactError(`${manifestUrl}: not an edgegnn artifact (HTTP ${response.status})`);
  const manifest = parseManifest(await response.text(), manifestUrl.href);
  const bytes = {};
  for (const [name, entry] of Object.entries(manifest.files).sort()) {
    const fileUrl = new URL(name, base);
    const fetched = await fetch(fileUrl);
    if (!fetched.ok) throw new ArtifactError(`${fileUrl}: listed in the manifest but missing (HTTP ${fetched.status})`);
    bytes[name] = new Uint8Array(await fetched.arrayBuffer());
    if (verify) checkFile(fileUrl.href, entry, bytes[name].length, hex(await crypto.subtle.digest("SHA-256", bytes[name])));
  }
  const items = itemIndexFrom(manifest, (name) => bytes[name]);
  if (wasmPaths) ort.env.wasm.wasmPaths = wasmPaths;
  ort.env.wasm.numThreads = threads;
  const others = Object.keys(bytes).filter((name) => name !== manifest.model_file && !INDEX_FILES.includes(name) &&
                                                     name.startsWith(manifest.model_file));
  const session = await ort.InferenceSession.create(bytes[manifest.model_file], {
    executionProviders: ["wasm"],
    externalData: others.map((name) => ({path: name, data: bytes[name]})),
  });
  return new Recommender(manifest, items, session, ort.Tensor, onWarning ? {onWarning} : {});
}
