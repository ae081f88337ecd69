"""The HTML book: it builds with warnings as errors, finds every chapter, exercise and module by itself,
serves MathJax from its own files, and a chapter page shows typeset math, a figure and its title in a real
browser (headless Chromium).

The build (`bash book/build.sh`, which `make book` runs) happens once per test session. The browser test
needs Chromium: `bash book/ensure_chromium.sh` installs it on Debian as root; elsewhere the test is skipped
with the reason, except under CI (CI=true), where a missing browser is a failure.
"""
from __future__ import annotations

import json
import os
import pkgutil
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image
import pytest

import ebm_teach

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "book" / "_build" / "html"
SCREENSHOTS = ROOT / "book" / "_build" / "screenshots"
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
EXERCISES = sorted((ROOT / "exercises").glob("[0-9][0-9]_*.ipynb"))
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars"]
# Untypeset TeX in the text a reader sees: $$, \( or \[, a $ before a command, or a TeX command itself.
RAW_TEX = re.compile(r"\$\$|\\\(|\\\[|\$\\[A-Za-z]|\\[A-Za-z]{2,}")


@pytest.fixture(scope="module")
def book():
    """Build the book as `make book` does; return build.sh's stdout."""
    proc = subprocess.run(["bash", "book/build.sh"], cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, f"the book build failed (warnings are errors):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def chromium():
    path = os.environ.get("EBM_TEACH_CHROMIUM") or next(filter(None, map(shutil.which, BROWSERS)), None)
    if path is None:
        reason = "no Chromium found: run `bash book/ensure_chromium.sh` or set EBM_TEACH_CHROMIUM"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(reason + " (CI=true: the browser test may not be skipped)")
        pytest.skip(reason)
    return path


def _first_chapter() -> Path:
    if not CHAPTERS:
        pytest.fail("notebooks/ holds no chapter notebook NN_slug.ipynb to show in the book")
    return CHAPTERS[0]


def _title(notebook: Path) -> str:
    """The notebook's first level-1 markdown heading, as plain text."""
    cells = json.loads(notebook.read_text())["cells"]
    for cell in cells:
        if cell["cell_type"] == "markdown":
            match = re.search(r"^# (.+)$", "".join(cell["source"]), re.MULTILINE)
            if match:
                return re.sub(r"[*_`$]", "", match.group(1)).strip()
    pytest.fail(f"{notebook.name} has no '# title' heading")


class _Page(HTMLParser):
    """Collects a page's visible text (outside code, scripts and typeset math), images, scripts and styles."""

    HIDDEN = {"script", "style", "pre", "code", "mjx-container", "textarea", "svg", "title", "noscript"}

    def __init__(self, html: str):
        super().__init__()
        self.depth, self.text, self.images, self.scripts, self.styles, self.h1 = 0, [], [], [], [], []
        self._in_h1 = False
        self.math_containers = html.count("<mjx-container")
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in self.HIDDEN:
            self.depth += 1
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag == "script" and attrs.get("src"):
            self.scripts.append(attrs["src"])
        if tag == "link" and attrs.get("rel") == "stylesheet":
            self.styles.append(attrs.get("href", ""))
        self._in_h1 = self._in_h1 or tag == "h1"

    def handle_endtag(self, tag):
        if tag in self.HIDDEN and self.depth:
            self.depth -= 1
        if tag == "h1":
            self._in_h1 = False

    def handle_data(self, data):
        if not self.depth:
            self.text.append(data)
            if self._in_h1:
                self.h1.append(data)

    def visible_text(self) -> str:
        return " ".join(" ".join(self.text).split())


def _run_chromium(chromium, *args, timeout=120):
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=timeout)


# ------------------------------------------------------------------------------------ the build
def test_build_ends_with_the_path_to_open(book):
    index = HTML / "index.html"
    assert book.strip().splitlines()[-1] == f"Book built. Open: file://{index}"
    assert index.is_file()


def test_every_chapter_and_exercise_notebook_has_a_page_in_the_toc(book):
    index = (HTML / "index.html").read_text()
    exercises_page = (HTML / "exercises.html").read_text()
    _first_chapter()  # at least one
    for notebook in CHAPTERS:
        assert (HTML / "chapters" / f"{notebook.stem}.html").is_file()
        assert f'href="chapters/{notebook.stem}.html"' in index
    assert EXERCISES, "exercises/ is empty: run python -m ebm_teach.grade build"
    for notebook in EXERCISES:
        assert (HTML / "exercises" / f"{notebook.stem}.html").is_file()
        assert f'href="exercises/{notebook.stem}.html"' in exercises_page


def test_api_reference_documents_every_module(book):
    modules = ["ebm_teach"] + [m.name for m in pkgutil.walk_packages(ebm_teach.__path__, "ebm_teach.")]
    modules = [m for m in modules if not m.startswith("ebm_teach.grade.checks.") and not m.endswith(".__main__")]
    assert "ebm_teach.core" in modules and "ebm_teach.grade.runner" in modules
    api_index = (HTML / "api.html").read_text()
    for name in modules:
        page = HTML / "api" / f"{name}.html"
        assert page.is_file(), f"no API page for {name}"
        assert f'id="module-{name}"' in page.read_text()
        assert f'href="api/{name}.html"' in api_index
    assert 'id="ebm_teach.core.get_device"' in (HTML / "api" / "ebm_teach.core.html").read_text()
    assert not (HTML / "api" / "ebm_teach.grade.checks.ch01_gaussian_ebm.html").exists()  # hidden checks stay hidden


def test_math_and_every_asset_are_served_from_the_book_itself(book):
    page = _Page((HTML / "chapters" / f"{_first_chapter().stem}.html").read_text())
    assert "../_static/mathjax/tex-svg.js" in [s.split("?")[0] for s in page.scripts]
    assert (HTML / "_static" / "mathjax" / "tex-svg.js").stat().st_size > 100_000
    external = [u for u in page.scripts + page.styles if re.match(r"(https?:)?//", u)]
    assert external == [], f"the chapter page loads {external} from the web"


# ------------------------------------------------------------------------------------ in a browser
@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_page_renders_math_figures_and_title_in_chromium(book, chromium, chapter):
    html_file = HTML / "chapters" / f"{chapter.stem}.html"
    static_math = len(re.findall(r'class="math notranslate', html_file.read_text()))
    # The screenshot comes first, so that it is there to look at when an assertion below fails.
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / f"{chapter.stem}.png"
    shot.unlink(missing_ok=True)
    result = _run_chromium(chromium, "--virtual-time-budget=20000", "--window-size=1280,2400",
                           f"--screenshot={shot}", html_file.as_uri())
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (2400, 1280) and pixels.std() > 0.05, "the screenshot is blank"
    # The virtual time budget lets MathJax (loaded from _static, with the network off) finish typesetting.
    dom = _run_chromium(chromium, "--virtual-time-budget=20000", "--dump-dom", html_file.as_uri())
    assert dom.returncode == 0 and "<html" in dom.stdout, dom.stderr[-2000:]
    page = _Page(dom.stdout)

    assert page.math_containers >= static_math > 0, "MathJax did not typeset every formula"
    # Every script MathJax loaded (it adds its components as <script> tags) came from the book's _static.
    assert any("_static/mathjax/" in src for src in page.scripts)
    assert [s for s in page.scripts if re.match(r"(https?:)?//", s)] == []
    text = page.visible_text()
    raw = [text[max(m.start() - 80, 0): m.end() + 40] for m in RAW_TEX.finditer(text)]
    assert raw == [], f"untypeset TeX in the page ({len(raw)} places), e.g. {raw[:2]}"

    figures = [src for src in page.images if src.endswith(".png") or src.startswith("data:image")]
    assert figures, "the chapter page shows no figure"
    for src in figures:
        if not src.startswith("data:"):
            assert (html_file.parent / src).resolve().is_file(), f"missing image {src}"

    title = _title(chapter)
    assert title in " ".join(" ".join(page.h1).split()), f"the page's heading is not the chapter title {title!r}"

