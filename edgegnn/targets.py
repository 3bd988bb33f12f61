"""`Target`: where an artifact runs (runtime, providers or delegate, arch, precisions, ops, memory).

Targets live in `targets/*.yaml` (cpu-x86_64, arm64-linux, android-litert, cuda) and load by
name or path; every field is validated, and an unknown key or a bad value is a ConfigError
naming the field, the value and what is allowed. A Target decides the artifact's format
(onnxruntime -> model.onnx, litert -> model.tflite) and its fixed shapes (history length H
and batch, where the runtime wants them fixed). `edgegnn.export.check_target` checks a model
against a target before any heavy work.

Fields:
    name, description   how the target is called and shown.
    runtime             "onnxruntime" | "litert".
    providers           ONNX Runtime execution providers, in priority order (onnxruntime).
    delegate            "xnnpack" | "none" (litert; XNNPACK repacks weights into a second copy).
    arch                "x86_64" | "aarch64" | "any": the CPU the artifact is meant for.
    precisions          subset of fp32, fp16, int8 the target accepts.
    threads             intra-op threads the runtime uses by default (>= 1).
    float_ops, int8_ops operators (the format's own names: ONNX op types, TFLite builtin names)
                        the target runs with float inputs, and with int8 inputs.
    memory_budget       bytes (or a size string: 256MB, 1.5GiB) the model may take in memory.
    history_length      H: history items per query; fixed for litert (inputs [batch, H]);
                        null (ONNX only) means any length.
    batch               fixed batch size, or null for a dynamic batch (ONNX only).
    top_k               items the graph returns beyond the history (outputs hold top_k + H).
    score_block_rows    ONNX: the scoring table in row blocks of this many items (see
                        edgegnn.export.onnx_graph): at 1M int8 items the load peak is 0.68x
                        the file instead of 1.14x; null: one block, ~15 % faster there (one
                        MatMulNBits, no Concat). Default 131072 (cpu-x86_64 and cuda: null).
    cpus                the CPU feature levels the artifact must be right on (`edgegnn.cpu.LEVELS`,
                        of the target's arch): export verifies it on each one it can run here
                        (this machine, or QEMU) and records which it could not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from edgegnn.configs import check_choice, check_range, config_from_dict, config_to_dict, load_yaml
from edgegnn.errors import ConfigError

TARGETS_DIR = Path(__file__).resolve().parents[1] / "targets"
PRECISIONS = ("fp32", "fp16", "int8")
_UNITS = {"": 1, "b": 1, "kb": 10 ** 3, "mb": 10 ** 6, "gb": 10 ** 9, "kib": 2 ** 10, "mib": 2 ** 20, "gib": 2 ** 30}
_ORT_PROVIDERS = ("CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider",
                  "CoreMLExecutionProvider", "NnapiExecutionProvider", "QNNExecutionProvider",
                  "XnnpackExecutionProvider", "DmlExecutionProvider", "OpenVINOExecutionProvider",
                  "ROCMExecutionProvider", "AzureExecutionProvider")


@dataclass(frozen=True)
class Target:
    """A deployment target; see the module docstring for each field."""

    name: str
    runtime: Literal["onnxruntime", "litert"]
    arch: Literal["x86_64", "aarch64", "any"]
    precisions: tuple[str, ...]
    float_ops: tuple[str, ...]
    int8_ops: tuple[str, ...]
    memory_budget: int | str
    description: str = ""
    providers: tuple[str, ...] = ()
    delegate: Literal["xnnpack", "none"] | None = None
    threads: int = 1
    history_length: int | None = None
    batch: int | None = None
    top_k: int = 100
    score_block_rows: int | None = 131072
    cpus: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.name):
            raise ConfigError("target.name", self.name, "letters, digits, '-', '_' and '.'")
        object.__setattr__(self, "memory_budget", parse_size("target.memory_budget", self.memory_budget))
        for precision in self.precisions:
            check_choice("target", "precisions", precision, PRECISIONS)
        if not self.precisions:
            raise ConfigError("target.precisions", [], f"name at least one of {', '.join(PRECISIONS)}")
        check_range("target", "threads", self.threads, low=1, high=256)
        check_range("target", "top_k", self.top_k, low=1)
        if self.history_length is not None:
            check_range("target", "history_length", self.history_length, low=1, high=65536)
        if self.batch is not None:
            check_range("target", "batch", self.batch, low=1, high=65536)
        if self.score_block_rows is not None:
            check_range("target", "score_block_rows", self.score_block_rows, low=1)
        self._check_cpus()
        self._check_runtime_fields()

    def _check_cpus(self) -> None:
        from edgegnn.cpu import LEVELS, check_levels

        for name in check_levels(self.cpus, "target.cpus"):
            if self.arch != "any" and LEVELS[name].arch != self.arch:
                raise ConfigError("target.cpus", name,
                                  f"a {LEVELS[name].arch} level; this target's arch is {self.arch}")

    def _check_runtime_fields(self) -> None:
        if self.runtime == "onnxruntime":
            if not self.providers:
                raise ConfigError("target.providers", [], "onnxruntime needs at least one execution provider")
            for provider in self.providers:
                check_choice("target", "providers", provider, _ORT_PROVIDERS)
            if self.delegate is not None:
                raise ConfigError("target.delegate", self.delegate, "only for runtime litert (use providers)")
            return
        if self.providers:
            raise ConfigError("target.providers", list(self.providers), "only for runtime onnxruntime (use delegate)")
        if self.history_length is None:
            raise ConfigError("target.history_length", None, "litert needs a fixed history length (e.g. 64)")
        if self.batch != 1:
            raise ConfigError("target.batch", self.batch, "litert artifacts take batch 1")
        if "fp16" in self.precisions:
            raise ConfigError("target.precisions", list(self.precisions), "allowed for litert: fp32, int8")

    @property
    def format(self) -> str:
        """"onnx" or "tflite": the format this target runs (`edgegnn.runtime.formats`)."""
        return self.format_record.name

    @property
    def format_record(self):
        from edgegnn.runtime.formats import format_for_runtime

        return format_for_runtime(self.runtime)

    @property
    def model_file(self) -> str:
        return self.format_record.model_file

    def to_dict(self) -> dict:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict, *, source: str | None = None) -> "Target":
        return config_from_dict(cls, data, source=source)


def parse_size(field: str, value: int | str) -> int:
    """Bytes of an int or a size string ("256MB" = 256·10^6, "1.5GiB" = 1.5·2^30)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise ConfigError(field, value, "must be a positive number of bytes")
        return value
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([A-Za-z]*)\s*", str(value))
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _UNITS or float(match.group(1)) * _UNITS[unit] < 1:
        raise ConfigError(field, value, "expected bytes or a size like 256MB, 512KiB, 1.5GB")
    return int(float(match.group(1)) * _UNITS[unit])


def available_targets() -> list[str]:
    """Names of the targets shipped in targets/*.yaml."""
    return sorted(p.stem for p in TARGETS_DIR.glob("*.yaml"))


def load_target(name_or_path: str | Path) -> Target:
    """A Target by name ("cpu-x86_64") or by YAML path; unknown names list the known ones."""
    if isinstance(name_or_path, Target):
        return name_or_path
    text = str(name_or_path)
    path = Path(text)
    if not (text.endswith((".yaml", ".yml")) or path.is_file()):
        path = TARGETS_DIR / f"{text}.yaml"
        if not path.is_file():
            raise ConfigError("target", text, f"unknown target; known: {', '.join(available_targets())} "
                                              "(or give a YAML file)")
    return Target.from_dict(load_yaml(path), source=str(path))
