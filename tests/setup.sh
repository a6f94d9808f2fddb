#!/usr/bin/env bash
# Everything the test suite needs on a fresh Debian machine: torch's CPU wheel first (so that
# pip does not pull CUDA builds), the project with its test extras, and Debian's Chromium and
# ChromeDriver for the audition page's browser test (skipped when not root or without apt).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q torch==2.13.0
python -m pip install -q -e ".[test]"
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "tests/setup.sh: chromium not installed (needs root + apt); the browser test will skip"
  fi
fi
if [ ! -e /usr/lib/vst3/ZamEQ2.vst3 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq zam-plugins >/dev/null
  else
    echo "tests/setup.sh: zam-plugins not installed (needs root + apt); plug-in tests will skip"
  fi
fi
