"""The grader's child process: runs a submission's cells, then answers calls to the learner's functions.

Started by :mod:`ebm_teach.grade.jail` (limits and sandbox first), it knows nothing of checks or points: it
reads requests from one pipe and writes replies to another (see :mod:`ebm_teach.grade.proxy`):

    ("cells", label, cells)          run the code cells; reply ("cells", [errors])
    ("probe", names)                 reply ("probe", {name: {"callable", "file", "module"}})
    ("call", name, payload, grad)    call the learner's function; reply ("return", value, changes, handle)
                                     or ("raise", exception, changes, None)
    ("vjp", handle, grad_outputs)    gradients of a call's result; reply ("grads", [...]) or ("raise", …)
    ("release",)                     forget the graphs kept for gradients (no reply)

Replies hold plain data only (numbers, strings, bytes, lists, tuples, dicts; a tensor as dtype, shape and
bytes), because the parent reads them with an unpickler that refuses every global. Cells run one by one in a shared namespace, like a notebook run top
to bottom; an exception in one cell is recorded and the next cell runs anyway, so a broken cell does not hide
the functions defined in the others. Cells tagged ``self-check`` or ``hidden-test`` are skipped. What the
learner's code prints goes to this process's stdout/stderr, which the parent reads and caps.
"""
from __future__ import annotations

import builtins
import linecache
import numbers
import os
import re
import sys
import traceback

import torch

from .proxy import encode_reply_bytes, read_frame_blocking, tensor_to_raw, unpack_call, write_frame_blocking

SKIP_TAGS = {"self-check", "hidden-test"}
_MAGIC_LINE = re.compile(r"^(\s*)[%!].*$", re.MULTILINE)
_MAX_DEPTH = 40
_REPR_CHARS = 300


def _compile_cell(source: str, filename: str):
    """Compile a cell; IPython magics (``%matplotlib``, ``!pip``) are skipped if plain Python fails to parse."""
    try:
        return compile(source, filename, "exec")
    except SyntaxError:
        if not _MAGIC_LINE.search(source):
            raise
    without_magics = _MAGIC_LINE.sub(lambda m: m.group(1) + "pass", re.sub(r"\A%%.*\n?", "", source))
    try:
        return compile(without_magics, filename, "exec")
    except SyntaxError:
        return compile(source, filename, "exec")  # report the error in the code as written


def _where(err: BaseException, label: str):
    """'cell 3, line 5: `code`' for the last frame of the learner's code in the traceback, or None."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename.startswith(label + ", cell ")]
    if not frames:
        return None
    last = frames[-1]
    code = f": `{last.line.strip()}`" if last.line else ""
    return f"in {last.filename}, line {last.lineno}{code}"


def _describe(err: BaseException, label: str) -> str:
    text = f"{type(err).__name__}: {_safe_str(err)}".strip().rstrip(":")
    where = _where(err, label)
    return f"{text} ({where})" if where else text


def _safe_str(obj, limit: int = 20_000) -> str:
    try:
        text = str(obj)
    except BaseException as err:  # a learner's __str__ may raise anything
        text = f"<str() failed: {type(err).__name__}>"
    return text[:limit]


def run_cells(cells, namespace: dict, label: str) -> list:
    """Execute the code cells in ``namespace``; return ``[{"cell", "first_line", "message"}]`` for those that raised."""
    errors = []
    for cell in cells:
        if cell["kind"] != "code" or SKIP_TAGS & set(cell["tags"]) or not cell["source"].strip():
            continue
        filename = f"{label}, cell {cell['number']}"
        # linecache lets tracebacks quote the learner's line, as they would in Jupyter.
        lines = cell["source"].splitlines(keepends=True)
        linecache.cache[filename] = (len(cell["source"]), None, lines, filename)
        first_line = cell["source"].strip().splitlines()[0][:60]
        try:
            exec(_compile_cell(cell["source"], filename), namespace)
        except SyntaxError as err:
            where = f"line {err.lineno}: `{(err.text or '').strip()}`" if err.lineno else "somewhere"
            errors.append({"cell": cell["number"], "first_line": first_line,
                           "message": f"SyntaxError: {err.msg} ({where})"})
        except BaseException as err:  # SystemExit, KeyboardInterrupt from the learner's code included
            errors.append({"cell": cell["number"], "first_line": first_line, "message": _describe(err, label)})
    return errors


# ------------------------------------------------------------------------------------------- encoding values
def _object(value, note: str = "") -> dict:
    try:
        text = repr(value)[:_REPR_CHARS]
    except BaseException:
        text = "<repr() failed>"
    return {"__object__": [type(value).__name__, note or text]}


def _tensor(t: torch.Tensor, grad_outputs: list) -> dict:
    with torch._C.DisableTorchFunctionSubclass():
        if t.device.type == "meta":
            return {"__object__": ["Tensor on the meta device",
                                   f"a tensor on the meta device (shape {tuple(t.shape)}): it holds no numbers"]}
        data = t.detach()
        if data.layout != torch.strided:
            data = data.to_dense()
        if data.is_quantized:
            data = data.dequantize()
        raw = tensor_to_raw(data)
    if t.requires_grad:
        grad_outputs.append(t)
        return {"__tensor__": raw, "grad": len(grad_outputs) - 1}
    return {"__tensor__": raw}


def encode(value, grad_outputs: list, depth: int = 0):
    """``value`` as plain data for the parent; tensors that require grad are listed in ``grad_outputs``."""
    if depth > _MAX_DEPTH:
        return _object(value, "a value nested too deeply")
    kind = type(value)
    if value is None or kind in (bool, int, float, str, bytes):
        return value
    if isinstance(value, complex):
        return {"__complex__": [float(value.real), float(value.imag)]}
    if isinstance(value, torch.Tensor):
        try:
            return _tensor(value, grad_outputs)
        except Exception as err:
            return _object(value, f"a tensor the grader cannot read ({type(err).__name__}: {_safe_str(err, 200)})")
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, (tuple, list)):  # torch.Size and named tuples become tuples
        items = [encode(v, grad_outputs, depth + 1) for v in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict):
        return {"__dict__": [[encode(k, grad_outputs, depth + 1), encode(v, grad_outputs, depth + 1)]
                             for k, v in value.items()]}
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.ndarray):
        try:
            return {"__ndarray__": tensor_to_raw(torch.from_numpy(numpy.ascontiguousarray(value).copy()))}
        except Exception:
            return _object(value)
    if numpy is not None and isinstance(value, numpy.generic):
        return encode(value.item(), grad_outputs, depth + 1)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return _object(value)


def _exception(err: BaseException, label: str) -> list:
    names = [c.__name__ for c in type(err).__mro__]
    frames = traceback.extract_tb(err.__traceback__)
    # The stub is the learner's own `raise NotImplementedError()`: the innermost frame is a `raise` line in
    # their file (torch's NotImplementedError comes from C code called on some other line).
    stub = bool(frames) and frames[-1].filename.startswith(label + ", cell ") and \
        (frames[-1].line or "raise").lstrip().startswith("raise")
    return [names, _safe_str(err), _where(err, label), stub]


# ------------------------------------------------------------------------------------------- side effects
def _snapshot(objects: list) -> list:
    before = []
    for obj in objects:
        if isinstance(obj, torch.Tensor):
            grad = obj.grad if obj.is_leaf else None
            before.append((obj._version, id(grad), grad._version if grad is not None else None))
        elif isinstance(obj, torch.Generator):
            before.append(obj.get_state())
        elif isinstance(obj, list):
            before.append(list(obj))
        else:
            before.append(list(obj.items()))
    return before


def _changes(objects: list, before: list) -> list:
    out, scratch = [], []
    for index, (obj, old) in enumerate(zip(objects, before)):
        try:
            if isinstance(obj, torch.Tensor):
                grad = obj.grad if obj.is_leaf else None
                grad_changed = (id(grad), grad._version if grad is not None else None) != old[1:]
                data_changed = obj._version != old[0]
                if data_changed or grad_changed:
                    data = _tensor(obj.detach(), scratch)["__tensor__"] if data_changed else None
                    grad_data = _tensor(grad, scratch)["__tensor__"] if grad_changed and grad is not None else None
                    out.append(["tensor", index, data, grad_changed, grad_data])
            elif isinstance(obj, torch.Generator):
                state = obj.get_state()
                if not torch.equal(state, old):
                    out.append(["generator", index, tensor_to_raw(state)])
            elif isinstance(obj, list):
                if len(obj) != len(old) or any(a is not b for a, b in zip(obj, old)):
                    out.append(["list", index, [encode(v, scratch) for v in obj]])
            else:
                items = list(obj.items())
                if len(items) != len(old) or any(a[0] is not b[0] or a[1] is not b[1] for a, b in zip(items, old)):
                    out.append(["dict", index, encode(obj, scratch)])
        except Exception:  # an argument the learner's code broke: leave the caller's copy as it was
            continue
    return out


# ------------------------------------------------------------------------------------------- serving
class _Server:
    def __init__(self, command_fd: int, reply_fd: int):
        self.command_fd, self.reply_fd = command_fd, reply_fd
        self.namespace = {"__name__": "__main__", "__builtins__": builtins, "display": print}
        self.label = "submission"
        self.functions = {}
        self.handles = {}

    def reply(self, message) -> None:
        try:
            data = encode_reply_bytes(message)
        except Exception as err:  # e.g. a value torch cannot save: say so instead of going silent
            data = encode_reply_bytes(("raise", [["TypeError"], f"the result could not be sent to the grader: "
                                                 f"{_safe_str(err, 300)}", None, False], [], None))
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        write_frame_blocking(self.reply_fd, data)

    def cells(self, label, cells):
        self.label = label
        errors = run_cells(cells, self.namespace, label)
        self.reply(("cells", errors))

    def probe(self, names):
        found = {}
        for name in names:
            fn = self.namespace.get(name)
            if callable(fn):
                self.functions[name] = fn  # the check holds this object, even if the file rebinds the name
            code = getattr(fn, "__code__", None)
            found[name] = {"callable": callable(fn), "file": _safe_str(getattr(code, "co_filename", ""), 300),
                           "module": _safe_str(getattr(fn, "__module__", "") or "", 300)}
        self.reply(("probe", found))

    def call(self, name, payload, grad_enabled):
        function = self.functions[name]
        try:
            args, kwargs, objects, grad_inputs = unpack_call(payload)
        except Exception as err:  # e.g. a class the child cannot import: the check's problem, said plainly
            message = f"the learner's process could not load the arguments ({type(err).__name__}: {_safe_str(err, 500)})"
            self.reply(("raise", [["ProxyError"], message, None, False], [], None))
            return
        before = _snapshot(objects)
        grad_outputs = []
        try:
            with torch.set_grad_enabled(grad_enabled):
                value = function(*args, **kwargs)
            body = encode(value, grad_outputs)
            kind = "return"
        except BaseException as err:  # SystemExit and KeyboardInterrupt from the learner's code too
            body, kind = _exception(err, self.label), "raise"
        handle = None
        if kind == "return" and grad_outputs and grad_inputs:
            handle = len(self.handles) + 1
            self.handles[handle] = (grad_outputs, grad_inputs)
        self.reply((kind, body, _changes(objects, before), handle))

    def vjp(self, handle, grads):
        outputs, inputs = self.handles[handle]
        try:
            pairs = [(o, g) for o, g in zip(outputs, grads) if o.requires_grad]
            result = torch.autograd.grad([o for o, _ in pairs], inputs, [g for _, g in pairs],
                                         allow_unused=True, retain_graph=True)
            scratch = []
            self.reply(("grads", [None if g is None else _tensor(g, scratch)["__tensor__"] for g in result]))
        except BaseException as err:
            self.reply(("raise", _exception(err, self.label)))

    def serve(self):
        import pickle

        while True:
            try:
                message = pickle.loads(read_frame_blocking(self.command_fd))
            except EOFError:  # the grader is gone
                return
            kind = message[0]
            if kind == "cells":
                self.cells(*message[1:])
            elif kind == "probe":
                self.probe(*message[1:])
            elif kind == "call":
                self.call(*message[1:])
            elif kind == "vjp":
                self.vjp(*message[1:])
            elif kind == "release":
                self.handles.clear()


def serve(command_fd: int, reply_fd: int, info: dict) -> None:
    """Answer the parent's requests forever (the parent ends this process)."""
    server = _Server(command_fd, reply_fd)
    server.reply(("ready", {str(k): str(v) for k, v in info.items()}))
    server.serve()
    os._exit(0)  # skip interpreter shutdown: threads or atexit handlers left by the learner must not hang it
