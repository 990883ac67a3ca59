#!/usr/bin/env bash
# Installs the Debian packages probelogits builds and tests with (run as root,
# or with sudo available). Idempotent.
set -euo pipefail
pkgs=(build-essential libpcre2-dev libjson-c-dev libyaml-dev libseccomp-dev libssl-dev clang libclang-rt-14-dev gnuplot-nox)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=; [ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends "${missing[@]}"
