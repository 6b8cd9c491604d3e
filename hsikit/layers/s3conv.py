"""S3Conv: HSDT's spatial-spectral separable 3-D convolution.

Two parallel branches on the same input, summed (Lai et al., HSDT, ICCV 2023; released code
``hsdt/sepconv.py``, see ``../shared/docs/models.md`` section 2.3)::

    spatial  = act(conv_(1,k,k)(... act(conv_(1,k,k)(x))))      # num_spatial convs, each + act
    spectral = conv_(k,1,1)(x)                                   # no activation
    out      = spatial + spectral

``act`` is LeakyReLU(negative_slope) (0.01 in HSDT); all convs are dense in channels (not
depthwise), stride 1, zero padding ``k // 2``. Parameters: ``in*out*k*k + (num_spatial-1)*out*out*k*k
+ in*out*k`` (+ biases). The band axis is only touched by a k-tap conv, so any band count works.

Three implementations with one signature (:func:`s3conv`):

- :func:`s3conv_reference`: the plain PyTorch definition above (the correctness oracle);
- a fast CPU path (:mod:`hsikit.layers.kernels.s3conv_cpu`), the default for CPU tensors;
- a fused Triton kernel (:mod:`hsikit.layers.kernels.s3conv_triton`), the default on CUDA.

The choice follows :mod:`hsikit.layers.kernels.dispatch`: ``kernel_mode("reference")`` forces the
reference, ``kernel_mode("fused")`` the Triton kernel, ``auto`` picks Triton on CUDA and the fast
CPU path on the CPU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from hsikit.errors import UsageError
from hsikit.layers.kernels import dispatch

__all__ = ["S3Conv", "s3conv", "s3conv_reference", "check_s3conv_args"]


def check_s3conv_args(
    x: torch.Tensor,
    spatial_weights: Sequence[torch.Tensor],
    spectral_weight: torch.Tensor,
    spatial_biases: Sequence[torch.Tensor | None] | None,
    spectral_bias: torch.Tensor | None,
) -> int:
    """Validate shapes of an S3Conv call; return the kernel size k.

    Raises :class:`~hsikit.errors.UsageError` with the offending shape.
    """
    if x.dim() != 5:
        raise UsageError(f"S3Conv expects x of shape (B, C, bands, H, W), got {tuple(x.shape)}")
    if len(spatial_weights) < 1:
        raise UsageError("S3Conv needs at least one spatial convolution")
    k = spectral_weight.shape[2]
    if k % 2 != 1 or spectral_weight.shape[3:] != (1, 1):
        raise UsageError(f"spectral weight must be (out, in, k, 1, 1) with odd k, got {tuple(spectral_weight.shape)}")
    c_in = x.shape[1]
    c_out = spectral_weight.shape[0]
    if spectral_weight.shape[1] != c_in:
        raise UsageError(f"spectral weight {tuple(spectral_weight.shape)} does not take {c_in} input channels")
    prev = c_in
    for i, w in enumerate(spatial_weights):
        if w.shape != (c_out, prev, 1, k, k):
            raise UsageError(f"spatial weight {i} must be {(c_out, prev, 1, k, k)}, got {tuple(w.shape)}")
        prev = c_out
    if spatial_biases is not None:
        if len(spatial_biases) != len(spatial_weights):
            raise UsageError("give one spatial bias (or None) per spatial weight")
        for b in spatial_biases:
            if b is not None and b.shape != (c_out,):
                raise UsageError(f"spatial bias must be ({c_out},), got {tuple(b.shape)}")
    if spectral_bias is not None and spectral_bias.shape != (c_out,):
        raise UsageError(f"spectral bias must be ({c_out},), got {tuple(spectral_bias.shape)}")
    return k


def s3conv_reference(
    x: torch.Tensor,
    spatial_weights: Sequence[torch.Tensor],
    spectral_weight: torch.Tensor,
    spatial_biases: Sequence[torch.Tensor | None] | None = None,
    spectral_bias: torch.Tensor | None = None,
    negative_slope: float | None = 0.01,
) -> torch.Tensor:
    """S3Conv as HSDT's released code computes it (plain PyTorch).

    Parameters
    ----------
    x
        Input, (B, C_in, D, H, W); D = bands.
    spatial_weights
        ``num_spatial`` weights; the first (C_out, C_in, 1, k, k), the others (C_out, C_out, 1, k, k).
    spectral_weight
        (C_out, C_in, k, 1, 1).
    spatial_biases, spectral_bias
        Optional biases, (C_out,) each (HSDT uses none).
    negative_slope
        LeakyReLU slope after every spatial conv; ``None`` for no activation (a linear pair).

    Returns
    -------
    torch.Tensor
        (B, C_out, D, H, W).
    """
    k = check_s3conv_args(x, spatial_weights, spectral_weight, spatial_biases, spectral_bias)
    p = k // 2
    biases = spatial_biases if spatial_biases is not None else [None] * len(spatial_weights)
    h = x
    for w, b in zip(spatial_weights, biases):
        h = F.conv3d(h, w, b, padding=(0, p, p))
        if negative_slope is not None:
            h = F.leaky_relu(h, negative_slope)
    return h + F.conv3d(x, spectral_weight, spectral_bias, padding=(p, 0, 0))


def s3conv(
    x: torch.Tensor,
    spatial_weights: Sequence[torch.Tensor],
    spectral_weight: torch.Tensor,
    spatial_biases: Sequence[torch.Tensor | None] | None = None,
    spectral_bias: torch.Tensor | None = None,
    negative_slope: float | None = 0.01,
) -> torch.Tensor:
    """S3Conv through the kernel dispatch (same signature and result as :func:`s3conv_reference`).

    Fused Triton kernel on CUDA (or when forced with ``kernel_mode("fused")``), the fast CPU path for
    CPU tensors under ``auto``, the reference under ``kernel_mode("reference")``. Autograd works on
    every path (gradients for x, weights and biases).
    """
    check_s3conv_args(x, spatial_weights, spectral_weight, spatial_biases, spectral_bias)
    tensors = [x, spectral_weight, *spatial_weights]
    if dispatch.use_fused(*tensors):
        from hsikit.layers.kernels.s3conv_triton import s3conv_triton

        return s3conv_triton(x, spatial_weights, spectral_weight, spatial_biases, spectral_bias, negative_slope)
    if dispatch.get_kernel_mode() != "reference" and all(t.device.type == "cpu" for t in tensors):
        from hsikit.layers.kernels.s3conv_cpu import s3conv_cpu

        return s3conv_cpu(x, spatial_weights, spectral_weight, spatial_biases, spectral_bias, negative_slope)
    return s3conv_reference(x, spatial_weights, spectral_weight, spatial_biases, spectral_bias, negative_slope)


class S3Conv(nn.Module):
    """HSDT's S3Conv block as a module.

    Parameters
    ----------
    in_channels, out_channels
        Feature channels C_in -> C_out (HSDT: 1 -> C for the head, C -> C elsewhere).
    kernel_size
        k (odd; HSDT: 3): spatial kernels are (1, k, k), the spectral kernel (k, 1, 1).
    num_spatial
        Number of stacked spatial convs in the spatial branch (HSDT: 2; 1 = the "one-conv" ablation).
    bias
        Give every conv a bias (HSDT: False).
    negative_slope
        LeakyReLU slope after each spatial conv (HSDT: 0.01); ``None`` disables the activation.

    Shapes: input (B, C_in, D, H, W) -> output (B, C_out, D, H, W), any D (bands), H, W.
    Weights are initialised as ``nn.Conv3d`` does (Kaiming-uniform, a = sqrt(5)).
    Parameter names: ``spatial_weight{i}`` (C_out, C_prev, 1, k, k), ``spectral_weight``
    (C_out, C_in, k, 1, 1), and ``spatial_bias{i}`` / ``spectral_bias`` when ``bias``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        num_spatial: int = 2,
        bias: bool = False,
        negative_slope: float | None = 0.01,
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1 or kernel_size < 1:
            raise UsageError(f"S3Conv kernel_size must be odd, got {kernel_size}")
        if num_spatial < 1:
            raise UsageError(f"S3Conv num_spatial must be >= 1, got {num_spatial}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.num_spatial = kernel_size, num_spatial
        self.negative_slope = negative_slope
        k = kernel_size
        for i in range(num_spatial):
            c_prev = in_channels if i == 0 else out_channels
            self.register_parameter(f"spatial_weight{i}", nn.Parameter(torch.empty(out_channels, c_prev, 1, k, k)))
            self.register_parameter(f"spatial_bias{i}", nn.Parameter(torch.empty(out_channels)) if bias else None)
        self.spectral_weight = nn.Parameter(torch.empty(out_channels, in_channels, k, 1, 1))
        self.spectral_bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``nn.Conv3d``'s default initialisation for every weight and bias."""
        for w, b in [*zip(self.spatial_weights, self.spatial_biases), (self.spectral_weight, self.spectral_bias)]:
            nn.init.kaiming_uniform_(w, a=math.sqrt(5))
            if b is not None:
                fan_in = w[0].numel()
                nn.init.uniform_(b, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))

    @property
    def spatial_weights(self) -> list[torch.Tensor]:
        return [getattr(self, f"spatial_weight{i}") for i in range(self.num_spatial)]

    @property
    def spatial_biases(self) -> list[torch.Tensor | None]:
        return [getattr(self, f"spatial_bias{i}") for i in range(self.num_spatial)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, D, H, W) -> (B, C_out, D, H, W)."""
        biases = self.spatial_biases
        return s3conv(
            x,
            self.spatial_weights,
            self.spectral_weight,
            None if all(b is None for b in biases) else biases,
            self.spectral_bias,
            self.negative_slope,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"num_spatial={self.num_spatial}, bias={self.spectral_bias is not None}, "
            f"negative_slope={self.negative_slope}"
        )
