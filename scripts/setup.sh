#!/usr/bin/env bash
# Installs what q8 needs on a Debian machine, then the npm packages (which builds dist/ and the
# native addon). Debian packages: the Fashion-MNIST data set (demo), ONNX's conformance data
# (tests), clang/lld (the native kernels' preferred compiler; wasm-ld for the WebAssembly build),
# and numpy/torch for the loader tests' independent reference evaluations. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
pkgs=(dataset-fashion-mnist libonnx-testdata clang lld python3-numpy python3-torch)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
