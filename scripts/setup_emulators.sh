#!/bin/bash
# Build ./.emulators: QEMU 10 user-mode (qemu-x86_64, qemu-aarch64), an aarch64 python3.11 sysroot,
# and aarch64 wheels of the edge runtime (numpy, onnxruntime, ai-edge-litert), so that export can
# verify artifacts on other CPUs and the CPU-matrix tests (marker cpu_matrix) run:
#   x86-64:  qemu-x86_64 -cpu Nehalem|Haswell runs this machine's own .venv python (no sysroot)
#   aarch64: py-arm64 (QEMU_CPU=cortex-a53|neoverse-n1|neoverse-v1) runs the sysroot's python
# See ../shared/notes/CPU_ISA.md and ARM_EMULATION.md.
#
# A thin wrapper around the shared recipe ../shared/tools/setup_arm_sysroot.sh: it picks
# W=.emulators (EDGEGNN_EMULATORS points export and the tests at it) and the Debian mirror this
# machine's apt already uses, then pins the aarch64 runtime wheels to the versions in .venv (the
# recipe installs the newest), so both architectures run the same runtime releases.
# Nothing is installed on the host (dpkg -x, pip --target).
# Usage: scripts/setup_emulators.sh            (about a minute; needs the Debian mirror + PyPI)
set -euo pipefail
cd "$(dirname "$0")/.."
RECIPE=${EDGEGNN_ARM_RECIPE:-../shared/tools/setup_arm_sysroot.sh}
[ -f "$RECIPE" ] || { echo "error: $RECIPE not found (set EDGEGNN_ARM_RECIPE)" >&2; exit 1; }
if [ -z "${MIRROR:-}" ]; then
  # First http(s) URI of a Debian archive in apt's sources (one-line or deb822 format).
  # (cat fails on the patterns that match nothing; `|| true` keeps pipefail from ending the script)
  MIRROR=$( { cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null || true; } \
    | grep -Eo 'https?://[^ ]*/debian/?( |$)' | grep -v security | head -n1 | tr -d ' ' || true)
fi
[ -n "${MIRROR:-}" ] || { echo "error: no Debian mirror in /etc/apt/sources.list*; set MIRROR=URL" >&2; exit 1; }
W="$PWD/.emulators"
export W MIRROR
echo "building $W from $MIRROR" >&2
mkdir -p "$W" && echo "*" > "$W/.gitignore"   # a build product: keep it out of git
bash "$RECIPE"
if [ -x .venv/bin/python ]; then
  PINS=$(.venv/bin/python - <<'PY'
import importlib.metadata as md
print(" ".join(f"{name}=={md.version(name)}" for name in ("numpy", "onnxruntime", "ai-edge-litert", "fastjsonschema")))
PY
)
  echo "pinning the aarch64 runtime to the host's: $PINS" >&2
  pip install -q --upgrade --target "$W/site" --only-binary=:all: --python-version 3.11 --implementation cp \
    --platform manylinux2014_aarch64 --platform manylinux_2_17_aarch64 --platform manylinux_2_27_aarch64 \
    --platform manylinux_2_28_aarch64 --platform manylinux_2_34_aarch64 $PINS
fi
touch "$W/.ready"
echo "done: EDGEGNN_EMULATORS=$W edgegnn export ...; make test runs the CPU matrix" >&2
