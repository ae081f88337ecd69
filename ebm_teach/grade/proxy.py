"""Calling a learner's function that lives in another process, as if it lived here.

The grader's checks run in the trusted process; the learner's code runs in a jailed child
(:mod:`~ebm_teach.grade.child`) that only answers calls. A check receives a :class:`RemoteFunction`; calling
it sends the arguments to the child and brings the result back:

- **There** (trusted to untrusted): the arguments are pickled, so anything a check can build crosses:
  tensors, numbers, lists and dicts, ``torch.Generator`` (its state), ``nn.Module`` instances of importable
  classes, and functions. Functions from ``torch``, the standard library or the package itself go by
  reference; any other function (a check's helper, a lambda, a closure) goes by value: its code, the globals
  it names and its closure cells.
- **Back** (untrusted to trusted): the child encodes the result as plain data (numbers, strings, bytes,
  lists, tuples, dicts; a tensor as its dtype, shape and raw bytes) and the parent reads it with an
  unpickler that refuses every global (Python's "restricting globals" recipe, stricter than
  ``torch.load(weights_only=True)``): it can build containers, strings and numbers, and nothing that runs
  code. Every value is then checked (types, a dtype from a fixed list, a shape that matches the byte count,
  sizes) before a check sees it; a tensor is always rebuilt here, dense, contiguous and on the CPU. A value
  that is not plain data arrives as a :class:`LearnerObject` placeholder, which a check rejects like any
  wrong type.
- **Side effects come back too**: a tensor argument changed in place, a parameter's ``.grad``, a
  generator's advanced state, a list or dict argument (or one captured by a closure) that the call changed,
  are copied back into the caller's objects, so a check sees what it would see in one process.
- **Gradients**: when an argument requires grad and the result depends on it, the result is attached to the
  caller's graph through :class:`_Bridge`, whose backward asks the child for the vector-Jacobian product.
  First-order gradients only (the child may use ``create_graph`` inside; the check may not through it).
- **Exceptions** raised by the learner's function are raised here as the nearest built-in exception type
  with the learner's message, so ``assert_raises(ValueError, …)`` works; the stub's ``NotImplementedError``
  stays one.

Anything the child does wrong (no answer in time, a crash, a reply that cannot be read) raises
:class:`Abort`, a ``BaseException``, so that no check can swallow it: the exercise ends there.
"""
from __future__ import annotations

import builtins
import io
import importlib
import marshal
import os
import pickle
import select
import struct
import sys
import time
import types

import torch

__all__ = ["Abort", "ProxyError", "LearnerError", "LearnerObject", "RemoteFunction", "Session",
           "read_frame_blocking", "write_frame_blocking", "pack_call", "unpack_call", "encode_reply_bytes",
           "load_plain", "tensor_to_raw", "tensor_from_raw"]

MAX_REPLY_BYTES = 512 * 2**20  # one reply from the child
MAX_ELEMENTS = 2**26  # tensor elements in one reply (a stride-0 tensor is small on the wire, not in memory)
MAX_DEPTH = 64  # nesting of lists, tuples and dicts in one reply
MAX_TEXT = 20_000  # characters kept of a learner's exception message
_HEADER = struct.Struct("<Q")
_POLL_SECONDS = 0.05
_LIBRARY_ROOTS = {"torch", "numpy", "scipy", "ebm_teach"} | set(getattr(sys, "stdlib_module_names", ()))


class Abort(BaseException):
    """The child cannot go on (timeout, crash, unreadable reply): the exercise gets ``status`` and ``message``.

    A ``BaseException`` so that a check's ``except Exception`` cannot swallow it.
    """

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class ProxyError(Exception):
    """A value could not be sent to the learner's process (a limit of the proxy, not the learner's fault)."""


class LearnerError(Exception):
    """An exception of the learner's code whose type is not a built-in one (its name is ``learner_type``)."""

    def __init__(self, learner_type: str, message: str):
        super().__init__(message)
        self.learner_type = learner_type


class _Malformed(Exception):
    """A reply from the child that is not what the protocol allows (the message says what it was)."""


class LearnerObject:
    """Stands for a value the learner's function returned that is not plain data (shown by type and repr)."""

    def __init__(self, type_name: str, text: str):
        self.type_name, self.text = type_name, text

    def __repr__(self):
        return self.text


# ------------------------------------------------------------------------------------------- framing
def write_frame_blocking(fd: int, payload: bytes) -> None:
    """Write one length-prefixed message to a blocking descriptor (the child's side)."""
    view = memoryview(_HEADER.pack(len(payload)) + payload)
    while view:
        view = view[os.write(fd, view):]


def read_frame_blocking(fd: int) -> bytes:
    """Read one length-prefixed message from a blocking descriptor; EOFError when the writer is gone."""
    def exact(n):
        out = bytearray()
        while len(out) < n:
            chunk = os.read(fd, min(n - len(out), 1 << 20))
            if not chunk:
                raise EOFError
            out += chunk
        return bytes(out)

    (size,) = _HEADER.unpack(exact(_HEADER.size))
    return exact(size)


# ------------------------------------------------------------------------------------------- tensors as bytes
_DTYPES = {str(d).split(".")[1]: d for d in (
    torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.complex128, torch.complex64,
    torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool)}


def tensor_to_raw(t: torch.Tensor) -> list:
    """``[dtype name, shape, bytes]`` of a dense tensor (copied to the CPU, contiguous)."""
    t = t.detach().cpu().contiguous()
    data = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
    return [str(t.dtype).split(".")[1], list(t.shape), data]


def tensor_from_raw(raw, limit: int = MAX_ELEMENTS) -> torch.Tensor:
    """The tensor of :func:`tensor_to_raw`, after checking that dtype, shape and byte count agree."""
    if type(raw) is not list or len(raw) != 3:
        raise _Malformed("a tensor")
    name, shape, data = raw
    if type(name) is not str or name not in _DTYPES or type(data) is not bytes or type(shape) is not list \
            or len(shape) > 32 or not all(type(n) is int and n >= 0 for n in shape):
        raise _Malformed("a tensor's dtype or shape")
    dtype, numel = _DTYPES[name], 1
    for n in shape:
        numel *= n
    if numel > limit or numel * torch.empty((), dtype=dtype).element_size() != len(data):
        raise _Malformed(f"a tensor of shape {shape[:8]} with {len(data)} bytes")
    if not data:
        return torch.empty(shape, dtype=dtype)
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).view(dtype).reshape(shape)


# ------------------------------------------------------------------------------------------- arguments: parent → child
def _names_in(code) -> set:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names_in(const)
    return names


def _by_reference(fn) -> bool:
    module_name = getattr(fn, "__module__", None) or ""
    root = module_name.split(".")[0]
    if root not in _LIBRARY_ROOTS or module_name.startswith("ebm_teach.grade.checks"):
        return False
    obj = sys.modules.get(module_name)
    for part in fn.__qualname__.split("."):
        obj = getattr(obj, part, None)
    return obj is fn


def _make_function(code_bytes, name, qualname, module, n_cells):
    cells = tuple(types.CellType() for _ in range(n_cells)) if n_cells else None
    fn = types.FunctionType(marshal.loads(code_bytes), {"__builtins__": builtins, "__name__": module}, name,
                            None, cells)
    fn.__qualname__, fn.__module__ = qualname, module
    return fn


def _set_function_state(fn, state):
    globals_, defaults, kwdefaults, cells, attributes = state
    fn.__globals__.update(globals_)
    fn.__defaults__, fn.__kwdefaults__ = defaults, kwdefaults
    for cell, value in zip(fn.__closure__ or (), cells or ()):
        if value is not _EMPTY_CELL:
            cell.cell_contents = value
    fn.__dict__.update(attributes)
    return fn


class _EmptyCell:
    def __reduce__(self):
        return "_EMPTY_CELL"


_EMPTY_CELL = _EmptyCell()


def _reduce_function(fn):
    cells = []
    for cell in fn.__closure__ or ():
        try:
            cells.append(cell.cell_contents)
        except ValueError:  # a cell not yet filled
            cells.append(_EMPTY_CELL)
    globals_ = {n: fn.__globals__[n] for n in sorted(_names_in(fn.__code__)) if n in fn.__globals__}
    state = (globals_, fn.__defaults__, fn.__kwdefaults__, tuple(cells), dict(fn.__dict__))
    args = (marshal.dumps(fn.__code__), fn.__name__, fn.__qualname__, fn.__module__, len(cells))
    return _make_function, args, state, None, None, _set_function_state


class _Table:
    """The mutable objects an argument list holds (tensors, generators, lists, dicts), numbered."""

    def __init__(self):
        self.objects, self._index = [], {}

    def ref(self, obj):
        key = id(obj)
        if key not in self._index:
            self._index[key] = len(self.objects)
            self.objects.append(obj)
        return ("o", self._index[key])


class _ArgPickler(pickle.Pickler):
    def __init__(self, file, table: _Table):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.table = table

    def persistent_id(self, obj):
        if isinstance(obj, (torch.Tensor, torch.Generator)) or type(obj) in (list, dict):
            return self.table.ref(obj)
        return None

    def reducer_override(self, obj):
        if isinstance(obj, types.FunctionType) and not _by_reference(obj):
            return _reduce_function(obj)
        if isinstance(obj, types.ModuleType):
            return importlib.import_module, (obj.__name__,)
        return NotImplemented


def _dumps(obj, table: _Table) -> bytes:
    buffer = io.BytesIO()
    _ArgPickler(buffer, table).dump(obj)
    return buffer.getvalue()


def pack_call(args: tuple, kwargs: dict):
    """Pickle ``(args, kwargs)`` for the child; return ``(payload, table)`` (table: the objects to sync back)."""
    table = _Table()
    try:
        main = _dumps((tuple(args), dict(kwargs)), table)
        entries, i = [], 0
        while i < len(table.objects):  # describing an entry may add more (a list of tensors)
            obj = table.objects[i]
            if isinstance(obj, torch.Tensor):
                grad = tensor_to_raw(obj.grad) if obj.is_leaf and obj.grad is not None else None
                entries.append(("t", tensor_to_raw(obj), obj.requires_grad, isinstance(obj, torch.nn.Parameter),
                                grad))
            elif isinstance(obj, torch.Generator):
                entries.append(("g", str(obj.device), tensor_to_raw(obj.get_state())))
            elif type(obj) is list:
                entries.append(("l", _dumps(tuple(obj), table)))
            else:
                entries.append(("d", _dumps(tuple(obj.items()), table)))
            i += 1
        payload = pickle.dumps((main, entries), protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError, ValueError) as err:
        raise ProxyError(f"the grader could not send these arguments to the learner's process ({err}).") from err
    return payload, table


class _ArgUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, objects: list):
        super().__init__(io.BytesIO(data))
        self.objects = objects

    def persistent_load(self, pid):
        return self.objects[pid[1]]


def unpack_call(payload: bytes):
    """The child's side of :func:`pack_call`: ``(args, kwargs, objects, grad_inputs)``."""
    main, entries = pickle.loads(payload)
    objects, grad_inputs = [], []
    for entry in entries:
        kind = entry[0]
        if kind == "t":
            _, raw, requires_grad, is_param, grad = entry
            data = tensor_from_raw(raw, limit=2**62)
            grad = None if grad is None else tensor_from_raw(grad, limit=2**62)
            if is_param:
                tensor = torch.nn.Parameter(data, requires_grad=requires_grad)
            else:
                tensor = data.requires_grad_(requires_grad) if data.is_floating_point() or data.is_complex() else data
            if grad is not None and tensor.requires_grad:
                tensor.grad = grad
            if tensor.requires_grad:
                grad_inputs.append(tensor)
            objects.append(tensor)
        elif kind == "g":
            generator = torch.Generator(device=entry[1])
            generator.set_state(tensor_from_raw(entry[2], limit=2**62))
            objects.append(generator)
        else:
            objects.append([] if kind == "l" else {})
    for obj, entry in zip(objects, entries):
        if entry[0] == "l":
            obj.extend(_ArgUnpickler(entry[1], objects).load())
        elif entry[0] == "d":
            obj.update(_ArgUnpickler(entry[1], objects).load())
    args, kwargs = _ArgUnpickler(main, objects).load()
    return args, kwargs, objects, grad_inputs


# ------------------------------------------------------------------------------------------- replies: child → parent
def encode_reply_bytes(reply) -> bytes:
    """Serialise a reply made of plain data (the child's side; tensors already turned into bytes)."""
    return pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)


class _PlainUnpickler(pickle.Unpickler):
    """Loads only what pickle builds without naming a global: containers, strings, bytes, numbers, None."""

    def find_class(self, module, name):
        raise _Malformed(f"a reply that names {module}.{name}")

    def persistent_load(self, pid):
        raise _Malformed("a reply with a persistent reference")


def load_plain(data: bytes):
    """Read a reply with :class:`_PlainUnpickler` (it cannot run code); _Malformed if it is anything else."""
    try:
        return _PlainUnpickler(io.BytesIO(data)).load()
    except _Malformed:
        raise
    except Exception as err:  # truncated or invalid pickle data, an opcode it refuses, ...
        raise _Malformed(f"unreadable data ({type(err).__name__})") from None


class _Decoder:
    """Turns a reply read by :func:`load_plain` into values, checking every one on the way."""

    def __init__(self):
        self.elements = 0
        self.grad_outputs = []  # (index in the child's list, tensor)

    def tensor(self, raw) -> torch.Tensor:
        t = tensor_from_raw(raw, MAX_ELEMENTS - self.elements)
        self.elements += t.numel()
        return t

    def value(self, obj, depth=0):
        if depth > MAX_DEPTH:
            raise _Malformed("values nested too deeply")
        kind = type(obj)
        if obj is None or kind in (bool, int, float, str, bytes):
            return obj
        if kind is list:
            return [self.value(v, depth + 1) for v in obj]
        if kind is tuple:
            return tuple(self.value(v, depth + 1) for v in obj)
        if kind is dict and len(obj) in (1, 2):
            if "__tensor__" in obj:
                tensor = self.tensor(obj["__tensor__"])
                index = obj.get("grad")
                if index is not None:
                    if type(index) is not int:
                        raise _Malformed("a gradient output index")
                    self.grad_outputs.append((index, tensor))
                return tensor
            if len(obj) == 1 and "__ndarray__" in obj:
                return self.tensor(obj["__ndarray__"]).numpy()
            if len(obj) == 1 and "__complex__" in obj:
                parts = obj["__complex__"]
                if type(parts) is list and len(parts) == 2 and all(type(p) is float for p in parts):
                    return complex(*parts)
            if len(obj) == 1 and "__dict__" in obj and type(obj["__dict__"]) is list:
                out = {}
                for pair in obj["__dict__"]:
                    if type(pair) is not list or len(pair) != 2:
                        raise _Malformed("a dict entry")
                    key = self.value(pair[0], depth + 1)
                    try:
                        out[key] = self.value(pair[1], depth + 1)
                    except TypeError as err:  # an unhashable key
                        raise _Malformed(f"a dict key ({err})") from None
                return out
            if len(obj) == 1 and "__object__" in obj:
                pair = obj["__object__"]
                if type(pair) is list and len(pair) == 2 and all(type(s) is str for s in pair):
                    return LearnerObject(pair[0][:200], pair[1][:2000])
        raise _Malformed(f"a value of type {kind.__name__}")

    def text(self, obj, limit=MAX_TEXT) -> str:
        if type(obj) is not str:
            raise _Malformed("a message that is not text")
        return obj[:limit] + ("… [cut]" if len(obj) > limit else "")



_BUILTIN_EXCEPTIONS = {name: cls for name, cls in vars(builtins).items()
                       if isinstance(cls, type) and issubclass(cls, Exception)}


def _exception(body, decoder: _Decoder) -> Exception:
    if type(body) is not list or len(body) != 4:
        raise _Malformed("an exception")
    names, message, where, stub = body
    if type(names) is not list or not names or not all(type(n) is str for n in names) or type(stub) is not bool:
        raise _Malformed("an exception's type")
    message = decoder.text(message)
    cls = next((_BUILTIN_EXCEPTIONS[n] for n in names if n in _BUILTIN_EXCEPTIONS), None)
    if cls is NotImplementedError and not stub:  # raised by torch or a library, not the learner's stub
        cls = None
    err = cls(message) if cls is not None else LearnerError(names[0][:100], message)
    err._ebm_type = names[0][:100]
    err._ebm_where = decoder.text(where, 500) if where is not None else None
    err._ebm_stub = stub
    return err


# ------------------------------------------------------------------------------------------- the parent's session
class _Bridge(torch.autograd.Function):
    """Attaches the child's results to the caller's graph: backward asks the child for the gradients."""

    @staticmethod
    def forward(ctx, session, handle, outputs, *inputs):
        ctx.session, ctx.handle, ctx.shapes = session, handle, [tuple(t.shape) for t in inputs]
        return tuple(outputs)

    @staticmethod
    def backward(ctx, *grad_outputs):
        grads = ctx.session.vjp(ctx.handle, [g.detach() for g in grad_outputs], ctx.shapes)
        return (None, None, None, *grads)


class Session:
    """The parent's end of one child: sends requests, reads and checks replies, enforces a time budget.

    process: the child (``subprocess.Popen``); command_fd / reply_fd: the parent's pipe ends. ``budget`` is the
    time left, in seconds, to the learner's code in the current step (set it before each step): waiting for a
    reply spends it; the checks' own work in this process does not.
    """

    def __init__(self, process, command_fd: int, reply_fd: int):
        self.process, self.command_fd, self.reply_fd = process, command_fd, reply_fd
        os.set_blocking(command_fd, False)
        os.set_blocking(reply_fd, False)
        self.budget = 0.0
        self.step = "starting"
        self.broken = None  # an Abort once the child is unusable: every later request raises it again
        self._handles = 0

    # -- transport ---------------------------------------------------------------------------------------
    def _fail(self, status, message):
        self.broken = Abort(status, message)
        raise self.broken

    def _wait(self, fd, event, deadline):
        poller = select.poll()
        poller.register(fd, event | select.POLLHUP | select.POLLERR)
        while True:
            left = deadline - time.monotonic()
            if poller.poll(max(0.0, min(left, _POLL_SECONDS)) * 1000):
                return
            if self.process.poll() is not None:
                self._fail("died", self.step)
            if left <= 0:
                self._fail("timeout", self.step)

    def _write(self, data: bytes, deadline):
        view = memoryview(_HEADER.pack(len(data)) + data)
        while view:
            self._wait(self.command_fd, select.POLLOUT, deadline)
            try:
                view = view[os.write(self.command_fd, view):]
            except BlockingIOError:
                continue
            except BrokenPipeError:
                self._fail("died", self.step)

    def _read(self, n: int, deadline) -> bytes:
        out = bytearray()
        while len(out) < n:
            self._wait(self.reply_fd, select.POLLIN, deadline)
            try:
                chunk = os.read(self.reply_fd, min(n - len(out), 1 << 20))
            except BlockingIOError:
                continue
            if not chunk:  # the child closed its end: dead, or beyond talking to
                self._fail("died", self.step)
            out += chunk
        return bytes(out)

    def send(self, message) -> None:
        """Send a request that needs no reply."""
        if self.broken:
            raise self.broken
        start = time.monotonic()
        self._write(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL), start + max(self.budget, 0.0))
        self.budget -= time.monotonic() - start

    def request(self, message, expected: tuple):
        """Send ``message`` (None: send nothing), wait for the reply within the budget, load it safely.

        Returns the reply, a tuple whose first item is one of ``expected``.
        """
        if self.broken:
            raise self.broken
        start = time.monotonic()
        deadline = start + max(self.budget, 0.0)
        try:
            if message is not None:
                self._write(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL), deadline)
            (size,) = _HEADER.unpack(self._read(_HEADER.size, deadline))
            if size > MAX_REPLY_BYTES:
                self._fail("protocol", f"a reply of {size:,} bytes (the limit is {MAX_REPLY_BYTES:,})")
            data = self._read(size, deadline)
        finally:
            self.budget -= time.monotonic() - start
        try:
            reply = load_plain(data)
        except _Malformed as err:
            self._fail("protocol", f"a reply that cannot be read safely ({err})")
        if type(reply) is not tuple or not reply or reply[0] not in expected:
            self._fail("protocol", f"an unexpected reply (expected {' or '.join(expected)})")
        return reply

    # -- calls ---------------------------------------------------------------------------------------------
    def call(self, name: str, args: tuple, kwargs: dict):
        payload, table = pack_call(args, kwargs)
        grad_inputs = [o for o in table.objects if isinstance(o, torch.Tensor) and o.requires_grad]
        reply = self.request(("call", name, payload, torch.is_grad_enabled()), ("return", "raise"))
        decoder = _Decoder()
        try:
            if len(reply) != 4:
                raise _Malformed("a call's reply")
            kind, body, sync, handle = reply
            self._apply_sync(table, sync, decoder)
            if kind == "raise":
                raise_this = _exception(body, decoder)
            else:
                value = decoder.value(body)
                raise_this = None
        except _Malformed as err:
            self._fail("protocol", f"a malformed reply ({err})")
        if raise_this is not None:
            raise raise_this
        if type(handle) is int:
            self._handles += 1
        if decoder.grad_outputs:
            value = self._attach_gradients(value, decoder.grad_outputs, grad_inputs, handle)
        return value

    def _attach_gradients(self, value, grad_outputs, grad_inputs, handle):
        outputs = [t for _, t in sorted(grad_outputs, key=lambda p: p[0])]
        if [i for i, _ in sorted(grad_outputs, key=lambda p: p[0])] != list(range(len(outputs))):
            self._fail("protocol", "a malformed reply (gradient outputs)")
        if not grad_inputs or type(handle) is not int:
            for t in outputs:  # it requires grad in the child, but not through anything of the caller's
                t.requires_grad_(True)
            return value
        attached = _Bridge.apply(self, handle, outputs, *grad_inputs)
        swap = {id(old): new for old, new in zip(outputs, attached)}
        return _replace(value, swap)

    def vjp(self, handle: int, grad_outputs: list, shapes: list) -> list:
        reply = self.request(("vjp", handle, grad_outputs), ("grads", "raise"))
        decoder = _Decoder()
        try:
            if len(reply) != 2:
                raise _Malformed("a gradient reply")
            if reply[0] == "raise":
                raise_this = _exception(reply[1], decoder)
            else:
                grads = reply[1]
                if type(grads) is not list or len(grads) != len(shapes):
                    raise _Malformed("the gradients")
                grads = [None if g is None else decoder.tensor(g) for g in grads]
                if any(g is not None and tuple(g.shape) != s for g, s in zip(grads, shapes)):
                    raise _Malformed("a gradient of the wrong shape")
                return grads
        except _Malformed as err:
            self._fail("protocol", f"a malformed reply ({err})")
        raise raise_this

    def release(self) -> None:
        """Let the child drop the graphs it keeps for gradients (after each check that made some)."""
        if self._handles and self.broken is None:
            self.send(("release",))
            self._handles = 0

    def _apply_sync(self, table: _Table, sync, decoder: _Decoder) -> None:
        """Copy back what the call changed in its arguments (see the module docstring)."""
        if type(sync) is not list:
            raise _Malformed("the arguments' changes")
        for entry in sync:
            if type(entry) is not list or len(entry) < 2 or type(entry[0]) is not str or type(entry[1]) is not int:
                raise _Malformed("an argument's change")
            kind, index = entry[0], entry[1]
            if not 0 <= index < len(table.objects):
                raise _Malformed("an argument's change (unknown argument)")
            obj = table.objects[index]
            if kind == "tensor" and isinstance(obj, torch.Tensor) and len(entry) == 5:
                _, _, data, grad_changed, grad = entry
                if data is not None:
                    data = decoder.tensor(data)
                    with torch.no_grad():
                        if data.shape == obj.shape and data.dtype == obj.dtype:
                            obj.copy_(data)
                        else:
                            obj.data = data
                if grad_changed is True and obj.is_leaf:
                    grad = None if grad is None else decoder.tensor(grad)
                    if grad is not None and (grad.shape != obj.shape or grad.dtype != obj.dtype):
                        raise _Malformed("a gradient of the wrong shape")
                    obj.grad = grad
            elif kind == "generator" and isinstance(obj, torch.Generator) and len(entry) == 3:
                state = decoder.tensor(entry[2])
                current = obj.get_state()
                if state.dtype != current.dtype or state.shape != current.shape:
                    raise _Malformed("a generator state")
                obj.set_state(state)
            elif kind == "list" and type(obj) is list and len(entry) == 3 and type(entry[2]) is list:
                obj[:] = decoder.value(entry[2])
            elif kind == "dict" and type(obj) is dict and len(entry) == 3:
                decoded = decoder.value(entry[2])
                if type(decoded) is not dict:
                    raise _Malformed("a dict argument's change")
                obj.clear()
                obj.update(decoded)
            else:
                raise _Malformed(f"an argument's change of kind {kind!r}")


def _replace(value, swap):
    if isinstance(value, torch.Tensor):
        return swap.get(id(value), value)
    if type(value) is list:
        return [_replace(v, swap) for v in value]
    if type(value) is tuple:
        return tuple(_replace(v, swap) for v in value)
    if type(value) is dict:
        return {k: _replace(v, swap) for k, v in value.items()}
    return value


class RemoteFunction:
    """What a check receives instead of the learner's function: calls it in the child through ``session``."""

    def __init__(self, session: Session, name: str):
        self._session, self.__name__, self.__qualname__ = session, name, name

    def __call__(self, *args, **kwargs):
        return self._session.call(self.__name__, args, kwargs)

    @property
    def aborted(self):
        """The :class:`Abort` that made the learner's process unusable, or None."""
        return self._session.broken

    def __repr__(self):
        return f"<the learner's function {self.__name__}>"
