#!/bin/bash
# Build ./.arm: an aarch64 python3.11 sysroot, QEMU 10 user-mode, and aarch64 wheels of the
# edge runtime (numpy, onnxruntime, ai-edge-litert), so that tests marked `arm_emu` can run
# exported artifacts on ARM under emulation (see ../shared/notes/ARM_EMULATION.md).
#
# A thin wrapper around the shared recipe ../shared/tools/setup_arm_sysroot.sh: it picks
# W=.arm (the folder tests look for; EDGEGNN_ARM_SYSROOT overrides) and the Debian mirror
# this machine's apt already uses. Nothing is installed on the host (dpkg -x, pip --target).
# Usage: scripts/setup_arm.sh            (about a minute; needs the Debian mirror + PyPI)
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
export W="$PWD/.arm" MIRROR
echo "building $W from $MIRROR" >&2
mkdir -p "$W" && echo "*" > "$W/.gitignore"   # a build product: keep it out of git
bash "$RECIPE"
echo "done: run tests with  pytest -m arm_emu tests/export/test_arm_emulation.py" >&2
