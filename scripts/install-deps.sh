#!/usr/bin/env bash
# Installs the Debian 12 packages MammoCL needs to build, test and run its examples (as root, or with sudo).
set -euo pipefail
pkgs=(cmake ninja-build g++ ccache pkg-config libeigen3-dev libboost-test-dev nlohmann-json3-dev)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
