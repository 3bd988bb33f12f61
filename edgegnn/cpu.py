"""CPU feature levels: what this machine's CPU is, and the levels an artifact is checked on.

Integer kernels differ by instruction set (../shared/notes/CPU_ISA.md): ONNX Runtime's
uint8 x int8 matmul adds u8·s8 pairs into a saturating int16 on x86 without VNNI (vpmaddubsw),
into int32 with VNNI (vpdpbusd), widens to int16 first on SSE4.2, and uses dot-product or
widening instructions on ARM. An artifact is therefore verified per feature level, not per
machine, and every benchmark names the CPU that measured it (`host_cpu`).

Levels (`LEVELS`; a target lists those it runs on, `targets/*.yaml: cpus`):
    x86-64-v2         SSE4.2, no AVX          (QEMU -cpu Nehalem)
    x86-64-v3         AVX2 + FMA, no AVX-512  (QEMU -cpu Haswell)
    x86-64-v4         AVX-512 without VNNI    (hardware only: QEMU emulates no AVX-512)
    x86-64-v4-vnni    AVX-512 VNNI            (hardware only)
    armv8.0           NEON, no dot product    (QEMU -cpu cortex-a53)
    armv8.2-dotprod   NEON + sdot/udot        (QEMU -cpu neoverse-n1)
    armv8.4-sve       SVE, int8 matrix mult.  (QEMU -cpu neoverse-v1)

Only the standard library: the runtime's verification worker imports this under emulation.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CpuLevel:
    """A CPU feature level.

    Attributes:
        name: the level's name (see the module docstring).
        arch: "x86_64" or "aarch64".
        features: what sets it apart, in words.
        qemu_cpu: the QEMU user-mode CPU model that emulates it, or None (hardware only).
    """

    name: str
    arch: str
    features: str
    qemu_cpu: str | None


LEVELS: dict[str, CpuLevel] = {level.name: level for level in (
    CpuLevel("x86-64-v2", "x86_64", "SSE4.2, no AVX", "Nehalem"),
    CpuLevel("x86-64-v3", "x86_64", "AVX2 + FMA, no AVX-512 or VNNI", "Haswell"),
    CpuLevel("x86-64-v4", "x86_64", "AVX-512 (F, BW, VL), no VNNI", None),
    CpuLevel("x86-64-v4-vnni", "x86_64", "AVX-512 with VNNI", None),
    CpuLevel("armv8.0", "aarch64", "NEON, no dot product", "cortex-a53"),
    CpuLevel("armv8.2-dotprod", "aarch64", "NEON with sdot/udot", "neoverse-n1"),
    CpuLevel("armv8.4-sve", "aarch64", "SVE, int8 matrix multiply (i8mm)", "neoverse-v1"),
)}

# The /proc/cpuinfo flags that pick integer kernels, by architecture (reported by `host_cpu`).
_X86_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni",
              "avx512_bf16", "amx_int8")
_ARM_FLAGS = ("asimd", "asimddp", "i8mm", "sve", "sve2", "sme", "bf16", "fphp", "asimdhp")


def check_levels(names, field: str = "cpus") -> tuple[str, ...]:
    """The names, each a known level (else a ConfigError naming the allowed ones)."""
    from edgegnn.errors import ConfigError

    for name in names:
        if name not in LEVELS:
            raise ConfigError(field, name, f"allowed: {', '.join(LEVELS)}")
    return tuple(names)


def host_cpu(cpuinfo: str | None = None) -> dict:
    """This machine's CPU: {"arch", "model", "level", "flags" (those that pick kernels), "cores"}.

    Args:
        cpuinfo: the text of /proc/cpuinfo (default: read it; {} fields where it is absent).
    """
    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        cpuinfo = path.read_text(errors="replace") if path.is_file() else ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip().lower(), value.strip())
    arch = platform.machine()
    present = set((fields.get("flags") or fields.get("features") or "").split())
    wanted = _ARM_FLAGS if arch == "aarch64" else _X86_FLAGS
    flags = [flag for flag in wanted if flag in present]
    model = fields.get("model name") or fields.get("cpu model") or fields.get("hardware") or platform.processor()
    return {"arch": arch, "model": model or "unknown", "level": level_of(arch, set(flags)), "flags": flags,
            "cores": os.cpu_count()}


def level_of(arch: str, flags: set[str]) -> str:
    """The feature level of a CPU with these /proc/cpuinfo flags ("unknown" below the lowest)."""
    if arch == "aarch64":
        if "sve" in flags:
            return "armv8.4-sve"
        return "armv8.2-dotprod" if "asimddp" in flags else "armv8.0"
    if arch not in ("x86_64", "AMD64"):
        return "unknown"
    if "avx512_vnni" in flags:
        return "x86-64-v4-vnni"
    if {"avx512f", "avx512bw", "avx512vl"} <= flags:
        return "x86-64-v4"
    if {"avx2", "fma"} <= flags:
        return "x86-64-v3"
    return "x86-64-v2" if "sse4_2" in flags else "unknown"


def describe(cpu: dict) -> str:
    """One line: "Intel(R) Xeon(R) Processor (x86-64-v4-vnni: avx2, avx512f, ...), 2 cores"."""
    return f"{cpu['model']} ({cpu['level']}: {', '.join(cpu['flags']) or 'no listed flags'}), {cpu['cores']} cores"
