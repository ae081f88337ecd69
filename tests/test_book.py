"""The HTML book: it builds with warnings as errors, finds every chapter, exercise and module by itself,
serves MathJax from its own files, and reads well in a real browser (headless Chromium) at the book's
default width: math typeset, no code or output line cut off at the right edge, every figure shown at a
legible size, no tool comment or cell tag in sight, docstrings rendered as prose with their parameters.
Reader-facing text never cites the seed documents ("seed 003"), which readers never see.

The build (`bash book/build.sh`, which `make book` runs) happens once per test session. The browser tests
need Chromium: `bash book/ensure_chromium.sh` installs it on Debian as root; elsewhere they are skipped
with the reason, except under CI (CI=true), where a missing browser is a failure. All pages are measured in
one Chromium run (each page in an iframe of the default width), plus one screenshot per chapter, left in
book/_build/screenshots/ to look at.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import io
import json
import os
import pkgutil
import re
import shutil
import subprocess
import sys
import tempfile
import tokenize
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

DEFAULT_WIDTH = 1280  # the book's default width: a laptop's browser window (the theme shows both sidebars)
# A figure shown below this fraction of its natural width is hard to read: matplotlib's 9-pt labels at
# 100 dpi are 12.5 px, and under 10 px they blur. Figures up to 8 inches wide fit the column plus margin.
MIN_FIGURE_SCALE = 0.8
# Comments for a tool, and cell tags, that must never show in a page.
TOOL_TEXT = re.compile(r"NBVAL_[A-Z_]+|#\s*noqa|nbval-ignore-output|nbval-skip|raises-exception", re.IGNORECASE)
# The seed documents are the authors' notes: reader text cites papers (or says the idea), never them.
SEED_CITATION = re.compile(
    r"\bseeds?\s+0\d\d\b"                                   # seed 003, seeds 001 and 004, Seed 003's
    r"|\bthe\s+seeds?(?:'s|’s|'|’)(?=\s)"                   # the seed's table, the seeds' other convention
    r"|\bthe\s+seed\s+(?:says|said|concludes|writes|reads|recommends|compares|takes|gives|documents?)\b"
    r"|\bseed\s+(?:documents?|chapters?|texts?)\b",
    re.IGNORECASE,
)

sys.path.insert(0, str(ROOT / "book"))
import bookext  # noqa: E402  (book/bookext.py: the book's Sphinx hooks, tested here without a build)


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

    def __init__(self, html: str, hidden=None):
        super().__init__()
        self.hidden = self.HIDDEN if hidden is None else hidden
        self.depth, self.text, self.images, self.scripts, self.styles, self.h1 = 0, [], [], [], [], []
        self._in_h1 = False
        self.math_containers = html.count("<mjx-container")
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in self.hidden:
            self.depth += 1
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag == "script" and attrs.get("src"):
            self.scripts.append(attrs["src"])
        if tag == "link" and attrs.get("rel") == "stylesheet":
            self.styles.append(attrs.get("href", ""))
        self._in_h1 = self._in_h1 or tag == "h1"

    def handle_endtag(self, tag):
        if tag in self.hidden and self.depth:
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


def _package_modules() -> list:
    modules = ["ebm_teach"] + [m.name for m in pkgutil.walk_packages(ebm_teach.__path__, "ebm_teach.")]
    return [m for m in modules if not m.startswith("ebm_teach.grade.checks.") and not m.endswith(".__main__")]


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
    modules = _package_modules()
    assert "ebm_teach.core" in modules and "ebm_teach.grade.runner" in modules
    api_index = (HTML / "api.html").read_text()
    for name in modules:
        page = HTML / "api" / f"{name}.html"
        assert page.is_file(), f"no API page for {name}"
        assert f'id="module-{name}"' in page.read_text()
        assert f'href="api/{name}.html"' in api_index
    assert 'id="ebm_teach.core.get_device"' in (HTML / "api" / "ebm_teach.core.html").read_text()
    assert not (HTML / "api" / "ebm_teach.grade.checks.ch01_gaussian_ebm.html").exists()  # hidden checks stay hidden


def test_api_pages_show_docstrings_as_prose_with_a_parameter_list(book):
    """No docstring is a monospace block: each object's description opens with a paragraph; and a function
    whose docstring describes its parameters (``name: …``) lists them with their descriptions."""
    as_code, without_params = [], []
    for name in _package_modules():
        page = (HTML / "api" / f"{name}.html").read_text()
        # <dd> right after an object's signature: its docstring, which must not start with a code block
        signature_then_docstring = r'<dt class="sig[^"]*" id="([\w.]+)">.*?</dt>\s*<dd>\s*<(\w+)([^>]*)>'
        for match in re.finditer(signature_then_docstring, page, re.DOTALL):
            if match.group(2) == "div" and "highlight" in match.group(3):
                as_code.append(match.group(1))
    assert as_code == [], f"docstrings rendered as a code block instead of prose: {as_code[:10]}"
    from ebm_teach import samplers

    page = (HTML / "api" / "ebm_teach.samplers.html").read_text()
    for name, function in inspect.getmembers(samplers, inspect.isfunction):
        if function.__module__ != samplers.__name__ or not function.__doc__:
            continue
        documented = [p for p in inspect.signature(function).parameters
                      if re.search(rf"(^|[;.]\s+|\n){re.escape(p)}:\s", inspect.getdoc(function))]
        block = page.split(f'id="ebm_teach.samplers.{name}"', 1)[1].split("</dd>", 1)[0]
        for p in documented:
            if not re.search(rf"<strong>{re.escape(p)}</strong>.*?– ", block, re.DOTALL):
                without_params.append(f"{name}({p})")
    assert without_params == [], f"parameters described in the docstring but not listed: {without_params}"


def test_math_and_every_asset_are_served_from_the_book_itself(book):
    page = _Page((HTML / "chapters" / f"{_first_chapter().stem}.html").read_text())
    assert "../_static/mathjax/tex-svg.js" in [s.split("?")[0] for s in page.scripts]
    assert (HTML / "_static" / "mathjax" / "tex-svg.js").stat().st_size > 100_000
    external = [u for u in page.scripts + page.styles if re.match(r"(https?:)?//", u)]
    assert external == [], f"the chapter page loads {external} from the web"


def test_no_tool_comment_or_cell_tag_shows_in_a_page(book):
    """`# NBVAL_IGNORE_OUTPUT`, `# noqa` and cell tags are for tools: the build hides them from readers."""
    shown = []
    for page in sorted((HTML / "chapters").glob("*.html")) + sorted((HTML / "exercises").glob("*.html")):
        text = _Page(page.read_text(), hidden={"script", "style", "title", "noscript"}).visible_text()
        shown += [f"{page.name}: …{text[max(m.start() - 50, 0): m.end() + 20]}…" for m in TOOL_TEXT.finditer(text)]
    assert shown == [], f"tool comments or cell tags visible in {len(shown)} places, e.g. {shown[:5]}"


# ------------------------------------------------------------------------------------ in a browser
# Runs inside one Chromium page: loads every page in an iframe DEFAULT_WIDTH wide, waits for MathJax, and
# records what a reader would trip over: boxes whose content is wider than the box (a line cut off or
# hidden behind a scroll bar), each figure's natural and displayed width, and what the math test needs.
MEASURE_JS = r"""
(function () {
  "use strict";
  var PAGES = window.EBM_PAGES, WIDTH = window.EBM_WIDTH, results = [], k = 0;
  var HIDDEN = {SCRIPT: 1, STYLE: 1, PRE: 1, CODE: 1, "MJX-CONTAINER": 1, TEXTAREA: 1, SVG: 1, TITLE: 1, NOSCRIPT: 1};
  function visibleText(doc) {
    var out = [], walker = doc.createTreeWalker(doc.body, NodeFilter.SHOW_TEXT);
    for (var node = walker.nextNode(); node; node = walker.nextNode()) {
      var hidden = false;
      for (var el = node.parentElement; el; el = el.parentElement) {
        if (HIDDEN[el.tagName.toUpperCase()]) { hidden = true; break; }
      }
      if (!hidden) out.push(node.data);
    }
    return out.join(" ").replace(/\s+/g, " ");
  }
  function section(el) {
    var sec = el.closest("section"), heading = sec && sec.querySelector("h1, h2, h3, h4");
    return heading ? heading.textContent.replace(/[#¶]/g, "").trim().slice(0, 60) : "";
  }
  function measure(win, doc) {
    var out = {pageOverflow: doc.documentElement.scrollWidth - win.innerWidth, clipped: [], figures: []};
    var root = doc.querySelector("article") || doc.body;
    root.querySelectorAll("*").forEach(function (el) {
      if (el.closest("mjx-assistive-mml") || (el.parentElement && el.parentElement.closest("mjx-container"))) return;
      var style = win.getComputedStyle(el);
      if (style.display.indexOf("inline") === 0 && style.display !== "inline-block") return;
      if (["auto", "scroll", "hidden"].indexOf(style.overflowX) < 0) return;
      if (el.scrollWidth > el.clientWidth + 1) {
        out.clipped.push({tag: el.tagName.toLowerCase(), scroll: el.scrollWidth, client: el.clientWidth,
                          section: section(el),
                          text: (el.textContent || "").replace(/\s+/g, " ").slice(0, 100)});
      }
    });
    root.querySelectorAll("img").forEach(function (img) {
      var cell = /ebm-cell-(\d+)/.exec(img.className);
      out.figures.push({src: img.getAttribute("src"), natural: img.naturalWidth, cell: cell ? +cell[1] : null,
                        section: section(img),
                        shown: Math.round(img.getBoundingClientRect().width)});
    });
    out.mathContainers = doc.querySelectorAll("mjx-container").length;
    out.scripts = Array.prototype.map.call(doc.querySelectorAll("script[src]"),
                                           function (s) { return s.getAttribute("src"); });
    out.text = visibleText(doc);
    out.h1 = Array.prototype.map.call(doc.querySelectorAll("h1"), function (h) { return h.textContent; }).join(" ");
    return out;
  }
  function next() {
    if (k >= PAGES.length) {
      var done = document.createElement("script");
      done.type = "application/json"; done.id = "ebm-results"; done.textContent = JSON.stringify(results);
      document.body.appendChild(done);
      return;
    }
    var page = PAGES[k++], frame = document.createElement("iframe");
    frame.style.width = WIDTH + "px"; frame.style.height = "900px"; frame.style.border = "0";
    frame.onload = function () {
      var win = frame.contentWindow, tries = 0, finished = false;
      function finish() {
        if (finished) return;
        finished = true;
        var result;
        try { result = measure(win, win.document); } catch (e) { result = {error: String(e)}; }
        result.page = page; results.push(result);
        frame.remove(); setTimeout(next, 0);
      }
      (function wait() {
        var mathjax = win.MathJax;
        if (!win.document.querySelector(".math")) return setTimeout(finish, 100);
        if (mathjax && mathjax.startup && mathjax.startup.promise) {
          return mathjax.startup.promise.then(function () { setTimeout(finish, 300); });
        }
        if (++tries > 200) return finish();
        setTimeout(wait, 50);
      })();
    };
    frame.src = page;
    document.body.appendChild(frame);
  }
  window.addEventListener("load", next);
})();
"""


@pytest.fixture(scope="module")
def measured(book, chromium):
    """{page path relative to the book: what MEASURE_JS recorded there}, for every chapter, exercise, API
    and top-level page, at DEFAULT_WIDTH. One Chromium run (file:// iframes are readable with
    --allow-file-access-from-files)."""
    pages = sorted(str(p.relative_to(HTML)) for folder in ("chapters", "exercises", "api")
                   for p in (HTML / folder).glob("*.html"))
    pages += sorted(p.name for p in HTML.glob("*.html")  # index, exercises, instructors, api
                    if p.stem not in ("genindex", "search", "py-modindex") and not p.name.startswith("_"))
    harness = HTML / "_measure_pages.html"
    harness.write_text(
        '<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>'
        f"<script>window.EBM_PAGES = {json.dumps(pages)}; window.EBM_WIDTH = {DEFAULT_WIDTH};</script>"
        f"<script>{MEASURE_JS}</script></body></html>"
    )
    try:
        result = _run_chromium(chromium, "--allow-file-access-from-files", "--window-size=1400,1000",
                               "--virtual-time-budget=900000", "--dump-dom", harness.as_uri(), timeout=600)
    finally:
        harness.unlink(missing_ok=True)
    match = re.search(r'<script type="application/json" id="ebm-results">(.*?)</script>', result.stdout, re.DOTALL)
    assert match, f"the measuring page did not finish: {result.stderr[-2000:]}"
    records = {r["page"]: r for r in json.loads(match.group(1))}
    assert sorted(records) == sorted(pages)
    errors = {p: r["error"] for p, r in records.items() if "error" in r}
    assert errors == {}, f"measuring failed on {errors}"
    return records


def _cut_off(record) -> list:
    return [f"{c['tag']} {c['scroll']} px wide in {c['client']} px (section {c['section']!r}): {c['text'][:80]!r}"
            for c in record["clipped"]]


def _too_small(record) -> list:
    return [f"cell {f['cell']} (section {f['section']!r}): {f['natural']} px wide "
            f"(≈ {f['natural'] / 100:.1f} in at 100 dpi) shown at {f['shown']} px "
            f"({f['shown'] / f['natural']:.0%} < {MIN_FIGURE_SCALE:.0%})"
            for f in record["figures"] if f["natural"] and f["shown"] < MIN_FIGURE_SCALE * f["natural"]]


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_page_renders_math_figures_and_title_in_chromium(book, chromium, measured, chapter):
    html_file = HTML / "chapters" / f"{chapter.stem}.html"
    static_math = len(re.findall(r'class="math notranslate', html_file.read_text()))
    # The screenshot (the top of the page at the default width) is there to look at when an assertion fails.
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / f"{chapter.stem}.png"
    shot.unlink(missing_ok=True)
    result = _run_chromium(chromium, "--virtual-time-budget=20000", f"--window-size={DEFAULT_WIDTH},2400",
                           f"--screenshot={shot}", html_file.as_uri())
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (2400, DEFAULT_WIDTH) and pixels.std() > 0.05, "the screenshot is blank"
    record = measured[f"chapters/{chapter.stem}.html"]

    # MathJax (loaded from _static, with the network off) typeset every formula.
    assert record["mathContainers"] >= static_math > 0, "MathJax did not typeset every formula"
    # Every script MathJax loaded (it adds its components as <script> tags) came from the book's _static.
    assert any("_static/mathjax/" in src for src in record["scripts"])
    assert [s for s in record["scripts"] if re.match(r"(https?:)?//", s)] == []
    text = record["text"]
    raw = [text[max(m.start() - 80, 0): m.end() + 40] for m in RAW_TEX.finditer(text)]
    assert raw == [], f"untypeset TeX in the page ({len(raw)} places), e.g. {raw[:2]}"

    figures = [f["src"] for f in record["figures"] if f["src"].endswith(".png") or f["src"].startswith("data:image")]
    assert figures, "the chapter page shows no figure"
    for src in figures:
        if not src.startswith("data:"):
            assert (html_file.parent / src).resolve().is_file(), f"missing image {src}"

    title = _title(chapter)
    assert title in " ".join(record["h1"].split()), f"the page's heading is not the chapter title {title!r}"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_page_cuts_off_no_line_and_shows_every_figure_legibly(measured, chapter):
    """At the default width no code, output or equation runs past its box, and no figure is shrunk below
    MIN_FIGURE_SCALE (none is enlarged either). Fix a failure in the chapter: a figure at most 8 inches
    wide (figsize), an equation split over lines (aligned, or two displays)."""
    record = measured[f"chapters/{chapter.stem}.html"]
    assert record["pageOverflow"] <= 0, f"the page is {record['pageOverflow']} px wider than the window"
    cut = _cut_off(record)
    assert cut == [], f"{len(cut)} boxes cut off at {DEFAULT_WIDTH} px: " + "; ".join(cut[:6])
    small = _too_small(record)
    assert small == [], f"{len(small)} figures too small to read at {DEFAULT_WIDTH} px: " + "; ".join(small)
    enlarged = [f for f in record["figures"] if f["natural"] and f["shown"] > f["natural"] + 1]
    assert enlarged == [], f"figures shown larger than they were drawn (blurred): {enlarged}"


def test_exercise_api_and_other_pages_cut_off_no_line(measured):
    problems = {page: _cut_off(r) + _too_small(r)
                + ([f"the page is {r['pageOverflow']} px wider than the window"] if r["pageOverflow"] > 0 else [])
                for page, r in measured.items() if not page.startswith("chapters/")}
    problems = {page: p for page, p in problems.items() if p}
    assert problems == {}, f"cut-off lines or small figures at {DEFAULT_WIDTH} px: {problems}"


# ------------------------------------------------------------------------------------ without a build
def _reader_texts():
    """(where, text) for everything a reader of the book, the exercises or the package sees."""
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "exercises").glob("*.ipynb")):
        for index, cell in enumerate(json.loads(notebook.read_text())["cells"]):
            yield f"{notebook.relative_to(ROOT)} cell {index}", "".join(cell["source"])
            for output in cell.get("outputs", []):
                data = output.get("data", {})
                texts = [output.get("text", ""), data.get("text/plain", ""), data.get("text/markdown", ""),
                         data.get("text/html", ""), "\n".join(output.get("traceback", []))]
                yield f"{notebook.relative_to(ROOT)} cell {index} output", "\n".join(
                    "".join(t) if isinstance(t, list) else t for t in texts)
    for folder in ("notebooks", "solutions", "exercises"):
        for source in sorted((ROOT / folder).glob("*.py")):
            yield str(source.relative_to(ROOT)), source.read_text()
    for page in sorted((ROOT / "book").glob("*.md")) + [ROOT / "README.md"]:
        if page.is_file():
            yield str(page.relative_to(ROOT)), page.read_text()
    # the package: docstrings, messages and comments (a learner opens a module after reading the chapter)
    for module in sorted(Path(ebm_teach.__file__).parent.rglob("*.py")):
        where = str(module.relative_to(ROOT))
        source = module.read_text()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                yield f"{where}:{node.lineno}", node.value
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                yield f"{where}:{token.start[0]}", token.string


def test_seed_citation_pattern_finds_citations_and_not_random_seeds():
    for citation in ("(seeds 003, 004)", "Seed 003's worked example", "seeds 000 and 001 write",
                     "The seeds' other convention", "the seed says", "The seed's table holds"):
        assert SEED_CITATION.search(citation), citation
    for fine in ("over six seeds", "seed_everything(0)", "trained with seed 0", "seeds 0, 1, 2",
                 "Same schedule and seed as", "make_generator(seed=3)", "a seed of 42"):
        assert not SEED_CITATION.search(fine), fine


def test_reader_text_never_cites_the_seed_documents():
    """Readers never see the seed documents: reader text cites the paper (author, year) or states the idea."""
    found = []
    for where, text in _reader_texts():
        for match in SEED_CITATION.finditer(text):
            line = text[: match.start()].count("\n")
            snippet = " ".join(text[max(match.start() - 40, 0): match.end() + 30].split())
            found.append(f"{where}{f' line {line + 1}' if line else ''}: …{snippet}…")
    assert found == [], f"{len(found)} places cite the seed documents:\n" + "\n".join(found)


# The package's docstrings are plain text (../shared/STYLE.md); bookext turns them into reST.
def _docstrings():
    for name in _package_modules():
        module = importlib.import_module(name)
        yield name, "module", module
        for attr, obj in vars(module).items():
            if attr.startswith("_") or getattr(obj, "__module__", None) != name:
                continue
            if inspect.isfunction(obj):
                yield f"{name}.{attr}", "function", obj
            elif inspect.isclass(obj):
                yield f"{name}.{attr}", "class", obj
                for member, value in vars(obj).items():
                    if not member.startswith("_") and (inspect.isfunction(value) or isinstance(value, property)):
                        yield f"{name}.{attr}.{member}", "method", value


def _rst_warnings(text: str) -> str:
    from docutils.core import publish_doctree

    plain = re.sub(r":[\w.:+-]+:`", "`", text)  # :func:`x` → `x`: docutils alone knows no Sphinx roles
    plain = plain.replace(".. code-block:: text\n   :class: ebm-display", ".. code:: text")
    plain = plain.replace(".. code-block:: pycon\n   :class: ebm-display", ".. code:: text")
    stream = io.StringIO()
    doctree = publish_doctree(plain, settings_overrides={
        "report_level": 2, "halt_level": 5, "warning_stream": stream,
        "file_insertion_enabled": False, "raw_enabled": False})
    return stream.getvalue(), doctree.astext()


def test_every_package_docstring_becomes_clean_rest_that_keeps_every_word():
    pytest.importorskip("docutils")
    problems = []
    for name, what, obj in _docstrings():
        doc = inspect.cleandoc(obj.__doc__) if isinstance(obj, property) and obj.__doc__ else inspect.getdoc(obj)
        if not doc:
            continue
        rst = "\n".join(bookext.docstring_to_rst(doc.splitlines(), bookext._parameter_names(obj), what))
        warnings, text = _rst_warnings(rst)
        if warnings:
            problems.append(f"{name}: {warnings.strip()[:200]}")
        words = set(re.findall(r"[a-z0-9]+", re.sub(r":[\w.:+-]+:`~?", "`", doc).lower()))
        enumerators = set(re.findall(r"^(\d+)[.)]\s", doc, re.MULTILINE))  # list numbers live in the list node
        lost = words - enumerators - set(re.findall(r"[a-z0-9]+", text.lower()))
        if lost:
            problems.append(f"{name}: lost {sorted(lost)[:8]}")
    assert problems == [], "\n".join(problems)


def test_docstring_conversion_of_the_house_style():
    def convert(doc, params=("x", "energy", "step_size", "generator", "args")):
        return "\n".join(bookext.docstring_to_rst(doc.strip("\n").splitlines(), params))

    rst = convert("""One Langevin step:  x' = x - (eps/2) grad E(x) + sqrt(eps) z,  z ~ N(0, I).

The drift is |grad E|^2 small; *args go to W_ and c_j.

    E(x) = |x|^2 / 2

x: (batch, *event) in {0,1}; energy: callable x -> (batch,); step_size: eps > 0.
generator: a torch.Generator. Returns (x', E(x)) detached.
Raises DivergenceError when E is not finite.
Reference: Welling & Teh (2011).""")
    assert rst.splitlines()[0] == "One Langevin step: ``x' = x - (eps/2) grad E(x) + sqrt(eps) z``, ``z ~ N(0, I)``."
    assert r"\|grad E\|^2 small; \*args go to W\_ and c\_j." in rst  # escaped, not markup
    assert ".. code-block:: text\n   :class: ebm-display\n\n   E(x) = |x|^2 / 2" in rst
    assert r":param x: (batch, \*event) in {0,1}" in rst
    assert ":param energy: callable x -> (batch,)" in rst
    assert ":param x: a\n:param generator: a" in convert("x, generator: a")  # one field per name
    assert ":param step\\_size: eps > 0." in rst
    assert ":param generator: a torch.Generator." in rst
    assert ":returns: (x\\', E(x)) detached." in rst  # a prime, kept from Sphinx's smart quotes
    assert ":raises DivergenceError: when E is not finite." in rst
    assert ":Reference: Welling & Teh (2011)." in rst
    assert _rst_warnings(rst)[0] == ""
    # a summary that starts with "Returns" stays the summary; a bullet list stays a list; roles stay roles
    rst = convert("""Returns the energy.

Two kinds:

* an **exact** figure, see :func:`exact`;
* a figure from `training`, |x| large.""")
    assert rst.startswith("Returns the energy.\n")
    assert "* an **exact** figure, see :func:`exact`;\n* a figure from ``training``, \\|x\\| large." in rst
    # a line that starts like a list or a field in the middle of a sentence is escaped
    assert convert("a\n- b, 1. c").startswith("a - b, 1. c")
    assert convert("A. Smith (2001) wrote it.").startswith("\\A. Smith (2001)")


def test_tool_comments_are_cut_from_code_cells():
    source = ('# NBVAL_IGNORE_OUTPUT\nimport time  # noqa: E402\nx = "# noqa stays in a string"\n'
              "y = 1  # a comment a reader wants\n# type: ignore\n")
    assert bookext.strip_directive_comments(source) == (
        'import time\nx = "# noqa stays in a string"\ny = 1  # a comment a reader wants\n')
    # code that does not tokenize (a magic) still loses its whole-line and trailing tool comments
    assert bookext.strip_directive_comments("%time f()  # noqa\n# NBVAL_SKIP\nf(") == "%time f()\nf("


def test_each_pre_line_gets_its_own_balanced_span_with_its_indent():
    body = '<pre><span></span><span class="s">"""a\n    b"""</span>\n\n    <b>c</b> &lt; d\n</pre>'
    wrapped = bookext.wrap_pre_lines(body)
    assert wrapped == ('<pre><span class="ebm-line" style="--i:0"><span></span><span class="s">"""a</span></span>\n'
                       '<span class="ebm-line" style="--i:4"><span class="s">    b"""</span></span>\n\n'
                       '<span class="ebm-line" style="--i:4">    <b>c</b> &lt; d</span>\n</pre>')
    assert bookext.wrap_pre_lines(wrapped) == wrapped  # idempotent
    assert re.sub(r"<[^>]+>", "", wrapped) == re.sub(r"<[^>]+>", "", body)  # the text (and copy-paste) unchanged


def test_figures_wider_than_the_column_may_use_the_margin(tmp_path):
    png = tmp_path / "f.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + (900).to_bytes(4, "big") + (300).to_bytes(4, "big"))
    assert bookext.png_width(png) == 900
    assert bookext.png_width(tmp_path / "missing.png") is None
    assert "ebm-wide" in bookext.figure_classes(900) and "ebm-wide" not in bookext.figure_classes(500)
    assert bookext.figure_classes(None) == ["ebm-figure"]
