"""Sphinx configuration of the ebm-teach book (Sphinx + MyST-NB + sphinx-book-theme, built offline).

Build it with ``bash book/build.sh`` (``make book``). The source folder Sphinx reads is
``book/_build/src``, which :func:`stage` fills at the start of every build, so that nothing is listed by hand:

- ``*.md``            symbolic links to this folder's pages (index, exercises intro, instructors, API);
- ``chapters/``       a link to ``notebooks/``: every ``NN_slug.ipynb`` is a chapter, shown with its stored
                      outputs (nothing is executed: ``nb_execution_mode = "off"``);
- ``exercises/``      a link to ``exercises/``: the learner's exercise notebooks;
- ``api/``            one page per module of ``ebm_teach``, found with ``pkgutil`` and written by
                      :func:`write_api_pages` (the hidden checks in ``ebm_teach.grade.checks`` are left out).

Math is typeset by MathJax 3 from the PyPI package ``sphinx-mathjax-offline``, whose files are copied into
``_static/mathjax`` (the SVG output needs no web fonts, so it also works from ``file://``).

What the reader sees of code, figures and docstrings is shaped by ``bookext.py`` (hooks connected in
:func:`setup`) and ``_static/ebm-book.css`` / ``ebm-book.js``: long code and output lines wrap with a hanging
indent, figures wider than the column use the margin, tool comments (``# noqa``, ``# NBVAL_…``) are hidden,
and the package's plain-text docstrings become reST with a parameter list.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import pkgutil
import re
import shutil
import sys
from pathlib import Path

BOOK = Path(__file__).resolve().parent
ROOT = BOOK.parent
sys.path.insert(0, str(BOOK))
import bookext  # noqa: E402  (book/bookext.py: the hooks below)

# A change to the hooks must re-read every page (they shape docstrings and code cells at read time):
# registered in setup() as a config value that invalidates the saved environment when it changes.
ebm_book_hooks = hashlib.sha256(Path(bookext.__file__).read_bytes()).hexdigest()[:16]

PAGES = ("index.md", "exercises.md", "instructors.md", "api.md")
LINKED_FOLDERS = {"chapters": ROOT / "notebooks", "exercises": ROOT / "exercises"}
API_EXCLUDE = re.compile(r"^ebm_teach\.grade\.checks\.|\.__main__$")

project = "ebm-teach"
author = "the ebm-teach authors"
copyright = "the ebm-teach authors, MIT licence"
html_title = "ebm-teach: energy-based models"

extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.mathjax", "sphinx.ext.viewcode"]
root_doc = "index"
include_patterns = ["*.md", "chapters/[0-9][0-9]_*.ipynb", "exercises/[0-9][0-9]_*.ipynb", "api/*.md"]
exclude_patterns = ["**/.ipynb_checkpoints", "**/.ipynb_checkpoints/**"]

# MyST-NB: show the notebooks as stored, with $…$ and $$…$$ math.
nb_execution_mode = "off"
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

# autodoc: members in source order, type hints in the description, never an import of the package's
# optional heavy dependencies at module level (there are none today; list them here if that changes).
autodoc_default_options = {"members": True, "member-order": "bysource", "show-inheritance": True}
autodoc_typehints = "description"
autodoc_mock_imports: list = []

# MathJax from a registry package, served from _static: no CDN.
_mathjax_spec = importlib.util.find_spec("sphinx-mathjax-offline")
if _mathjax_spec is None or not _mathjax_spec.submodule_search_locations:
    raise RuntimeError(
        "the book needs the package sphinx-mathjax-offline for offline math: "
        "pip install -e '.[book]' (make book does it)."
    )
MATHJAX_STATIC = Path(list(_mathjax_spec.submodule_search_locations)[0]) / "static"
html_static_path = [str(MATHJAX_STATIC), str(BOOK / "_static")]  # mathjax/ → _static/mathjax; the book's css/js
mathjax_path = "mathjax/tex-svg.js"
html_css_files = ["ebm-book.css"]
html_js_files = ["ebm-book.js"]

html_theme = "sphinx_book_theme"
html_theme_options = {
    "home_page_in_toc": True,
    "show_toc_level": 2,
    "use_download_button": True,
    "use_fullscreen_button": False,
    # pydata-sphinx-theme >= 0.16 adds a header bar holding a second search field above the book theme's
    # layout (the sidebar has one already): leave it empty, and the theme then leaves the bar out.
    "navbar_persistent": [],
}
html_last_updated_fmt = None
# html_copy_source stays on: the theme's download button serves each page's .ipynb from _sources/.


# ------------------------------------------------------------------------------------ staging the sources
def stage(src: Path) -> None:
    """Fill the Sphinx source folder ``src`` with links to the pages, chapters and exercises, and API pages."""
    if src.resolve() in (BOOK, ROOT):  # the links and generated pages must not land among the real files
        raise RuntimeError(
            f"build the book with 'bash book/build.sh': the source folder must be book/_build/src, not {src}."
        )
    src.mkdir(parents=True, exist_ok=True)
    for page in PAGES:
        _link(src / page, BOOK / page)
    for name, target in LINKED_FOLDERS.items():
        target.mkdir(exist_ok=True)
        _link(src / name, target)
    write_api_pages(src / "api")


def _link(link: Path, target: Path) -> None:
    if link.is_symlink() and Path(os.readlink(link)) == target:
        return
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.is_dir():
        shutil.rmtree(link)
    link.symlink_to(target, target_is_directory=target.is_dir())


def api_modules() -> list:
    """Every module of ``ebm_teach`` (pkgutil, so new modules appear with no edit), minus the hidden checks."""
    import ebm_teach

    names = ["ebm_teach"] + [m.name for m in pkgutil.walk_packages(ebm_teach.__path__, "ebm_teach.")]
    return sorted(n for n in names if not API_EXCLUDE.search(n))


def write_api_pages(folder: Path) -> None:
    """One MyST page per module with an ``automodule``; rewrite only what changed (incremental builds)."""
    folder.mkdir(parents=True, exist_ok=True)
    wanted = {}
    for name in api_modules():
        is_package = hasattr(importlib.import_module(name), "__path__")
        # A package page shows its docstring only: its members are documented in their own modules.
        options = "   :no-members:\n" if is_package else ""
        wanted[f"{name}.md"] = f"# `{name}`\n\n```{{eval-rst}}\n.. automodule:: {name}\n{options}```\n"
    for old in folder.glob("*.md"):
        if old.name not in wanted:
            old.unlink()
    for filename, text in wanted.items():
        path = folder / filename
        if not path.exists() or path.read_text() != text:
            path.write_text(text)


def setup(app):
    app.add_config_value("ebm_book_hooks", "", "env")
    stage(Path(app.srcdir))
    app.connect("autodoc-process-docstring", bookext.process_docstring)
    app.connect("object-description-transform", bookext.references_last, priority=900)
    app.connect("doctree-read", bookext.strip_cell_comments)
    app.connect("doctree-resolved", bookext.mark_figures)
    app.connect("html-page-context", bookext.wrap_page_pre)
