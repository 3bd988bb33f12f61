// Compare a runtime's answer with a golden one: the same ids in the same order, scores within a
// float32 tolerance; two items may swap places when their scores tie within it.

const TOLERANCE = 1e-5;

export function close(a, b) {
  return Math.abs(a - b) <= TOLERANCE * Math.max(1, Math.abs(a), Math.abs(b));
}

/**
 * null when a bounded case's answer (scores that vary by kernel, see tests/runtime/golden.py) is
 * right: as many items, each a candidate within its bound, best first, every "must" item there.
 */
export function outOfBounds(actual, expected, bounded) {
  if (actual.items.length !== expected.items.length) return `${actual.items.length} items, expected ${expected.items.length}`;
  for (const [j, {id, score}] of actual.items.entries()) {
    const entry = bounded.candidates[id];
    if (entry === undefined) return `item ${j}: ${id} cannot be in this top list`;
    if (Math.abs(score - entry[0]) > entry[1] + 1e-6) return `item ${j}: ${id} scores ${score}, not ${entry[0]}±${entry[1]}`;
    if (j > 0 && score > actual.items[j - 1].score + TOLERANCE * Math.abs(score)) return `item ${j}: not sorted`;
  }
  const ids = new Set(actual.items.map(({id}) => id));
  const missing = bounded.must.filter((id) => !ids.has(id));
  if (missing.length) return `missing ${missing.join(", ")}`;
  for (const key of ["skipped", "truncated", "fallback"]) {
    if (JSON.stringify(actual[key]) !== JSON.stringify(expected[key])) return `${key} differs`;
  }
  return null;
}

/** null when `actual` ({items: [{id, score}], skipped, truncated, fallback}) matches `expected`, else why not. */
export function mismatch(actual, expected) {
  const got = actual.items.map(({id, score}) => [id, score]);
  if (got.length !== expected.items.length) return `${got.length} items, expected ${expected.items.length}`;
  for (let j = 0; j < got.length; j += 1) {
    const [id, score] = got[j];
    const [wantId, wantScore] = expected.items[j];
    if (!close(score, wantScore)) return `item ${j}: score ${score}, expected ${wantScore}`;
    if (id !== wantId && !expected.items.some(([other, s]) => other === id && close(s, score))) {
      return `item ${j}: ${id}, expected ${wantId}`;
    }
  }
  for (const key of ["skipped", "truncated", "fallback"]) {
    if (JSON.stringify(actual[key]) !== JSON.stringify(expected[key])) {
      return `${key}: ${JSON.stringify(actual[key])}, expected ${JSON.stringify(expected[key])}`;
    }
  }
  return null;
}

/** Run every golden case on `open(dir)`'s Recommender; a list of failures (empty: all equal). */
export async function runGolden(golden, open, join) {
  const failures = [];
  for (const entry of golden.artifacts) {
    const rec = await open(join(entry.dir), {onWarning: () => {}});
    for (const [i, c] of entry.cases.entries()) {
      const actual = entry.variant === "user" ? (await rec.recommendEmbedding(c.embedding, c.k))[0]
        : await rec.recommend(c.history, c.k, {excludeSeen: c.exclude_seen});
      const why = c.bounded ? outOfBounds(actual, c.expected, c.bounded) : mismatch(actual, c.expected);
      if (why) failures.push(`${entry.name} case ${i}: ${why}`);
    }
    for (const [i, c] of (entry.class_cases ?? []).entries()) {
      const [probabilities] = await rec.classProbabilities([c.history]);
      const same = c.expected === null ? probabilities === null
        : probabilities !== null && probabilities.every((p, j) => close(p, c.expected[j]));
      if (!same) failures.push(`${entry.name} class case ${i}: ${JSON.stringify(probabilities)}, expected ${JSON.stringify(c.expected)}`);
    }
  }
  return failures;
}
