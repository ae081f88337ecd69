#!/usr/bin/env bash
# Make sure a Chromium is available for the book's browser test (tests/test_book.py).
# Installs Debian's chromium with apt-get when it is missing and we run as root; otherwise says how.
set -uo pipefail
for name in chromium chromium-browser google-chrome google-chrome-stable; do
    if command -v "$name" >/dev/null 2>&1; then
        echo "browser for the book test: $(command -v "$name")"
        exit 0
    fi
done
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's chromium for the book test (apt-get)..."
    if apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; then
        echo "browser for the book test: $(command -v chromium)"
        exit 0
    fi
    echo "apt-get could not install chromium." >&2
fi
cat <<'MSG'
No Chromium found, so the book's browser test will be skipped (it fails instead when CI=true).
Install one, e.g.:
  Debian/Ubuntu:  sudo apt-get install chromium      (Ubuntu: chromium-browser)
  macOS:          brew install --cask chromium
or point EBM_TEACH_CHROMIUM at a Chrome/Chromium executable.
MSG
exit 0
