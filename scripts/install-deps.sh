#!/usr/bin/env bash
# Installs the Debian 12 packages MammoCL needs to build, test and run its examples (as root, or with sudo).
# With --render it also tries to install Chromium, which the report test uses to render the HTML page
# headless; without it that one check is skipped (with a message), everything else still runs.
set -euo pipefail
pkgs=(cmake ninja-build g++ ccache pkg-config libeigen3-dev libboost-test-dev nlohmann-json3-dev libpng-dev libdcmtk-dev)
optional=()
[ "${1:-}" = "--render" ] && optional=(chromium)
sudo_cmd=""
[ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
export DEBIAN_FRONTEND=noninteractive
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
missing_optional=()
for p in "${optional[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing_optional+=("$p"); done
if ((${#missing[@]} + ${#missing_optional[@]})); then
  $sudo_cmd apt-get update -qq
fi
if ((${#missing[@]})); then
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if ((${#missing_optional[@]})); then
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing_optional[@]}" ||
    echo "install-deps: ${missing_optional[*]} could not be installed; the headless render check will be skipped"
fi
