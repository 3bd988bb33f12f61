"""`edgegnn update`: new items in, removed items out, without retraining; a new artifact and a patch.

    update_model(edge, train, new, removed)    -> (EdgeModel, record)
    update_artifact(base, model, items=..., out=...)  -> UpdateResult

New items get rows from the users who took them (`edgegnn.catalog.fold`), appended after the
catalog's last row and stored like the table's other rows (`edgegnn.catalog.rows`), so the
activation scales and every existing row stay as they were; with inverted lists, the new
items go into their nearest lists' free slots and the recorded overlap is measured again.
Removed items leave by a swap with the last rows. The new artifact is exported with the base
artifact's target and options and verified like any export; the patch holds only what
changed (`edgegnn.export.patch`).

The model must be the one the artifact was exported from (manifest model.digest), and its
training data is read again for the users' histories (the data record, or `data`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from edgegnn.catalog.fold import encode_users, fit_item_fold, item_features
from edgegnn.catalog.rows import append_rows, swap_remove_order, take_rows
from edgegnn.edge_model import EdgeModel, stored_leaves
from edgegnn.errors import ConfigError, DataError
from edgegnn.kinds import kind as kind_module
from edgegnn.kinds import neighbor_tensors
from edgegnn.retrieval import CENTROIDS, ROWS, model_lists
from edgegnn.tensors import DenseTensor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UpdateResult:
    """What `update_artifact` wrote: the artifact, the patch, the model, and the record."""

    artifact: Path
    patch: Path
    model: Path
    record: dict
    patch_bytes: int
    artifact_bytes: int


def check_updatable(edge: EdgeModel) -> None:
    """Refuse, in one line, a model whose item rows `update` cannot extend."""
    if any(name in edge.tensors for name in neighbor_tensors(edge.kind)):
        raise ConfigError("model", edge.kind, "a graph filter with neighbour lists cannot take new items yet "
                          "(their lists would have to name them); fit it again with the new items")
    tables = kind_module(edge.kind).TABLES
    owners: dict[int, str] = {}
    for name in tables:
        for leaf in stored_leaves([edge.tensors[name]]):
            if id(leaf) in owners:
                raise ConfigError("model", f"{owners[id(leaf)]} and {name}",
                                  "tables that share a factor (joint low-rank, share pass) cannot take new rows")
            owners[id(leaf)] = name


def update_model(edge: EdgeModel, train, new, removed: Sequence[str] = (), *, items_path: str | Path = "new items",
                 removed_path: str | Path = "removed items", seed: int = 0) -> tuple[EdgeModel, dict]:
    """`edge` with the new items of `new` added and the `removed` raw ids taken out.

    Args:
        train: the Interactions the model was trained on (the users' histories).
        new: Interactions naming new items (not in the catalog) and the users who took them
            (None: none); users unknown to `train`, or with no catalog item in their history, are
            skipped.
        removed: raw item ids to take out (each in the catalog).
    """
    check_updatable(edge)
    if new is None and not any(removed):
        raise ConfigError("update", None, "names no new items and no items to remove")
    row_of = {str(raw): r for r, raw in enumerate(edge.item_ids)}
    tables = tuple(kind_module(edge.kind).TABLES)
    added_ids, skipped, fold_record, tensors = [], {}, None, dict(edge.tensors)
    if new is not None:
        _refuse_present(new, row_of, items_path)
    removed_rows = _removed_rows(removed, row_of, new, removed_path)
    if new is not None:
        history = _history(train, row_of, edge.num_items)
        takers, added_ids, skipped = _takers(new, train, history, items_path)
        fold = fit_item_fold(edge, history, seed=seed)
        vectors, has = encode_users(edge, history)
        rows = fold.rows(item_features(vectors, takers @ sp.diags(has.astype(np.float64))))
        tensors.update({name: append_rows(edge.tensors[name], rows[name], name=name) for name in tables})
        fold_record = fold.record()
    item_ids = np.concatenate([np.asarray(edge.item_ids).astype(str), np.asarray(added_ids, str)])
    indexed = model_lists(edge.tensors, edge.params)
    lists = None if indexed is None else indexed[0]
    if lists is not None and added_ids:
        lists = lists.with_items(tensors["item"].to_dense()[edge.num_items:].astype(np.float32), edge.num_items)
    if len(removed_rows):
        order = swap_remove_order(len(item_ids), removed_rows)
        tensors.update({name: take_rows(tensors[name], order, name=name) for name in tables})
        item_ids = item_ids[order]
        lists = None if lists is None else lists.renumbered(order)
    if lists is not None:
        tensors.update({CENTROIDS: DenseTensor(lists.centroids), ROWS: DenseTensor(lists.rows)})
    record = {"added": len(added_ids), "removed": len(removed_rows), "items_before": edge.num_items,
              "items_after": len(item_ids), "rows_with_unknown_users": 0, "items_without_known_users": 0,
              **skipped, "fold": fold_record}
    updates = list(edge.params.get("catalog_updates", [])) + [{k: record[k] for k in ("added", "removed")}]
    params = {**edge.params, "catalog_updates": updates}
    log.info("update: %d items added, %d removed (%d -> %d)", record["added"], record["removed"],
             edge.num_items, len(item_ids))
    return dataclasses.replace(edge, tensors=tensors, item_ids=item_ids, params=params), record


def _refuse_present(new, row_of: dict, path) -> None:
    from edgegnn.data.loaders import line_of_csv_row

    present = [i for i, raw in enumerate(new.item_ids) if str(raw) in row_of]
    if present:
        first_row = int(np.flatnonzero(np.isin(new.items, present))[0])
        raw = str(new.item_ids[new.items[first_row]])
        line = line_of_csv_row(path, first_row) if Path(path).is_file() else None
        raise DataError(f"item {raw!r} is already in the catalog ({len(present)} of the {new.num_items} items "
                        "are); update adds new items only", path=path, line=line,
                        hint="leave interactions with catalog items out of --items")


def _removed_rows(removed: Sequence[str], row_of: dict, new, path) -> np.ndarray:
    added = set() if new is None else {str(raw) for raw in new.item_ids}
    rows = []
    for line, raw in enumerate(removed, start=1):
        if not raw:
            continue                     # a blank line (kept by read_removed so that lines count right)
        if raw in added:
            raise DataError(f"item {raw!r} is both added (--items) and removed", path=path, line=line)
        if raw not in row_of:
            raise DataError(f"item {raw!r} is not in the catalog; nothing to remove", path=path, line=line)
        rows.append(row_of[raw])
    if len(set(rows)) == len(row_of) and rows:
        raise DataError("every catalog item would be removed", path=path)
    return np.unique(np.asarray(rows, np.int64))


def _history(train, row_of: dict, num_items: int) -> sp.csr_matrix:
    """Binary [U, I]: the training users' histories in the model's rows (items the model no
    longer holds dropped)."""
    to_row = np.array([row_of.get(str(raw), -1) for raw in train.item_ids], np.int64)
    rows = to_row[train.items]
    kept = rows >= 0
    matrix = sp.csr_matrix((np.ones(int(kept.sum())), (train.users[kept], rows[kept])),
                           shape=(train.num_users, num_items))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def _takers(new, train, history: sp.csr_matrix, path) -> tuple[sp.csr_matrix, list[str], dict]:
    """(binary [n, U] users of each new item that has a known user, their raw ids, skip counts)."""
    user_of = {str(raw): u for u, raw in enumerate(train.user_ids)}
    known = np.array([user_of.get(str(raw), -1) for raw in new.user_ids], np.int64)
    users = known[new.users]
    with_history = np.diff(history.indptr) > 0
    ok = (users >= 0) & with_history[np.maximum(users, 0)]
    if not ok.any():
        raise DataError(f"names unknown users only: none of its {new.num_users} users has a history among "
                        "the model's training interactions, so no new item can be placed", path=path,
                        hint="new items are placed from the training users who took them")
    items = np.unique(new.items[ok])
    column = np.full(new.num_items, -1, np.int64)
    column[items] = np.arange(len(items))
    takers = sp.csr_matrix((np.ones(int(ok.sum())), (column[new.items[ok]], users[ok])),
                           shape=(len(items), train.num_users))
    takers.sum_duplicates()
    takers.data[:] = 1.0
    skipped = {"rows_with_unknown_users": int((~ok).sum()), "items_without_known_users": new.num_items - len(items)}
    if skipped["items_without_known_users"]:
        log.warning("update: %d new items have no known user and were not added", skipped["items_without_known_users"])
    return takers, [str(new.item_ids[i]) for i in items], skipped


def update_artifact(base: str | Path, model, *, items: str | Path | None, out: str | Path,
                    removed: str | Path | None = None, patch: str | Path | None = None,
                    model_out: str | Path | None = None, data: str | None = None,
                    cpus: Sequence[str] | None = None, emulators="auto", heads: Sequence = (),
                    seed: int = 0) -> UpdateResult:
    """Update the artifact `base` (exported from `model`) with the new items of the CSV `items`
    (columns user, item; None: none) and the raw ids of `removed` (one per line); write the new artifact to
    `out`, the patch from `base` to it to `patch` (default OUT.patch beside it), and the updated
    model to `model_out` (default OUT.model), the model the next update starts from."""
    from edgegnn.compress.io import edge_digest, save_edge_model
    from edgegnn.data.loaders import read_csv
    from edgegnn.export.api import export, resolve_model
    from edgegnn.export.patch import make_patch
    from edgegnn.runtime.manifest import read_manifest, verify_files

    base, out = Path(base), Path(out)
    patch = Path(patch) if patch is not None else out.with_name(out.name + ".patch")
    model_out = Path(model_out) if model_out is not None else out.with_name(out.name + ".model")
    if out.resolve() == base.resolve():
        raise ConfigError("out", str(out), "is the artifact being updated; write the new one beside it (the "
                          "patch is made from the old one), then `edgegnn apply-patch` in place if wanted")
    manifest = read_manifest(base)
    verify_files(base, manifest)
    edge, _ = resolve_model(model)
    _check_same_model(manifest, edge, edge_digest(edge), base, model)
    heads = carried_heads(manifest, heads, edge, base)
    train = training_interactions(edge, data)
    new = None if items is None else read_csv(items, rating_col=None, time_col=None)
    updated, record = update_model(edge, train, new, read_removed(removed) if removed else (),
                                   items_path=items or "", removed_path=removed or "", seed=seed)
    if model_lists(updated.tensors, updated.params) is not None:
        updated = _remeasure_overlap(updated, train)
        record["retrieval_overlap"] = updated.params["retrieval"]["overlap"]
    export(updated, _target(manifest), out_dir=out,
           top_k=manifest["top_k"], history_length=manifest.get("history_length"), variant=manifest["variant"],
           precision="fp16" if manifest.get("precision") == "fp16" else None,
           user_base=None if any(i["name"] == "user_base" for i in manifest["inputs"]) else False,
           popularity=_popularity(manifest, edge, updated, new),
           external_data_bytes=(manifest.get("graph") or {}).get("external_data_bytes"), cpus=cpus,
           emulators=emulators, heads=heads, manifest_fields=_fields(manifest, record, base))
    save_edge_model(updated, model_out)
    made = make_patch(base, out, patch)
    record["patch"] = {"bytes": made["bytes"], "artifact_bytes": made["result_bytes"],
                       "files": {name: entry["op"] for name, entry in made["files"].items()}}
    log.info("update: patch %s, %d bytes (%.1f %% of the new artifact's %d)", patch, made["bytes"],
             100.0 * made["bytes"] / made["result_bytes"], made["result_bytes"])
    return UpdateResult(out, patch, model_out, record, made["bytes"], made["result_bytes"])


def read_removed(path: str | Path) -> list[str]:
    """Raw item ids, one per line, surrounding spaces stripped (a blank line gives "", so that
    item k is line k of the file)."""
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path=path)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise DataError("not UTF-8 text (expected one item id per line)", path=path) from None
    return [line.strip() for line in lines]


def _check_same_model(manifest: dict, edge: EdgeModel, digest: str, base: Path, model) -> None:
    recorded = (manifest.get("model") or {}).get("digest")
    if recorded is None:
        raise ConfigError("artifact", str(base), "records no model digest (exported before edgegnn could update "
                          "artifacts); export it again from its model, then update that")
    if recorded != digest:
        raise ConfigError("model", str(model), f"is not the model {base} was exported from (model digest "
                          f"{digest[:12]}..., the artifact's {recorded[:12]}...)")


def carried_heads(manifest: dict, heads: Sequence, edge: EdgeModel, base: Path) -> list:
    """The class heads (ClassHead objects or head.json paths) to export the new artifact with:
    the base's, given again. A user head carried by the model itself needs none; a head file
    for a node the artifact has no head for, or with other classes, is refused. (The graph holds
    a head's folded weights, not the head, so the file must come again; new items get item
    logits from the item head like every other row.)"""
    from edgegnn.class_head import ClassHead, has_class_head, read_head

    loaded = [head if isinstance(head, ClassHead) else read_head(head) for head in heads]
    given = {head.node: head for head in loaded}
    recorded = manifest.get("class_heads") or {}
    for node, record in recorded.items():
        if node == "user" and has_class_head(edge):
            continue
        if node not in given:
            raise ConfigError("artifact", str(base), f"has a class head on {node}s; give its head file again with "
                              "--head (the HEAD.json of `edgegnn classify --out` it was exported with)")
        if list(given[node].classes) != list(record["classes"]):
            raise ConfigError("head", node, f"has classes {list(given[node].classes)[:4]}..., the artifact's "
                              f"{node} head {list(record['classes'])[:4]}...; give the head it was exported with")
    for node in given:
        if node not in recorded:
            raise ConfigError("head", node, f"{base} has no {node} head to carry over (update keeps the artifact's "
                              "heads as they are; export again to add one)")
    if "user" in given and has_class_head(edge):
        raise ConfigError("head", "user", "the model carries its user head already; leave --head out for it")
    return loaded


def training_interactions(edge: EdgeModel, data: str | Path | None):
    """The interactions the model was trained on (its users' histories): `data` as given (a CSV
    with user and item columns, every row; or a LightGCN-format folder, its train.txt), else the
    training split the model's data record names, loaded again (changed files refused)."""
    from edgegnn.data.provenance import DataRecord, load_split

    if data is not None:
        from edgegnn.data.loaders import read_csv, read_lightgcn_dir

        return read_lightgcn_dir(data).train if Path(data).is_dir() else read_csv(data, rating_col=None,
                                                                                  time_col=None)
    record = DataRecord.from_dict(edge.data)
    if record is None:
        raise ConfigError("data", None, "the model records no training data; give --data (its training interactions)")
    split, _ = load_split({}, record)
    return split.train


def _remeasure_overlap(edge: EdgeModel, train) -> EdgeModel:
    """The retrieval record's overlap measured again on the updated lists (same nprobe, k, users)."""
    from edgegnn.compress.calibration import Calibration
    from edgegnn.compress.inverted import overlap_curve
    from edgegnn.data.interactions import Split

    record = dict(edge.params["retrieval"])
    lists, nprobe = model_lists(edge.tensors, edge.params)
    users = int(record.get("calibration_users") or 512)
    calibration = Calibration.from_split(Split(train=train, test=train.select(np.zeros(len(train), bool))),
                                         num_users=users)
    _, curve = overlap_curve(edge, lists, calibration, int(record["k"]), nprobe, 1.0)
    record.update(overlap=curve[nprobe], curve={str(nprobe): curve[nprobe]}, target_overlap=None,
                  measured="after the catalog update")
    return dataclasses.replace(edge, params={**edge.params, "retrieval": record})


def _popularity(manifest: dict, edge: EdgeModel, updated: EdgeModel, new) -> np.ndarray | None:
    """Interactions per row of the updated model: the base's fallback list (rows beyond it count 0:
    they ranked below it) plus the new items' counts from `new` (None: no new items)."""
    record = manifest.get("popularity")
    if record is None:
        return None
    counts = {str(edge.item_ids[r]): int(c) for r, c in zip(record["rows"], record["counts"])}
    if new is not None:
        degree = np.bincount(new.items, minlength=new.num_items)
        counts.update({str(raw): int(degree[i]) for i, raw in enumerate(new.item_ids)})
    return np.array([counts.get(str(raw), 0) for raw in updated.item_ids], np.int64)


def _target(manifest: dict):
    from edgegnn.targets import Target

    return Target.from_dict(manifest["target"], source="the base artifact's manifest")


def _fields(manifest: dict, record: dict, base: Path) -> dict:
    from edgegnn.runtime.manifest import MANIFEST, sha256_file

    fields = {"update": {**record, "base_manifest_sha256": sha256_file(base / MANIFEST),
                         "metrics": "not measured on the updated artifact (the base's are not carried over)"}}
    if manifest.get("probability") is not None:
        fields["probability"] = {**manifest["probability"], "source": "carried over from the base artifact"}
    return fields
