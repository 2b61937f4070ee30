#!/bin/sh
# Install what the web UI's browser test (tests/test_web.py) needs on a Debian machine, as root:
# Debian's own chromium, driven by the `playwright` Python package (installed with the test
# extras; never `playwright install`, which downloads a browser build from the network).
#
#     sudo sh scripts/install_test_browser.sh
#
# Idempotent: does nothing when /usr/bin/chromium is already there.
set -eu

if [ -x /usr/bin/chromium ]; then
    echo "chromium already installed: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install_test_browser.sh: run as root (apt-get installs chromium)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends chromium fonts-dejavu-core
/usr/bin/chromium --version
