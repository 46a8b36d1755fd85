"""Stateful streaming execution of the SNAC decoder: every sample is computed once.

The decoder is a stack of convolutions with symmetric ("same") padding. Each layer here
keeps the inputs it still needs and emits every output its inputs already determine, so a
stream decoded in pieces equals a whole-utterance decode (to float rounding) without
re-decoding any context. On CPU this costs ~1 frame of compute per frame instead of the
1.4-1.75 of context windows (and the reference projects' 4); see BENCHMARKS.md.
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Callable
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .snac import frames_to_codes


class _Node:
    """One streaming stage: new inputs in, newly determined outputs out."""

    def step(self, x: torch.Tensor, final: bool) -> torch.Tensor:
        raise NotImplementedError


class _Pointwise(_Node):
    """A stage whose output at t depends only on its input at t (Snake, 1x1 conv, tanh, noise)."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self._fn = fn

    def step(self, x: torch.Tensor, final: bool) -> torch.Tensor:
        return self._fn(x) if x.shape[-1] else x


class _SameConv(_Node):
    """Conv1d, stride 1, padding p = dilation x (kernel - 1) / 2 on both sides."""

    def __init__(self, conv: nn.Conv1d) -> None:
        self._conv = conv
        self._pad = int(conv.padding[0])
        self._buffer: torch.Tensor | None = None  # inputs from (emitted - pad) on
        self._received = 0
        self._emitted = 0

    def step(self, x: torch.Tensor, final: bool) -> torch.Tensor:
        if self._buffer is None:  # the left zero padding of the whole utterance
            self._buffer = x.new_zeros(x.shape[0], x.shape[1], self._pad)
        self._buffer = torch.cat([self._buffer, x], dim=-1)
        self._received += x.shape[-1]
        if final:
            self._buffer = F.pad(self._buffer, (0, self._pad))
        limit = self._received if final else self._received - self._pad
        count = limit - self._emitted
        if count <= 0:
            return x.new_zeros(x.shape[0], self._conv.out_channels, 0)
        conv = self._conv
        out = F.conv1d(
            self._buffer[..., : count + 2 * self._pad],
            conv.weight,
            conv.bias,
            dilation=conv.dilation,
            groups=conv.groups,
        )
        self._buffer = self._buffer[..., count:]
        self._emitted += count
        return out


class _TransposeConv(_Node):
    """ConvTranspose1d, kernel 2s, stride s, padding s/2: output t reads inputs (t+p)//s - 1, +0."""

    def __init__(self, conv: nn.ConvTranspose1d) -> None:
        self._conv = conv
        self._stride = int(conv.stride[0])
        self._pad = int(conv.padding[0])
        if conv.kernel_size[0] != 2 * self._stride or conv.output_padding[0] != 0:
            raise ValueError("unsupported transposed convolution for streaming")
        self._buffer: torch.Tensor | None = None
        self._buffer_start = 0  # input index of self._buffer[..., 0]
        self._received = 0
        self._emitted = 0
        self._forms = _TransposeForms.of(conv)

    def step(self, x: torch.Tensor, final: bool) -> torch.Tensor:
        s, p = self._stride, self._pad
        self._buffer = x if self._buffer is None else torch.cat([self._buffer, x], dim=-1)
        self._received += x.shape[-1]
        limit = self._received * s if final else self._received * s - p
        count = limit - self._emitted
        if count <= 0:
            return x.new_zeros(x.shape[0], self._conv.out_channels, 0)
        # Outputs [emitted, limit) are positions [emitted + p, limit + p) of the unpadded result,
        # which read inputs from (emitted + p) // s - 1 on.
        first_input = max(0, (self._emitted + p) // s - 1)
        window = self._buffer[..., first_input - self._buffer_start :]
        full = self._forms.run(window)
        offset = self._emitted + p - first_input * s
        out = full[..., offset : offset + count]
        self._emitted = limit
        keep_from = max(0, (self._emitted + p) // s - 1)
        self._buffer = self._buffer[..., keep_from - self._buffer_start :]
        self._buffer_start = keep_from
        return out


class _TransposeForms:
    """Two equal forms of one transposed convolution; per input length, the faster one runs.

    NOTE: issue #10's profile: on short inputs PyTorch runs some transposed convolutions in
    its slow fallback (slow_conv_transpose2d: 65% of a one-frame step; SNAC's first 1024->512
    layer took 30 ms on 5 input steps). With kernel 2s and stride s, input step j writes
    outputs [j*s, j*s + 2s), so one matrix product and a shifted add give the same result,
    3x faster there and slower on the later, longer layers. Which is faster depends on the
    CPU, so each layer times both once per input length (the warm-up covers the block sizes)
    and keeps the winner, shared by every stream of the model; GPUs run PyTorch's own.
    """

    _by_conv: ClassVar[weakref.WeakKeyDictionary[nn.Module, _TransposeForms]] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self, conv: nn.ConvTranspose1d) -> None:
        self._conv = conv
        self._stride = int(conv.stride[0])
        weight = conv.weight.detach()
        # (in, out * 2s): every input step's contribution to its 2s outputs, as one matrix.
        self._matrix = weight.reshape(weight.shape[0], -1)
        self._bias = None if conv.bias is None else conv.bias.detach()[None, :, None]
        self._use_matmul: dict[int, bool] = {}

    @classmethod
    def of(cls, conv: nn.ConvTranspose1d) -> _TransposeForms:
        """Return the shared forms of a model's layer."""
        forms = cls._by_conv.get(conv)
        if forms is None:
            forms = cls._by_conv[conv] = cls(conv)
        return forms

    def run(self, x: torch.Tensor) -> torch.Tensor:
        """Return F.conv_transpose1d(x, weight, bias, stride=s), by the faster form."""
        if x.device.type != "cpu":
            # GPU kernels run asynchronously: a wall-clock race would time launches, not work.
            return self.native(x)
        steps = x.shape[-1]
        use_matmul = self._use_matmul.get(steps)
        if use_matmul is None:
            use_matmul = self._use_matmul[steps] = _fastest(self.native, self.matmul, x=x) == 1
        return self.matmul(x) if use_matmul else self.native(x)

    def native(self, x: torch.Tensor) -> torch.Tensor:
        """Run PyTorch's transposed convolution."""
        return F.conv_transpose1d(x, self._conv.weight, self._conv.bias, stride=self._stride)

    def matmul(self, x: torch.Tensor) -> torch.Tensor:
        """Run the transposed convolution as one matrix product and an overlap-add."""
        s = self._stride
        batch, _, steps = x.shape
        taps = torch.matmul(x.transpose(1, 2), self._matrix)  # (batch, steps, out * 2s)
        taps = taps.reshape(batch, steps, -1, 2 * s)
        out = x.new_zeros(batch, steps + 1, taps.shape[2], s)
        out[:, :steps] += taps[..., :s]
        out[:, 1:] += taps[..., s:]
        full = out.permute(0, 2, 1, 3).reshape(batch, -1, (steps + 1) * s)
        return full if self._bias is None else full + self._bias


def _fastest(*forms: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> int:
    """Return the index of the form with the least time on x (best of two runs each)."""
    times = []
    for form in forms:
        best = math.inf
        for _ in range(2):
            started = time.perf_counter()
            form(x)
            best = min(best, time.perf_counter() - started)
        times.append(best)
    return times.index(min(times))


class _Sequence(_Node):
    def __init__(self, nodes: list[_Node]) -> None:
        self._nodes = nodes

    def step(self, x: torch.Tensor, final: bool) -> torch.Tensor:
        for node in self._nodes:
            x = node.step(x, final)
        return x


class _Residual(_Node):
    """x + block(x), with the skip path delayed until the block's output catches up."""

    def __init__(self, block: _Node) -> None:
        self._block = block
        self._skip: torch.Tensor | None = None
        self._ready: torch.Tensor | None = None

    def step(self, x: torch.Tensor, final: bool) -> torch.Tensor:
        y = self._block.step(x, final)
        self._skip = x if self._skip is None else torch.cat([self._skip, x], dim=-1)
        self._ready = y if self._ready is None else torch.cat([self._ready, y], dim=-1)
        count = min(self._skip.shape[-1], self._ready.shape[-1])
        out = self._skip[..., :count] + self._ready[..., :count]
        self._skip, self._ready = self._skip[..., count:], self._ready[..., count:]
        return out


def _build(module: nn.Module) -> _Node:
    """Mirror SNAC's decoder modules as streaming stages."""
    name = type(module).__name__
    if isinstance(module, nn.Conv1d):
        if module.kernel_size[0] == 1 and module.padding[0] == 0:
            return _Pointwise(module)
        if module.stride[0] != 1:
            raise ValueError("unsupported strided convolution for streaming")
        return _SameConv(module)
    if isinstance(module, nn.ConvTranspose1d):
        return _TransposeConv(module)
    if isinstance(module, nn.Sequential):
        return _Sequence([_build(child) for child in module])
    if name == "ResidualUnit":
        return _Residual(_build(module.get_submodule("block")))
    if name in ("Decoder", "DecoderBlock"):
        return _build(next(iter(module.children())))
    if name in ("Snake1d", "NoiseBlock", "Tanh", "Identity"):
        return _Pointwise(module)
    raise ValueError(f"cannot stream SNAC module {name}")


class SnacStream:
    """One stream's decoder state; step() must run on the decode worker's thread."""

    def __init__(self, model: nn.Module, device: str) -> None:
        self._model = model
        self._device = device
        self._decoder = _build(model.get_submodule("decoder"))

    def step(self, frames: np.ndarray, final: bool) -> np.ndarray:
        """Decode (n, 7) new frames; return every sample they (and earlier ones) determine."""
        with torch.inference_mode():
            if len(frames):
                codes = [
                    torch.from_numpy(level).to(self._device)
                    for level in frames_to_codes(frames[None].astype(np.int64))
                ]
                # The quantizer is per time step: new frames give exactly their latents.
                latent = self._model.get_submodule("quantizer").from_codes(codes)  # type: ignore[operator]
            else:
                latent = torch.zeros(1, self._latent_dim(), 0, device=self._device)
            audio = self._decoder.step(latent, final)
        return audio[0, 0].float().cpu().numpy()

    def _latent_dim(self) -> int:
        return int(self._model.latent_dim)  # type: ignore[arg-type]
