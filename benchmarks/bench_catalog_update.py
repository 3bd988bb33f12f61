"""Living catalogs on Gowalla: items added by `edgegnn update` against a model retrained with them.

5 % of Gowalla's items (a seeded sample) are held out of training: a LightGCN model learns
from the other 95 % (the "base" model), and a second one, with the same card, seed and epochs,
from all of train.txt (the "retrained" model). The base model is compressed (int8 rows) and
exported for ONNX Runtime; then `update` adds the held-out items from their training
interactions, without retraining. Measured, on test.txt:
- Recall@20 / NDCG@20 of the held-out items (per test user with a held-out test item: hits
  among their held-out test items / their count), for the updated and the retrained model,
  fp32 and int8, from the same full training histories (the updated model sees the held-out
  items' training interactions in the histories too: they are the new interactions);
- Recall@20 over all test items, and over the other items' test interactions only, for the
  updated, the retrained and the base model (before the update): the added items must not
  crowd out the rest;
- the patch's bytes against the new artifact's.

    python benchmarks/bench_catalog_update.py [--epochs 150] [--share 0.05]
Checkpoints are cached in benchmarks/results/cache/ (training takes a few minutes each).
Writes benchmarks/results/catalog_update.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from common import REPO, RESULTS, gowalla_split, write_json

CACHE = RESULTS / "cache"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--share", type=float, default=0.05, help="share of items held out of training")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-only", action="store_true", help="only train (and cache) the two models")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    split = gowalla_split(valid_ratio=0.0)
    held = held_out_items(split.train.num_items, args.share, args.seed)
    base_split = without_items(split, held)
    tag = f"e{args.epochs}-s{args.seed}-h{args.share:g}"
    base_ckpt = trained(base_split, CACHE / f"update-base-{tag}.pt", args.epochs)
    full_ckpt = trained(split, CACHE / f"update-full-e{args.epochs}-s{args.seed}.pt", args.epochs)
    if args.train_only:
        return
    measure(split, base_split, held, base_ckpt, full_ckpt, args)


def held_out_items(num_items: int, share: float, seed: int) -> np.ndarray:
    """A seeded sample of item indices (of train.txt's id space), sorted."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(num_items, size=int(round(share * num_items)), replace=False))


def without_items(split, held: np.ndarray):
    """The split without the held-out items: their train and test interactions dropped and the
    other items re-indexed (the held-out items are not in the base model's catalog at all)."""
    from edgegnn.data.interactions import Interactions, Split

    keep = np.ones(split.train.num_items, bool)
    keep[held] = False
    new_index = np.cumsum(keep) - 1

    def drop(inter):
        rows = keep[inter.items]
        return Interactions(users=inter.users[rows], items=new_index[inter.items[rows]], user_ids=inter.user_ids,
                            item_ids=inter.item_ids[keep])

    return Split(train=drop(split.train), test=drop(split.test), source=f"{split.source} without {len(held)} items")


def trained(split, path: Path, epochs: int):
    """The LightGCN checkpoint (models/lightgcn.yaml, `epochs` epochs) of `split`, cached at `path`."""
    from edgegnn.models import load_model_card
    from edgegnn.train.api import fit
    from edgegnn.train.checkpoint import load_checkpoint, save_checkpoint

    if path.is_file():
        return load_checkpoint(path)
    card = load_model_card(REPO / "models" / "lightgcn.yaml")
    card = dataclasses.replace(card, training=dataclasses.replace(card.training, epochs=epochs, eval_every=10**6))
    started = time.perf_counter()
    checkpoint, _ = fit(split, card, epochs=epochs, measure_test=False)
    print(f"trained {path.name} in {time.perf_counter() - started:.0f} s", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(checkpoint, path)
    return checkpoint


def new_interactions(split, held: np.ndarray):
    """The held-out items' training interactions, as `update` reads them (own id space)."""
    from edgegnn.data.interactions import Interactions

    rows = np.isin(split.train.items, held)
    users, user_index = np.unique(split.train.users[rows], return_inverse=True)
    items, item_index = np.unique(split.train.items[rows], return_inverse=True)
    return Interactions(users=user_index, items=item_index, user_ids=split.train.user_ids[users],
                        item_ids=split.train.item_ids[items])


def held_out_quality(edge, split, held: np.ndarray, *, items: str, k: int = 20, batch: int = 1024) -> dict:
    """Recall@k / NDCG@k of `edge` on test.txt, from each test user's full training history
    (train items excluded from the ranking), over the test interactions of `items`: "held" (the
    held-out items), "other" (the rest) or "all" (users without one skipped)."""
    from edgegnn.metrics import top_k

    row_of = {str(raw): r for r, raw in enumerate(edge.item_ids)}
    to_row = np.array([row_of.get(str(raw), -1) for raw in split.train.item_ids])
    train_csr, test_csr = split.train.to_csr(), split.test.to_csr()
    if items != "all":
        keep = np.zeros(split.train.num_items, bool)
        keep[held] = True
        keep = keep if items == "held" else ~keep
        test_csr = test_csr @ sp.diags(keep.astype(np.float32))
        test_csr.eliminate_zeros()
    users = np.flatnonzero((np.diff(test_csr.indptr) > 0) & (np.diff(train_csr.indptr) > 0))
    recalls, ndcgs = [], []
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    for start in range(0, len(users), batch):
        part = users[start:start + batch]
        histories = [to_row[train_csr.indices[train_csr.indptr[u]:train_csr.indptr[u + 1]]] for u in part]
        histories = [h[h >= 0] for h in histories]
        scores = edge.scores(histories)
        for j, h in enumerate(histories):
            scores[j, h] = -np.inf
        top = top_k(scores, k)
        for j, u in enumerate(part):
            truth = set(to_row[test_csr.indices[test_csr.indptr[u]:test_csr.indptr[u + 1]]].tolist())
            hits = np.array([int(r) in truth for r in top[j]], float)
            recalls.append(hits.sum() / len(truth))
            ndcgs.append((hits * discounts).sum() / discounts[:min(len(truth), k)].sum())
    return {"users": len(users), f"recall@{k}": float(np.mean(recalls)), f"ndcg@{k}": float(np.mean(ndcgs))}


def measure(split, base_split, held, base_ckpt, full_ckpt, args) -> None:
    from edgegnn.catalog.update import update_model
    from edgegnn.fold import fold

    base, full = fold(base_ckpt), fold(full_ckpt)
    new = new_interactions(split, held)
    started = time.perf_counter()
    updated, record = update_model(base, base_split.train, new)
    seconds = time.perf_counter() - started
    out = {"data": "gowalla (LightGCN paper split)", "held_out_items": len(held), "share": args.share,
           "epochs": args.epochs, "update_seconds": seconds, "record": record, "models": {}}
    models = {"fp32": (updated, full, base)}
    base_int8 = int8(base, base_split)
    models["int8"] = (update_model(base_int8, base_split.train, new)[0], int8(full, split), base_int8)
    for precision, (upd, ret, before) in models.items():
        row = {}
        for name, edge in (("updated", upd), ("retrained", ret), ("base", before)):
            row[name] = {f"{items}_items": held_out_quality(edge, split, held, items=items)
                         for items in (("other", "all") if name == "base" else ("held", "other", "all"))}
        ratio = row["updated"]["held_items"]["recall@20"] / row["retrained"]["held_items"]["recall@20"]
        row["recall_ratio_held_out"] = ratio
        out["models"][precision] = row
        print(precision, "held-out recall@20 updated", row["updated"]["held_items"]["recall@20"],
              "retrained", row["retrained"]["held_items"]["recall@20"], f"ratio {ratio:.3f}", flush=True)
    out["patch"] = patch_sizes(models["int8"][2], base_split, new)
    print(f"wrote {write_json('catalog_update', out)}")


def int8(edge, split):
    """The default int8 pass (per-row int8 tables, the static "user" scale) on `split`'s users."""
    from edgegnn.compress.calibration import Calibration
    from edgegnn.compress.configs import QuantizeConfig
    from edgegnn.compress.quantize import quantize

    return quantize(edge, QuantizeConfig(), Calibration.from_split(split))


def patch_sizes(base_int8, base_split, new, targets=("cpu-x86_64", "android-litert")) -> dict:
    """Patch bytes against the new artifact's, per target: the int8 base model exported, then
    `update_artifact` with the held-out items (CSV), verified on this machine's CPU only."""

    from edgegnn.catalog.update import update_artifact
    from edgegnn.compress.io import save_edge_model
    from edgegnn.export import export

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        csv = tmp / "new.csv"
        csv.write_text("user,item\n" + "".join(f"{new.user_ids[u]},{new.item_ids[i]}\n"
                                                for u, i in zip(new.users, new.items)))
        model = save_edge_model(base_int8, tmp / "model")
        train = tmp / "train.csv"
        train.write_text("user,item\n" + "".join(f"{base_split.train.user_ids[u]},{base_split.train.item_ids[i]}\n"
                                                  for u, i in zip(base_split.train.users, base_split.train.items)))
        for target in targets:
            base = export(base_int8, target, out_dir=tmp / f"{target}-base", emulators=None)
            started = time.perf_counter()
            result = update_artifact(base, model, items=csv, out=tmp / f"{target}-new", emulators=None,
                                     data=train)
            seconds = time.perf_counter() - started
            out[target] = {"patch_bytes": result.patch_bytes, "artifact_bytes": result.artifact_bytes,
                           "ratio": result.patch_bytes / result.artifact_bytes, "update_seconds": seconds,
                           "files": result.record["patch"]["files"]}
            print(target, out[target], flush=True)
    return out


if __name__ == "__main__":
    main()
