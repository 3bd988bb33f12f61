"""`edgegnn compress`: fold a checkpoint, compress it (flags, a recipe file, or a search), measure, write.

Three ways to say what to do, one at a time:
    pass flags   --share --prune 0.5 [--prune-method structured] --rank 32 [--finetune-steps 200] --quantize int8
                 [--granularity tensor]
                 or --pq 16 (product quantization, distilled with --finetune-steps)
                 --lists 2048 [--nprobe 16 | --overlap 0.95] (inverted lists for big catalogs, last)
                 (applied in that order: share, prune, low-rank, quantize or pq, lists)
    a recipe     --recipe recipe.yaml
    a search     --max-drop 0.01 and/or --size-budget 2MB (also the default when nothing is given)
Every variant is measured with the device arithmetic on the same user sample; the chosen
model goes to --out (edge.npz, edge.json) with its recipe.yaml (and search.json for a
search). Bad input is one line on stderr and exit 1, before anything is written.
"""

from __future__ import annotations

import json as json_lib
import logging
import os
import re
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from edgegnn.cli import options as opt
from edgegnn.cli.options import DataSource, data_options
from edgegnn.cli.output import (
    data_note,
    next_step,
    print_json,
    progress,
    setup_logging,
    stderr,
    stdout,
    table,
    user_errors,
)

_UNITS = {"": 1, "b": 1, "k": 10 ** 3, "kb": 10 ** 3, "m": 10 ** 6, "mb": 10 ** 6, "g": 10 ** 9, "gb": 10 ** 9,
          "kib": 2 ** 10, "mib": 2 ** 20, "gib": 2 ** 30}


def parse_size(text: str) -> int:
    """Bytes of a size string: "2MB" (10^6), "500KB", "1.5MiB" (2^20), "123456" (bytes)."""
    from edgegnn.errors import ConfigError

    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*", text)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _UNITS or float(match.group(1)) * _UNITS[unit] < 1:
        raise ConfigError("size-budget", text, "expected a positive size like 2MB, 500KB, 1.5MiB or a byte count")
    return int(float(match.group(1)) * _UNITS[unit])


@data_options
def compress(
    model_path: Annotated[Path, typer.Argument(metavar="MODEL.pt", help="A checkpoint from `edgegnn train`.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the compressed model "
                                                    "(edge.npz, edge.json, recipe.yaml).")],
    share: Annotated[bool, typer.Option("--share", help="LightGCN: ship one item table (message = item · W).")] = False,
    prune: Annotated[Optional[float], typer.Option("--prune", help="Pruning sparsity in [0, 1).")] = None,
    prune_method: Annotated[Optional[opt.PruneMethod], typer.Option(
        "--prune-method", help="What --prune removes (default: structured).")] = None,
    rank: Annotated[Optional[int], typer.Option("--rank", help="Low-rank factorization of the item tables "
                                                               "at this rank.")] = None,
    finetune_steps: Annotated[int, typer.Option("--finetune-steps", help="Distillation steps "
                                                                         "after --rank or --pq.")] = 0,
    quantize: Annotated[Optional[opt.Quantize], typer.Option("--quantize", help="Static quantization of the tables "
                                                                                "and weights.")] = None,
    granularity: Annotated[Optional[opt.Granularity], typer.Option(
        "--granularity", help="--quantize's item-table scales: one per item (default), or one per table "
                              "(ONNX ranks the int32 accumulators: a faster top-K).")] = None,
    pq: Annotated[Optional[int], typer.Option("--pq", help="Product-quantize the item tables "
                                                           "with this many one-byte codes per row (e.g. 16).")] = None,
    lists: Annotated[Optional[int], typer.Option("--lists", help="Inverted lists over the item table, the last "
                                                 "pass (0: about 2·sqrt(items)); the device scores a few.")] = None,
    nprobe: Annotated[Optional[int], typer.Option("--nprobe", help="Lists probed per query (default: the fewest "
                                                  "reaching --overlap on the calibration users).")] = None,
    overlap: Annotated[Optional[float], typer.Option("--overlap", help="Top-20 overlap with the exact scan the "
                                                     "lists must reach (default 0.95).")] = None,
    recipe: Annotated[Optional[Path], typer.Option("--recipe", help="A recipe YAML (passes: [...]).")] = None,
    max_drop: Annotated[Optional[float], typer.Option("--max-drop", help="Search: largest relative Recall@20 drop "
                                                                         "(0.01 = 1%).")] = None,
    size_budget: Annotated[Optional[str], typer.Option("--size-budget", help="Search: largest model size, "
                                                                             "e.g. 2MB, 500KB, 1.5MiB.")] = None,
    max_users: Annotated[int, typer.Option("--max-users", help="Users in the evaluation sample.")] = 2000,
    calibration_users: Annotated[int, typer.Option("--calibration-users", help="Training users "
                                                                               "that calibrate the passes.")] = 512,
    new_users: Annotated[bool, typer.Option("--new-users", help="Measure users as new (no e_u⁰ input).")] = False,
    json: opt.Json = False,
    verbose: opt.Verbose = False,
    *,
    source: DataSource,
) -> None:
    """Compress a trained model for the device and measure every variant (Recall/NDCG@20, bytes).

    With no pass options it searches recipes (a minute or more) for the smallest model within
    --max-drop (default 1 %) of fp32, chosen on the validation split and reported on test.
    """
    setup_logging(verbose)
    with user_errors():
        # every flag is checked before the model and data are loaded
        budget = None if size_budget is None else parse_size(size_budget)
        searching = max_drop is not None or budget is not None
        retrieval = _retrieval_config(lists, nprobe, overlap)
        configs = _requested_configs(share=share, prune=prune, prune_method=opt.value(prune_method), rank=rank,
                                     finetune_steps=finetune_steps, quantize=opt.value(quantize),
                                     granularity=opt.value(granularity), pq=pq, recipe=recipe,
                                     retrieval=None if searching else retrieval, searching=searching)
        if configs is None and max_drop is None and budget is None:
            max_drop = 0.01  # nothing asked: search for the smallest model within 1 % of fp32
        _check_numbers(out, max_users, calibration_users)
        edge, (split_, valid), user_base, calibration, data = _prepare(model_path, source, calibration_users,
                                                                       new_users)
        if configs is None:
            report, model, chosen = _run_search(edge, split_, valid, calibration, user_base, max_drop, budget,
                                                max_users, source.seed_value, json)
            if retrieval is not None and model is not None:
                model, chosen = _index_chosen(report, model, chosen, retrieval, edge, split_, valid, calibration,
                                              user_base, max_users, source.seed_value)
                if budget is not None and model.nbytes > budget:
                    logging.getLogger("edgegnn").warning(
                        "the inverted lists take the model to %d bytes, over the --size-budget of %d (the search "
                        "chose within it; the lists add centroids and rows)", model.nbytes, budget)
        else:
            report, model, chosen = _run_recipe(edge, split_, calibration, user_base, configs, max_users,
                                                source.seed_value)
        report.update(model=str(model_path), data=split_.source, data_comparison=data, out=str(out))
        _write(out, model, chosen, report)
    _show(report, json)
    if model is None:
        stderr.print(f"[bold red]error:[/] no recipe qualified: {report['reason']}", markup=True,
                     highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def _retrieval_config(lists, nprobe, overlap):
    """The retrieval pass asked for by --lists/--nprobe/--overlap, or None."""
    from edgegnn.compress import RetrievalConfig
    from edgegnn.errors import ConfigError

    if lists is None:
        for flag, value in (("nprobe", nprobe), ("overlap", overlap)):
            if value is not None:
                raise ConfigError(flag, value, "needs --lists L (0: about 2·sqrt(items))")
        return None
    if nprobe is not None and nprobe < 1:
        raise ConfigError("nprobe", nprobe, "must be >= 1 (leave it out to choose it by --overlap)")
    if nprobe is not None and overlap is not None:
        raise ConfigError("overlap", overlap, "--nprobe fixes the lists probed; give --nprobe or --overlap, not both")
    return RetrievalConfig(lists=lists, nprobe=nprobe or 0, **({} if overlap is None else {"overlap": overlap}))


def _requested_configs(*, share, prune, prune_method, rank, finetune_steps, quantize, granularity, pq, recipe,
                       searching, retrieval=None) -> list | None:
    """The recipe asked for by flags or file (None: search). Validates every value."""
    from edgegnn.compress import (
        LowRankConfig,
        ProductQuantizeConfig,
        PruneConfig,
        QuantizeConfig,
        ShareConfig,
        load_recipe,
    )
    from edgegnn.errors import ConfigError

    if prune is None and prune_method is not None:
        raise ConfigError("prune-method", prune_method, "needs --prune SPARSITY")
    if quantize is None and granularity is not None:
        raise ConfigError("granularity", granularity, "needs --quantize int8|int4")
    if rank is None and pq is None and finetune_steps:
        raise ConfigError("finetune-steps", finetune_steps, "needs --rank R or --pq M (the passes that distil)")
    if pq is not None and quantize is not None:
        raise ConfigError("pq", pq, "product quantization codes the item tables itself: give --pq or --quantize, "
                                    "not both")
    flags = [f for f, given in (("--share", share), ("--prune", prune is not None), ("--rank", rank is not None),
                                ("--quantize", quantize is not None), ("--pq", pq is not None),
                                ("--lists", retrieval is not None)) if given]
    if recipe is not None and flags:
        raise ConfigError("recipe", str(recipe), f"give either --recipe or pass flags ({', '.join(flags)}), not both")
    if searching and (flags or recipe is not None):
        given = flags + (["--recipe"] if recipe is not None else [])
        raise ConfigError("max-drop/size-budget", "search",
                          f"the search picks the passes itself; drop {', '.join(given)}")
    if recipe is not None:
        return load_recipe(recipe)
    configs: list = [ShareConfig()] if share else []
    if prune is not None:
        configs.append(PruneConfig(method=prune_method or "structured", sparsity=prune))
    if rank is not None:
        configs.append(LowRankConfig(rank=rank, finetune_steps=finetune_steps))
    if quantize is not None:
        configs.append(QuantizeConfig(precision=quantize, granularity=granularity or "row"))
    if pq is not None:
        configs.append(ProductQuantizeConfig(subvectors=pq, finetune_steps=finetune_steps))
    if retrieval is not None:
        configs.append(retrieval)
    return configs or None


def _check_numbers(out: Path, max_users: int, calibration_users: int) -> None:
    from edgegnn.compress.calibration import check_num_users
    from edgegnn.errors import ConfigError

    if out.exists() and not out.is_dir():
        raise ConfigError("out", str(out), "must be a folder (or not exist yet)")
    if max_users < 1:
        raise ConfigError("max-users", max_users, "must be >= 1")
    check_num_users(calibration_users)


def _prepare(model_path: Path, source: DataSource, calibration_users: int, new_users: bool):
    """The fp32 EdgeModel, the data in the model's id space, e_u⁰ (or None), the calibration, and the
    comparison of the data with the model's own (`edgegnn.data.provenance.compare`)."""
    from edgegnn.compress import Calibration
    from edgegnn.data.interactions import Split
    from edgegnn.errors import DataError
    from edgegnn.fold import fold, user_bases
    from edgegnn.train.api import remap
    from edgegnn.train.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(model_path)
    splits, data = source.load_for_model(checkpoint.data)
    truth, _ = remap(splits.test, checkpoint.train.user_ids, checkpoint.train.item_ids)
    if len(truth) == 0:
        raise DataError("none of the test interactions use users and items the model knows",
                        hint="compress with the data the model was trained on")
    split_ = Split(train=checkpoint.train, test=truth, source=splits.source)
    valid = None
    if splits.valid is not None and len(splits.valid):
        valid_truth, _ = remap(splits.valid, checkpoint.train.user_ids, checkpoint.train.item_ids)
        valid = Split(train=checkpoint.train, test=valid_truth, source=splits.source) if len(valid_truth) else None
    user_base = None if new_users else user_bases(checkpoint)
    calibration = Calibration.from_split(split_, num_users=calibration_users, seed=source.seed_value,
                                         user_base=user_base)
    return fold(checkpoint), (split_, valid), user_base, calibration, data


def _run_recipe(edge, split_, calibration, user_base, configs, max_users, seed):
    """Measure fp32 and the model after each pass (plus low-rank or PQ without distillation, for comparison)."""
    import dataclasses

    from edgegnn.compress import Evaluator, LowRankConfig, ProductQuantizeConfig, compress

    evaluate = Evaluator(split_, user_base=user_base, max_users=max_users, seed=seed)
    base = evaluate(edge)
    rows = [_row("fp32", (), base, base)]
    rows[0]["chosen"] = not configs
    model = edge
    for i, config in enumerate(configs):
        if isinstance(config, (LowRankConfig, ProductQuantizeConfig)) and config.finetune_steps > 0:
            plain = dataclasses.replace(config, finetune_steps=0)  # the same factors / codes, not distilled
            steps = list(configs[:i]) + [plain]
            rows.append(_row(_label(steps), steps, evaluate(compress(model, plain, calibration=calibration)), base))
        model = compress(model, config, calibration=calibration)
        rows.append(_row(_label(configs[:i + 1]) + _lists_chosen(model), configs[:i + 1], evaluate(model), base))
    rows[-1]["chosen"] = True
    report = {"variants": rows, "chosen": rows[-1]["variant"], "users": len(evaluate.users)}
    return report, model, list(configs)


def _run_search(edge, split_, valid, calibration, user_base, max_drop, budget, max_users, seed, quiet):
    """The search chooses on the validation split (`valid`; the test split only without one, said
    in the report), and the chosen model and fp32 are then measured on the test split."""

    from edgegnn.compress import Evaluator, search

    chooser = valid if valid is not None else split_
    if valid is None:
        logging.getLogger("edgegnn").warning("the data has no validation split: the search chooses on the test "
                                             "split, so its figures are optimistic (use --valid-ratio > 0)")

    with progress(enabled=not quiet) as bar:
        task = bar.add_task("searching recipes", total=None, status="")

        def on_point(index: int, total: int, point) -> None:
            bar.update(task, completed=index, total=total, status=point.name)

        result = search(edge, chooser, calibration=calibration, max_drop=max_drop, size_budget=budget,
                        max_users=max_users, user_base=user_base, seed=seed, on_point=on_point)
    base = result.baseline.metrics
    front = {id(p) for p in result.pareto}
    rows = []
    for p in sorted(result.points, key=lambda p: (p.bytes, -p.recall)):
        rows.append(_row(p.name, p.configs, p.metrics, base))
        rows[-1].update(pareto=id(p) in front, chosen=p is result.chosen)
    chosen = None if result.chosen is None else result.chosen.name
    report = {"variants": rows, "chosen": chosen, "reason": result.reason, "users": result.users,
              "search": result.to_dict(), "chosen_on": "validation" if valid is not None else "test"}
    if result.chosen is not None and valid is not None:
        evaluate = Evaluator(split_, user_base=user_base, max_users=max_users, seed=seed)
        report["test"] = {"fp32": evaluate(edge), "chosen": evaluate(result.model), "users": len(evaluate.users)}
    return report, result.model, None if result.chosen is None else list(result.chosen.configs)


def _index_chosen(report, model, chosen, retrieval, edge, split_, valid, calibration, user_base, max_users, seed):
    """The search's model with the retrieval pass after it: a row measured on the split the search
    chose on, marked chosen, and the test figures of the indexed model."""
    from edgegnn.compress import Evaluator, compress

    indexed = compress(model, retrieval, calibration=calibration)
    configs = chosen + [retrieval]
    evaluate = Evaluator(valid if valid is not None else split_, user_base=user_base, max_users=max_users, seed=seed)
    base = evaluate(edge)
    for row in report["variants"]:
        row["chosen"] = False
    report["variants"].append({**_row(_label(configs) + _lists_chosen(indexed), configs, evaluate(indexed), base),
                               "chosen": True})
    report["chosen"] = report["variants"][-1]["variant"]
    if "test" in report:
        test = Evaluator(split_, user_base=user_base, max_users=max_users, seed=seed)
        report["test"]["chosen"] = test(indexed)
    return indexed, configs


def _lists_chosen(model) -> str:
    """": L lists, nprobe n, overlap x" for a model the retrieval pass indexed (what it chose), else ""."""
    record = model.params.get("retrieval")
    if record is None:
        return ""
    overlap = "" if record["overlap"] is None else f", overlap {record['overlap']:.3f}"
    return f": {record['lists']} lists, nprobe {record['nprobe']}{overlap}"


def _label(configs) -> str:
    parts = []
    for c in configs:
        d = c.to_dict()
        if c.PASS == "prune":
            parts.append(f"prune {d['method']} {d['sparsity']:g}")
        elif c.PASS == "low_rank":
            size = f"{d['rank']}" if d["rank"] is not None else f"energy {d['energy']:g}"
            parts.append(f"low-rank {size}" + (" +ft" if d["finetune_steps"] else ""))
        elif c.PASS == "share":
            parts.append("shared table")
        elif c.PASS == "product_quantize":
            parts.append(f"PQ M={d['subvectors']}" + (" +ft" if d["finetune_steps"] else ""))
        elif c.PASS == "retrieval":
            parts.append(f"lists {d['lists'] or 'auto'}, nprobe " + (str(d["nprobe"]) if d["nprobe"] else
                                                                     f"for overlap {d['overlap']:g}"))
        else:
            parts.append(d["precision"])
    return ", ".join(parts)


def _row(name: str, configs, metrics: dict, base: dict) -> dict[str, Any]:
    recall, base_recall = metrics["recall@20"], base["recall@20"]
    if metrics["items"] != base["items"]:
        name += f" ({int(metrics['items']):,} items)"
    return {"variant": name, "bytes": int(metrics["bytes"]), "x_smaller": base["bytes"] / max(metrics["bytes"], 1),
            "recall@20": recall, "ndcg@20": metrics["ndcg@20"],
            "relative_drop": (base_recall - recall) / base_recall if base_recall > 0 else 0.0,
            "items": int(metrics["items"]), "recipe": [c.recipe_entry() for c in configs], "chosen": False}


def _write(out: Path, model, configs, report: dict) -> None:
    """The chosen model and its recipe (and search.json); nothing but search.json if none qualified."""
    from edgegnn.compress import save_edge_model, save_recipe

    if model is not None:
        save_edge_model(model, out)
        save_recipe(configs, out / "recipe.yaml")
    if "search" in report:
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / ".search.json.tmp"
        tmp.write_text(json_lib.dumps(report["search"], indent=2, sort_keys=True) + "\n")
        os.replace(tmp, out / "search.json")


def _show(report: dict, as_json: bool) -> None:
    if as_json:
        print_json(report)
        return
    rows = [[r["variant"] + (" •" if r.get("pareto") else "") + ("  ← chosen" if r["chosen"] else ""), r["bytes"],
             f"{r['x_smaller']:.1f}x", r["recall@20"], r["ndcg@20"], f"{-100 * r['relative_drop']:+.2f}%"]
            for r in report["variants"]]
    stdout.print(table(f"compress {report['model']} on {report['data']} ({report['users']:,} "
                       f"{report.get('chosen_on', 'test')} users)",
                       ["variant", "bytes", "smaller", "R@20", "N@20", "R@20 vs fp32"], rows))
    stdout.print(data_note(report["data_comparison"]))
    if report["chosen"]:
        if "reason" in report:
            stdout.print(f"{report['reason']}  (• Pareto front)")
        stdout.print(f"wrote {report['out']} (edge.npz, edge.json, recipe.yaml"
                     + (", search.json)" if "search" in report else ")"))
        chosen = next(r for r in report["variants"] if r["chosen"])
        change, where = 100 * -chosen["relative_drop"], f"on {report.get('chosen_on', 'test')}"
        if "test" in report:        # chosen on validation: the figure a user can trust is the test split's
            fp32, picked = report["test"]["fp32"]["recall@20"], report["test"]["chosen"]["recall@20"]
            change, where = (100 * (picked - fp32) / fp32,
                             f"on test ({report['test']['users']:,} users, not used to choose)")
        word = "a gain" if change > 0 else "a drop" if change < 0 else "unchanged"
        stdout.print(f"{chosen['variant']}: {chosen['x_smaller']:.1f}x smaller than fp32, Recall@20 {change:+.2f} % "
                     f"{where} ({word})")
        next_step(f"edgegnn export {report['out']} --target cpu-x86_64 --out artifacts/cpu")
    else:
        stdout.print(f"wrote {report['out']}/search.json only")
