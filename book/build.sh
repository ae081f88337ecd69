#!/usr/bin/env bash
# Build the HTML book: Sphinx with warnings as errors; output in book/_build/html.
# Usage: bash book/build.sh [extra sphinx-build options, e.g. -E for a full rebuild]
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
mkdir -p book/_build/src
# conf.py (book/) fills book/_build/src with links to the pages, notebooks and exercises, and API pages.
"$PY" -m sphinx -W --keep-going -q -b html -c book "$@" book/_build/src book/_build/html
echo "Book built. Open: file://$(pwd)/book/_build/html/index.html"
