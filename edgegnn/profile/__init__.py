"""Profile artifacts: latency, memory, size and ranking quality, each configuration in a fresh process.

    from edgegnn.profile import profile, write_json, write_plot
    result = profile(["artifacts/cpu", "artifacts/android"], batches=(1, 8), history_lens=(20,),
                     threads=(1,), split=split)
    write_json(result, "profile.json"); write_plot(result, "profile.png")

Modules: probe (runs inside the fresh process; numpy + the runtime only; defines every
figure), runner (the sweep: one subprocess per artifact x batch x history length x threads,
optional Recall/NDCG@20 on a split), report (the table, its caption, JSON and the plot).

This package's import is light (the probe process imports it): the names below load lazily.
"""

from __future__ import annotations

_LAZY = {"profile": "runner", "ProfileResult": "runner", "Sweep": "runner", "FIELDS": "probe",
         "memory": "probe", "reset_peak": "probe", "definitions": "report", "results_table": "report",
         "write_json": "report", "write_plot": "report", "to_dict": "report"}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'edgegnn.profile' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"edgegnn.profile.{_LAZY[name]}"), name)
