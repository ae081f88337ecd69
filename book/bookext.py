"""The book's own Sphinx hooks (loaded by ``conf.py``): what the reader sees of code, figures and docstrings.

- :func:`docstring_to_rst` turns the package's plain-text docstrings (the house style of ``STYLE.md``: one
  line of what, the equation, shapes such as ``v: (batch, n_visible) in {0,1}``, the reference) into clean
  reStructuredText: paragraphs, equation blocks, bullet lists, and one field list with the parameters, what
  is returned or raised, and the references. Whatever reST would misread (``|x|^2``, ``*args``, ``W_``) is
  escaped, so the API pages build with warnings as errors and read as prose.
- :func:`strip_directive_comments` hides linter and test-runner comments (``# noqa``, ``# NBVAL_…``) in the
  code cells a reader sees.
- :func:`wrap_pre_lines` puts every line of a code or output block in its own element, so that the
  stylesheet can wrap a long line with a hanging indent instead of cutting it off at the right edge.
- :func:`mark_figures` gives every figure in a cell output the classes ``ebm-figure`` and, when it is wider
  than the text column, ``ebm-wide`` (and the theme's ``full-width``, which folds the page's table of
  contents away while the figure is on screen), so that wide figures can use the margin.

Only :mod:`docutils` and the standard library are needed here, so the tests import this file directly.
"""
from __future__ import annotations

import html
import inspect
import io
import re
import struct
import tokenize
from pathlib import Path

# ------------------------------------------------------------------------------------ code cells
# Comments that talk to a tool, not to the reader.
DIRECTIVE_COMMENT = re.compile(
    r"#\s*(?:NBVAL_[A-Z_]+|noqa\b|type:\s*ignore\b|pragma:\s*no\s*cover\b|pylint:\s*\w+|fmt:\s*(?:on|off|skip)\b)"
    r".*$",
    re.IGNORECASE,
)


def strip_directive_comments(source: str) -> str:
    """``source`` without ``# noqa``, ``# NBVAL_…``, ``# type: ignore``, ``# pylint:`` or ``# fmt:`` comments.

    A line that held only such a comment disappears; a trailing one is cut with the spaces before it. Comments
    are found with :mod:`tokenize`, so a ``# noqa`` inside a string stays; code that does not tokenize
    (IPython magics, a deliberate syntax error) falls back to whole comment lines and trailing ``  # …``.
    """
    lines = source.split("\n")
    cuts: dict = {}  # line index -> column where the directive comment starts
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT and DIRECTIVE_COMMENT.match(tok.string):
                cuts[tok.start[0] - 1] = tok.start[1]
    except (tokenize.TokenError, IndentationError, SyntaxError):
        cuts = {}
        for i, line in enumerate(lines):
            match = re.search(r"(?:^|\s)(#.*)$", line)
            if match and DIRECTIVE_COMMENT.match(match.group(1)) and line.count('"') % 2 == 0 \
                    and line.count("'") % 2 == 0:
                cuts[i] = match.start(1)
    if not cuts:
        return source
    kept = []
    for i, line in enumerate(lines):
        if i in cuts:
            head = line[: cuts[i]].rstrip()
            if not head.strip():
                continue  # the line held only the comment
            line = head
        kept.append(line)
    return "\n".join(kept)


# ------------------------------------------------------------------------------------ <pre> lines
_PRE = re.compile(r"(<pre\b[^>]*>)(.*?)(</pre>)", re.DOTALL)
_TAG = re.compile(r"(<[^>]+>)")
_VOID = {"br", "img", "wbr", "hr", "input"}


def _split_lines(inner: str) -> list:
    """Split the HTML inside a <pre> into lines, each with its open tags closed and reopened (balanced)."""
    lines, current, stack = [], [], []  # stack: (name, start tag) of the elements open here
    for part in _TAG.split(inner):
        if not part:
            continue
        if part.startswith("<"):
            current.append(part)
            name = re.match(r"</?\s*([a-zA-Z0-9]+)", part)
            name = name.group(1).lower() if name else ""
            if part.startswith("</"):
                for k in range(len(stack) - 1, -1, -1):
                    if stack[k][0] == name:
                        del stack[k]
                        break
            elif name not in _VOID and not part.endswith("/>"):
                stack.append((name, part))
            continue
        pieces = part.split("\n")
        for k, piece in enumerate(pieces):
            if k:
                current.extend(f"</{n}>" for n, _ in reversed(stack))
                lines.append("".join(current))
                current = [tag for _, tag in stack]
            current.append(piece)
    lines.append("".join(current))
    return lines


def _visible(fragment: str) -> str:
    return html.unescape(_TAG.sub("", fragment))


def wrap_pre_lines(body: str) -> str:
    """Wrap each non-empty line of every <pre> in ``<span class="ebm-line" style="--i:N">``.

    N is the line's own indentation in characters; the stylesheet indents the continuation of a wrapped
    line by N + 2 characters (a hanging indent), so a wrapped line reads as one line and is never confused
    with the next statement (Python's own continuation lines sit at multiples of 4). The newlines stay
    between the spans, so copied code is unchanged. Empty lines stay bare (an empty inline block has no
    height). A <pre> that already holds ebm-line spans is left alone.
    """

    def one(match: re.Match) -> str:
        start, inner, end = match.groups()
        if 'class="ebm-line"' in inner:
            return match.group(0)
        out = []
        for line in _split_lines(inner):
            text = _visible(line)
            if not text.strip():
                out.append(line)
                continue
            indent = len(text) - len(text.lstrip(" "))
            out.append(f'<span class="ebm-line" style="--i:{indent}">{line}</span>')
        return start + "\n".join(out) + end

    return _PRE.sub(one, body)


# ------------------------------------------------------------------------------------ figures
COLUMN_PX = 680  # the text column at the book's default width (1280 px window): wider figures use the margin


def png_width(path: Path):
    """The width in pixels of a PNG file, or None when ``path`` is not a readable PNG."""
    try:
        with open(path, "rb") as f:
            head = f.read(24)
    except OSError:
        return None
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return struct.unpack(">I", head[16:20])[0]


def figure_classes(width) -> list:
    """Classes for a cell-output figure ``width`` pixels wide (None: unknown)."""
    classes = ["ebm-figure"]
    if width is not None and width > COLUMN_PX:
        classes += ["ebm-wide", "full-width"]
    return classes


def mark_figures(app, doctree, docname) -> None:
    """``doctree-resolved`` hook: classes on the figures of cell outputs, and an alt text a reader can use."""
    from docutils import nodes

    for image in doctree.findall(nodes.image):
        if not _inside(image, "cell_output"):
            continue
        uri = image.get("uri", "")
        width = None
        for base in (Path(app.srcdir), Path(app.srcdir) / Path(docname).parent):
            width = png_width(base / uri)
            if width is not None:
                break
        cell = _ancestor_with(image, "cell_index")
        where = [f"ebm-cell-{cell['cell_index']}"] if cell is not None else []  # names the cell in test reports
        image["classes"] = list(dict.fromkeys(image["classes"] + figure_classes(width) + where))
        if image.get("alt", "") in ("", uri) or image.get("alt", "").endswith(".png"):
            image["alt"] = "figure made by the code cell above"


def _ancestor_with(node, attribute: str):
    parent = node.parent
    while parent is not None and not (hasattr(parent, "get") and parent.get(attribute) is not None):
        parent = parent.parent
    return parent


def _inside(node, cls: str) -> bool:
    parent = node.parent
    while parent is not None:
        if cls in parent.get("classes", []) if hasattr(parent, "get") else False:
            return True
        parent = parent.parent
    return False


def strip_cell_comments(app, doctree) -> None:
    """``doctree-read`` hook: :func:`strip_directive_comments` on every code cell's source."""
    from docutils import nodes

    for block in list(doctree.findall(nodes.literal_block)):
        if "cell_input" not in block.parent.get("classes", []):
            continue
        old = block.astext()
        new = strip_directive_comments(old)
        if new != old:
            block.children = []
            block += nodes.Text(new)
            block.rawsource = new


def wrap_page_pre(app, pagename, templatename, context, doctree) -> None:
    """``html-page-context`` hook: :func:`wrap_pre_lines` on the page body."""
    if "body" in context:
        context["body"] = wrap_pre_lines(context["body"])


# ------------------------------------------------------------------------------------ docstrings
_SECTION = re.compile(r"(Returns?|Raises|References?|Examples?|Notes?|See also)\b:?\s*")
_BULLET = re.compile(r"([-*+•]|\d+[.)])\s+")
# Inline markup kept as the author wrote it: ``literal``, :role:`target`, `text <link>`_, **strong**, *emphasis*.
_KEEP = re.compile(
    r"``(?=\S).+?(?<=\S)``(?![`\w])"
    r"|:[\w.+-]+(?::[\w.+-]+)*:`[^`]+`"
    r"|`[^`<>]+<[^`<>]+>`__?"
    r"|(?<![\w*\\])\*\*(?=[^\s*])[^*]{1,120}?(?<=[^\s*])\*\*(?![\w*])"
    r"|(?<![\w*\\])\*(?=[^\s*])[^*]{1,120}?(?<=[^\s*])\*(?![\w*])"
)
_DEFAULT_ROLE = re.compile(r"(?<![\w`:])`([^`]+)`(?![`_\w])")
_LATEX = re.compile(r"(?<![\w$\\])\$(?=\S)([^$]*?[\\^_{][^$]*?)(?<=\S)\$(?![\w$])")
_ESCAPE = re.compile(r"([\\*`|_])")
_PRIME = re.compile(r"(?<=[\w)\]])'(?![A-Za-z])")
_LINE_START = re.compile(
    r"([-*+•]|#\.|\d+[.)]|[a-zA-Z][.)]|[ivxlcdmIVXLCDM]+[.)]|\(\w+\)|>>>|\.\.|:|\|)(\s|$)"
    r"|([=\-~^\"'`#*+<>:._]{2,})\s*$"
)


def _escape_plain(text: str) -> str:
    """Escape the characters reST would read as markup in ``text`` (which holds no markup)."""
    text = _ESCAPE.sub(r"\\\1", text)
    text = _PRIME.sub(r"\\'", text)  # x', eps': a prime, not a closing quote for Sphinx's smart quotes
    return text.replace("::", r":\:")


def rst_inline(text: str) -> str:
    """One paragraph's text as reST: the author's inline markup kept, LaTeX ($…$) as math, the rest escaped."""
    segments = re.split(r"\s{2,}", text.strip())
    if len(segments) > 1:  # formulas set off by two spaces: "step:  x' = x - eps grad E,  z ~ N(0, I)."
        segments = [_as_code(seg) if _is_formula(seg) else seg for seg in segments]
    text = " ".join(" ".join(segments).split())
    out, pos = [], 0
    for match in _KEEP.finditer(text):
        out.append(_inline_plain(text[pos: match.start()]))
        out.append(match.group(0))
        pos = match.end()
    out.append(_inline_plain(text[pos:]))
    result = "".join(out)
    if _LINE_START.match(result):  # would start a list, a field, a comment, a section underline…
        result = "\\" + result
    return result


_MATHY = re.compile(r"=|~|->|<-|\^|\bsqrt\(|\bexp\(|\blog\b")
_MATH_WORDS = {"sqrt", "grad", "softplus", "sigma", "sigmoid", "mean", "logsumexp", "tanh", "relu", "const",
               "alpha", "beta", "gamma", "delta", "epsilon", "lambda", "theta", "kappa", "omega", "diag", "trace",
               "argmax", "argmin", "prod", "cosh", "sinh"}


def _is_formula(segment: str) -> bool:
    """A stretch of text that is an equation: a relation sign and no English word of four letters or more."""
    if "`" in segment or not _MATHY.search(segment):
        return False
    return all(word.lower() in _MATH_WORDS for word in re.findall(r"\b[a-zA-Z]{4,}\b", segment))


def _as_code(segment: str) -> str:
    core, punct = re.match(r"(.*?)([,.;:]?)$", segment, re.DOTALL).groups()
    return f"``{core.strip()}``{punct}" if core.strip() else segment


def _inline_plain(text: str) -> str:
    out, pos = [], 0
    pattern = re.compile(f"{_DEFAULT_ROLE.pattern}|{_LATEX.pattern}")
    for match in pattern.finditer(text):
        out.append(_escape_plain(text[pos: match.start()]))
        code, latex = match.group(1), match.group(2)
        if code is not None:
            out.append(f"``{code}``" if "``" not in code and code.strip() == code else _escape_plain(match.group(0)))
        else:
            out.append(f":math:`{latex}`")
        pos = match.end()
    out.append(_escape_plain(text[pos:]))
    return "".join(out)


def _parameter_names(obj) -> list:
    """The names a docstring of ``obj`` may describe as ``name: …``: its parameters (or a NamedTuple's fields)."""
    names = []
    fields = getattr(obj, "_fields", None)
    if isinstance(fields, tuple):
        names += list(fields)
    target = obj
    if isinstance(obj, (staticmethod, classmethod)):
        target = obj.__func__
    if isinstance(target, property):
        return names
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return names
    for name, param in signature.parameters.items():
        if name in ("self", "cls"):
            continue
        prefix = {inspect.Parameter.VAR_POSITIONAL: "*", inspect.Parameter.VAR_KEYWORD: "**"}.get(param.kind, "")
        names += [name, prefix + name] if prefix else [name]
    return names


def _names_at(text: str, params) -> tuple:
    """If ``text`` starts with ``name[, name…]:`` naming parameters, return (names, rest); else (None, text)."""
    match = re.match(r"(\*{0,2}[A-Za-z_]\w*(?:\s*(?:,|and)\s*\*{0,2}[A-Za-z_]\w*)*)\s*:(?:\s+|$)", text)
    if not match:
        return None, text
    names = [n for n in re.split(r"\s*(?:,|\band\b)\s*", match.group(1)) if n]
    if not names or any(n not in params for n in names):
        return None, text
    return names, text[match.end():]


def _split_top(text: str, params) -> list:
    """Split a parameter section at ';' or '. ' (outside brackets and ``code``) where a new name: follows."""
    pieces, depth, start, i, in_code = [], 0, 0, 0, False
    while i < len(text):
        if text.startswith("``", i):
            in_code = not in_code
            i += 2
            continue
        ch = text[i]
        if not in_code:
            if ch in "([{":
                depth += 1
            elif ch in ")]}":
                depth = max(depth - 1, 0)
            elif ch in ";." and depth == 0 and i + 1 < len(text) and text[i + 1] == " ":
                rest = text[i + 2:]
                names, _ = _names_at(rest, params)
                if names or _SECTION.match(rest) and _section_kind(rest):
                    pieces.append(text[start: i + (1 if ch == "." else 0)])
                    start = i + 2
        i += 1
    pieces.append(text[start:])
    return [p.strip() for p in pieces if p.strip()]


def _section_kind(text: str):
    """'returns', 'raises', 'Reference(s)', 'prose' (Example, Note, See also), or None."""
    match = _SECTION.match(text)
    if not match:
        return None
    word = match.group(1).lower()
    if word in ("returns", "return"):
        # "Returns" as a verb at the start of a sentence, not "Return the …" (an imperative summary)
        return "returns" if word == "returns" or text[match.end(1): match.end(1) + 1] == ":" else None
    if word == "raises":
        return "raises"
    if word in ("reference", "references"):
        return "references" if text[match.end(1): match.end(1) + 1] == ":" else None
    return "prose" if text[match.end(1): match.end(1) + 1] in (":", " ") else None


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _blocks(lines: list) -> list:
    """Group docstring lines into ('para', lines), ('display', lines) and ('list', items, marker) blocks."""
    blocks, i, n = [], 0, len(lines)
    while i < n:
        line = lines[i]
        if not line.strip():
            i += 1
        elif _indent(line) == 0 and line.startswith(">>>"):  # a doctest example and its output
            block = []
            while i < n and lines[i].strip():
                block.append(lines[i])
                i += 1
            blocks.append(("display", block))
        elif _indent(line) > 0:  # an equation, a table or code set off by indentation
            block = []
            while i < n and (_indent(lines[i]) > 0 or not lines[i].strip() and i + 1 < n and _indent(lines[i + 1]) > 0):
                block.append(lines[i])
                i += 1
            blocks.append(("display", _dedent(block)))
        elif _BULLET.match(line):
            start = int(re.match(r"\d+", line).group(0)) if line[0].isdigit() else None
            items = []
            while i < n and lines[i].strip():
                bullet = _BULLET.match(lines[i])
                if bullet and _indent(lines[i]) == 0:
                    items.append(lines[i][bullet.end():])
                elif _indent(lines[i]) > 0:
                    items[-1] += " " + lines[i].strip()
                else:
                    break
                i += 1
            markers = [f"{start + k}." if start is not None else "*" for k in range(len(items))]
            blocks.append(("list", items, markers))
        else:
            block = []
            while i < n and lines[i].strip() and _indent(lines[i]) == 0 \
                    and not (block and block[-1].rstrip().endswith(":") and _BULLET.match(lines[i])):
                block.append(lines[i])
                i += 1
            blocks.append(("para", block))
    return blocks


def _dedent(block: list) -> list:
    while block and not block[-1].strip():
        block.pop()
    width = min(len(line) - len(line.lstrip()) for line in block if line.strip())
    return [line[width:] for line in block]


def docstring_to_rst(lines: list, params=(), what: str = "function") -> list:
    """The reST for a plain-text docstring given as ``lines`` (already dedented, as autodoc passes them).

    ``params``: the names that ``name: description`` lines may document (the object's parameters); ``what``:
    autodoc's kind of object ("module" gets its references as a paragraph, the others as a field).
    Returns the new lines. Paragraphs are joined and escaped; indented blocks and ``>>>`` examples become
    literal blocks; ``-``/``*``/``1.`` lines become lists; from the first line that starts with a parameter
    name, the paragraph is split into one field per parameter, and "Returns …", "Raises …" and
    "Reference(s): …" become fields too, gathered in one field list at the end (where Sphinx adds the types).
    """
    params = set(params)
    out: list = []
    # each field: [key, text, extra lines]; "last" is the field a following display block belongs to
    fields: dict = {"param": [], "returns": [], "raises": [], "references": [], "last": None}
    for index, block in enumerate(_blocks(list(lines))):
        kind = block[0]
        if kind == "display":
            last = fields["last"]
            if last is not None and last[1].rstrip().endswith(":"):
                last[2] += _display_rst(block[1])  # "… returns a dict:" followed by its table
            else:
                out += _display_rst(block[1])
        elif kind == "list":
            out += [f"{marker} {rst_inline(item)}" for item, marker in zip(block[1], block[2])] + [""]
        else:
            fields["last"] = None
            _paragraph(block[1], params, out, fields, first=index == 0)
            continue
        fields["last"] = None
    tail = []
    for names, text, extra in fields["param"]:
        for name in names:  # "x, x_prop: (batch, d)" describes each (Sphinx reads ":param a, b:" as a type)
            tail += [f":param {_escape_plain(name)}: {rst_inline(text)}"] + _field_extra(extra)
    for _, text, extra in fields["returns"]:
        tail += [f":returns: {rst_inline(text.strip())}"] + _field_extra(extra)
    for _, text, extra in fields["raises"]:
        match = re.match(r"(?::\w+:`~?)?([A-Z]\w*(?:Error|Exception|Warning|Interrupt))`?\s*(.*)", text, re.DOTALL)
        if match:
            tail += [f":raises {match.group(1)}: {rst_inline(match.group(2).strip() or match.group(1))}"]
        else:
            tail += [f":raises: {rst_inline(text.strip())}"]
        tail += _field_extra(extra)
    for label, text, extra in fields["references"]:
        if what == "module":
            out += [f"**{label}:** {rst_inline(text)}", ""] + [line[3:] for line in _field_extra(extra)]
        else:
            tail += [f":{label}: {rst_inline(text)}"] + _field_extra(extra)
    if tail:
        out += tail + [""]
    while out and not out[-1].strip():
        out.pop()
    return out


def _display_rst(body: list) -> list:
    language = "pycon" if body[0].lstrip().startswith(">>>") else "text"
    return [f".. code-block:: {language}", "   :class: ebm-display", ""] + \
        ["   " + line if line.strip() else "" for line in body] + [""]


def _field_extra(extra: list) -> list:
    """A field's display blocks, indented into the field's body."""
    return [""] + ["   " + line if line else "" for line in extra] if extra else []


def _paragraph(lines: list, params, out: list, fields: dict, first: bool) -> None:
    """Split one paragraph into prose and fields (see :func:`docstring_to_rst`)."""
    segments = []  # ('prose' | 'fields', text), at line starts where a parameter or a section begins
    for k, line in enumerate(lines):
        names, _ = _names_at(line, params)
        section = None if (first and k == 0) else _section_kind(line)
        starts_fields = names is not None or section in ("returns", "raises", "references")
        if starts_fields:
            segments.append(["fields", line])
        elif section == "prose":
            segments.append(["prose", line])
        elif segments:
            segments[-1][1] += " " + line
        else:
            segments.append(["prose", line])
    for kind, text in segments:
        if kind == "prose":
            # a prose run may still end with "Returns …" / "Reference: …" sentences
            head, tail = _split_sentence_sections(text, first, params)
            if head:
                out += [rst_inline(head), ""]
                fields["last"] = None
            if tail:
                _fields(tail, params, out, fields)
        else:
            _fields(text, params, out, fields)
        first = False


def _split_sentence_sections(text: str, first: bool, params):
    """Split ``text`` before the first sentence that starts with Returns / Raises / Reference(s): or with
    a parameter's ``name:`` (never inside the summary, the first sentence of the docstring)."""
    for match in re.finditer(r"(?<=[.)])\s+(?=(?:Returns|Raises|References?:)\s|\*{0,2}[A-Za-z_]\w*\s*[:,])", text):
        rest = text[match.end():]
        if _section_kind(rest) in ("returns", "raises", "references") or _names_at(rest, params)[0]:
            if first and match.start() < len(text.split(". ")[0]):
                continue
            return text[: match.start()], rest
    return text, ""


def _fields(text: str, params, out: list, fields: dict) -> None:
    """Turn a run of ``name: …`` / Returns / Raises / Reference(s) pieces into fields (prose stays prose)."""
    for piece in _split_top(text, params):
        piece = piece.rstrip(";,")
        names, rest = _names_at(piece, params)
        kind = _section_kind(piece)
        last = fields["last"]
        if names:
            fields["last"] = [names, rest, []]
            fields["param"].append(fields["last"])
        elif kind in ("returns", "raises"):
            fields["last"] = [kind, _SECTION.sub("", piece, count=1), []]
            fields[kind].append(fields["last"])
        elif kind == "references":
            label = "References" if piece.startswith("References") else "Reference"
            fields["last"] = [label, _SECTION.sub("", piece, count=1), []]
            fields["references"].append(fields["last"])
        elif last is not None and kind != "prose":
            last[1] += "; " + piece
        else:
            out += [rst_inline(piece), ""]
            fields["last"] = None


def references_last(app, domain, objtype, contentnode) -> None:
    """``object-description-transform`` hook (after autodoc's type hints): Reference(s) fields go last.

    Sphinx appends the "Return type" field to the field list; the references read better after it.
    """
    from docutils import nodes

    for field_list in [node for node in contentnode if isinstance(node, nodes.field_list)]:
        for field in [f for f in field_list if f[0].astext() in ("Reference", "References")]:
            field_list.remove(field)
            field_list.append(field)


def process_docstring(app, what, name, obj, options, lines) -> None:
    """``autodoc-process-docstring`` hook: the docstring's lines replaced by :func:`docstring_to_rst`."""
    if not any(line.strip() for line in lines):
        return
    lines[:] = docstring_to_rst(list(lines), _parameter_names(obj), what)
