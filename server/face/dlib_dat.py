"""A reader for dlib's serialised DNN files (``*.dat`` written by ``dlib::serialize(net)``).

Why: the ONNX port of dlib's face ResNet (:mod:`server.face.dlib_onnx`) needs the weights
without going through dlib, and dlib offers no export. The format is small and stable; this
module reads it in pure Python/numpy and returns the layers *from input to output*.

The format, as read from dlib's ``serialize.h``, ``dnn/core.h``, ``dnn/tensor.h``,
``dnn/layers.h`` and ``dnn/input.h``:

- **integers** (every C++ integral type): one control byte whose low 4 bits give the number
  of little-endian magnitude bytes that follow and whose bit 7 is the sign; zero is written
  with one magnitude byte (``01 00``).
- **floats / doubles** (scalars only): dlib's portable ``float_details``: a signed integer
  mantissa then a signed integer exponent, value = mantissa * 2**exponent (exponents 32000,
  32001, 32002 mean +inf, -inf, nan).
- **bool**: the ASCII byte ``'1'`` or ``'0'``.
- **string**: an integer length then the bytes. Layer details start with a string that
  names the layer type and its format version (``"con_4"``, ``"affine_"`` ...).
- **tensor**: an integer version (2: raw little-endian float32 data; 1: one dlib float per
  element), then ``num_samples, k, nr, nc`` and the data in that (NCHW) order.
- **alias_tensor** (a shaped view into a layer's ``params``): version 1 and the 4 sizes.
- **network**: ``add_loss_layer`` writes its version, the loss details, then its
  sub-network. Every ``add_layer`` writes its version, then *its sub-network*, then its own
  details and bookkeeping (bools and cached tensors, empty in a cleaned net). So the file
  starts with the versions of all wrapper layers from the output inwards, then the input
  layer, then each computational layer's details from the input outwards. ``tag`` and
  ``skip`` wrappers write nothing but their version (1), so they are visible only as a
  position in that leading run of versions: which one is a tag and which a skip (and the
  tag ids, also absent from ``add_prev_``) must come from the network's C++ type, see
  :mod:`server.face.dlib_onnx`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class DatFormatError(ValueError):
    """The bytes are not a dlib DNN file this reader understands."""


# ----------------------------------------------------------------------------- layers


@dataclass(frozen=True)
class LossMetric:
    """``loss_metric_``: metric-learning loss; at inference the output passes through."""

    margin: float
    distance_threshold: float


@dataclass(frozen=True)
class InputRGBImageSized:
    """``input_rgb_image_sized<NR, NC>``: tensor = (pixel - channel average) / 256."""

    avg_rgb: tuple[float, float, float]
    rows: int
    cols: int


@dataclass(frozen=True, eq=False)
class Conv:
    """``con_``: 2-D convolution with bias, zero padding."""

    weights: np.ndarray  # (out, in, kh, kw) float32
    bias: np.ndarray  # (out,) float32
    stride: tuple[int, int]  # (y, x)
    padding: tuple[int, int]  # (y, x), same on both sides

    @property
    def kind(self) -> str:
        return "con"


@dataclass(frozen=True, eq=False)
class Affine:
    """``affine_``: per-channel ``x * gamma + beta`` (a batch-norm frozen for inference)."""

    gamma: np.ndarray  # conv mode: (C,); fc mode: (C, H, W)
    beta: np.ndarray
    conv_mode: bool

    @property
    def kind(self) -> str:
        return "affine"


@dataclass(frozen=True)
class Relu:
    @property
    def kind(self) -> str:
        return "relu"


@dataclass(frozen=True)
class Pool:
    """``max_pool_`` / ``avg_pool_``; a window of 0 means the whole input ("everything")."""

    op: str  # "max" or "avg"
    window: tuple[int, int]  # (rows, cols); (0, 0) = whole input
    stride: tuple[int, int]
    padding: tuple[int, int]

    @property
    def kind(self) -> str:
        return f"{self.op}_pool"


@dataclass(frozen=True)
class AddPrev:
    """``add_prev_``: adds the output of the nearest tag below; the tag id is not stored."""

    @property
    def kind(self) -> str:
        return "add_prev"


@dataclass(frozen=True, eq=False)
class FullyConnected:
    """``fc_``: ``y = x @ weights (+ bias)``, x flattened from (k, nr, nc)."""

    weights: np.ndarray  # (inputs, outputs) float32
    bias: np.ndarray | None  # (outputs,) or None for fc_no_bias

    @property
    def kind(self) -> str:
        return "fc"


@dataclass(frozen=True)
class Wrapper:
    """A ``tag`` or ``skip`` layer: only its position is stored."""

    @property
    def kind(self) -> str:
        return "tag_or_skip"


Layer = Conv | Affine | Relu | Pool | AddPrev | FullyConnected | Wrapper


@dataclass(frozen=True, eq=False)
class DlibNet:
    loss: LossMetric
    input: InputRGBImageSized
    layers: list[Layer] = field(default_factory=list)  # input -> output

    @property
    def kinds(self) -> list[str]:
        return [layer.kind for layer in self.layers]


# ----------------------------------------------------------------------------- reader


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.pos = 0

    def _take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise DatFormatError(f"unexpected end of file at byte {self.pos} (wanted {n} bytes)")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def varint(self) -> int:
        ctrl = self._take(1)[0]
        size = ctrl & 0x0F
        if ctrl & 0x70 or size > 8:
            raise DatFormatError(f"bad integer control byte 0x{ctrl:02x} at byte {self.pos - 1}")
        value = int.from_bytes(self._take(size), "little")
        return -value if ctrl & 0x80 else value

    def real(self) -> float:
        mantissa = self.varint()
        exponent = self.varint()
        if exponent == 32000:
            return float("inf")
        if exponent == 32001:
            return float("-inf")
        if exponent == 32002:
            return float("nan")
        return float(np.ldexp(np.float64(mantissa), exponent))

    def flag(self) -> bool:
        ch = self._take(1)[0]
        if ch not in (0x30, 0x31):
            raise DatFormatError(f"bad bool byte 0x{ch:02x} at byte {self.pos - 1}")
        return ch == 0x31

    def text(self) -> str:
        n = self.varint()
        if n > 1 << 16:
            raise DatFormatError(f"implausible string length {n} at byte {self.pos}")
        try:
            return bytes(self._take(n)).decode("ascii")
        except UnicodeDecodeError as exc:
            raise DatFormatError(f"non-ASCII layer name before byte {self.pos}") from exc

    def peek_string(self) -> str | None:
        """The string starting here, if the bytes look like one; the position is kept."""
        pos = self.pos
        try:
            n = self.varint()
            if not 0 < n <= 64:
                return None
            raw = bytes(self._take(n))
            if not raw.isascii():
                return None
            text = raw.decode("ascii")
            return text if text.isprintable() else None
        except DatFormatError:
            return None
        finally:
            self.pos = pos

    def tensor(self) -> np.ndarray:
        version = self.varint()
        shape = tuple(self.varint() for _ in range(4))
        if any(d < 0 for d in shape):
            raise DatFormatError(f"negative tensor size {shape} before byte {self.pos}")
        count = shape[0] * shape[1] * shape[2] * shape[3]
        if version == 2:
            raw = self._take(4 * count)
            arr = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        elif version == 1:
            arr = np.array([self.real() for _ in range(count)], dtype=np.float32)
        else:
            raise DatFormatError(f"unknown tensor version {version} before byte {self.pos}")
        return arr.reshape(shape)

    def alias(self) -> tuple[int, int, int, int]:
        version = self.varint()
        if version != 1:
            raise DatFormatError(f"unknown alias_tensor version {version} at byte {self.pos}")
        n, k, nr, nc = (self.varint() for _ in range(4))
        return n, k, nr, nc


def _size(shape: tuple[int, ...]) -> int:
    out = 1
    for d in shape:
        out *= d
    return out


def _read_details(r: _Reader) -> Layer:
    name = r.text()
    if name == "con_4":
        params = r.tensor().reshape(-1)
        num_filters, nr, nc = r.varint(), r.varint(), r.varint()
        stride = (r.varint(), r.varint())
        padding = (r.varint(), r.varint())
        filt = r.alias()
        bias = r.alias()
        for _ in range(4):  # learning-rate / weight-decay multipliers
            r.real()
        if filt[0] != num_filters or filt[2:] != (nr, nc) or _size(bias) != num_filters:
            raise DatFormatError(f"inconsistent con_ shapes {filt} {bias}")
        nf = _size(filt)
        if params.size != nf + num_filters:
            raise DatFormatError(f"con_ has {params.size} params, expected {nf + num_filters}")
        return Conv(
            weights=params[:nf].reshape(filt).copy(),
            bias=params[nf:].copy(),
            stride=stride,
            padding=padding,
        )
    if name == "affine_":
        params = r.tensor().reshape(-1)
        g = r.alias()
        b = r.alias()
        mode = r.varint()
        ng = _size(g)
        if g != b or params.size != 2 * ng:
            raise DatFormatError(f"inconsistent affine_ shapes {g} {b} ({params.size} params)")
        conv_mode = mode == 0
        shape: tuple[int, ...] = (g[1],) if conv_mode else g[1:]
        return Affine(
            gamma=params[:ng].reshape(shape).copy(),
            beta=params[ng:].reshape(shape).copy(),
            conv_mode=conv_mode,
        )
    if name == "relu_":
        return Relu()
    if name in ("max_pool_2", "avg_pool_2"):
        window = (r.varint(), r.varint())
        stride = (r.varint(), r.varint())
        padding = (r.varint(), r.varint())
        return Pool(op=name[:3], window=window, stride=stride, padding=padding)
    if name == "add_prev_":
        return AddPrev()
    if name == "fc_2":
        outputs, inputs = r.varint(), r.varint()
        params = r.tensor().reshape(-1)
        w = r.alias()
        b = r.alias()
        bias_mode = r.varint()  # 0 = has bias, 1 = no bias
        for _ in range(4):
            r.real()
        if _size(w) != inputs * outputs:
            raise DatFormatError(f"inconsistent fc_ shapes {w} for {inputs}x{outputs}")
        weights = params[: inputs * outputs].reshape(inputs, outputs).copy()
        fc_bias = None
        if bias_mode == 0:
            if _size(b) != outputs:
                raise DatFormatError(f"inconsistent fc_ bias shape {b}")
            fc_bias = params[inputs * outputs : inputs * outputs + outputs].copy()
        return FullyConnected(weights=weights, bias=fc_bias)
    raise DatFormatError(f"unsupported dlib layer {name!r}")


def _read_input(r: _Reader) -> InputRGBImageSized:
    name = r.text()
    if name != "input_rgb_image_sized":
        raise DatFormatError(f"unsupported dlib input layer {name!r}")
    avg = (r.real(), r.real(), r.real())
    rows, cols = r.varint(), r.varint()
    return InputRGBImageSized(avg_rgb=avg, rows=rows, cols=cols)


def _skip_bookkeeping(r: _Reader, version: int, innermost: bool) -> None:
    """Skips an add_layer's state after its details (setup flags and cached tensors)."""
    for _ in range(3):
        r.flag()
    for _ in range(3):  # x_grad, cached_output, then params_grad (or grad_final)
        t = r.tensor()
        if t.size:
            raise DatFormatError("the network was saved with cached activations; clean() it")
    if innermost and version >= 3:
        r.varint()  # sample expansion factor


def parse_dat(data: bytes) -> DlibNet:
    """Parses a cleaned dlib DNN with a ``loss_metric_`` loss and an RGB-image input."""
    r = _Reader(data)
    if r.varint() != 1:
        raise DatFormatError("not a dlib network: unexpected add_loss_layer version")
    loss_name = r.text()
    if loss_name != "loss_metric_2":
        raise DatFormatError(f"unsupported dlib loss layer {loss_name!r}")
    loss = LossMetric(margin=r.real(), distance_threshold=r.real())

    # Versions of the wrappers, outermost first, up to the input layer's name.
    versions: list[int] = []
    while True:
        peek = r.peek_string()
        if peek is not None and peek.startswith("input"):
            break
        v = r.varint()
        if v not in (1, 2, 3):
            raise DatFormatError(f"unexpected layer version {v} at byte {r.pos}")
        versions.append(v)
        if len(versions) > 10_000:
            raise DatFormatError("no input layer found")
    if not versions or versions[-1] not in (2, 3):
        raise DatFormatError("the innermost layer does not wrap the input layer")
    inp = _read_input(r)

    layers: list[Layer] = []
    inner = list(reversed(versions))  # input side first
    for i, v in enumerate(inner):
        if v == 1:
            layers.append(Wrapper())
            continue
        layers.append(_read_details(r))
        _skip_bookkeeping(r, v, innermost=i == 0)
    if r.pos != len(r.data):
        raise DatFormatError(f"{len(r.data) - r.pos} trailing bytes after the network")
    return DlibNet(loss=loss, input=inp, layers=layers)
