#!/bin/sh
# Install Debian's PrusaSlicer, which `figurine print3d` uses (when present) to check that a
# model slices and to estimate print time and filament, and which tests/test_print3d.py runs on
# every model it makes. As root:
#
#     sudo sh scripts/install_slicer.sh
#
# Idempotent: does nothing when prusa-slicer is already on PATH.
set -eu

if command -v prusa-slicer >/dev/null 2>&1; then
    echo "prusa-slicer already installed: $(command -v prusa-slicer)"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install_slicer.sh: run as root (apt-get installs prusa-slicer)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y prusa-slicer
command -v prusa-slicer
