"""Time ESSA attention and the selective scan: PyTorch reference vs CPU variants vs fused Triton (CUDA).

Usage: .venv/bin/python scripts/bench/blocks_essa_scan.py [--device auto|cpu|cuda] [--repeats 5]
       [--threads 2] [--no-compile] [--quick]

Rows (batch 4 unless noted, float32):

- ESSA core ``V + phi_Q (phi_K^T V)/sqrt(N)`` on ``(B, N, C)`` tokens, N = pixels of 64/128/256 px
  maps, C = 16 and 64 (embedding) and 31 / 224 (bands as channels): ``reference`` (reassociated),
  ``quadratic`` (explicit N x N matrix; forward, N = 4096, C = 16 / 224 only), ``compiled``
  (torch.compile of the reference, CPU; compile time excluded), ``fused`` (Triton, CUDA only).
- Selective scan ``(B, L, D=128, N=16)``: MorpMamba tokens (batch 256 of 4x4 and 9x9 patches, L = 16 /
  81), 224-band spectral sequences and 32x32-pixel sequences (L = 1024): ``sequential`` (reference),
  ``default`` (:func:`selective_scan`'s PyTorch path with its default chunk T, shown in the size
  column; T = L is the sequential loop), ``fused`` (Triton, CUDA only).

Each variant is timed forward and forward+backward; the variants of one row are interleaved in
``--repeats`` rounds and the median is printed with its speed-up over the reference (reference time /
variant time; ratios measured side by side are robust to machine load). On CUDA it also prints the fused kernels' achieved bandwidth
(bytes they must move / time) against the measured device copy bandwidth. The Triton kernels never run
on the CPU here (the interpreter is for tests only).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from hsikit.layers.essa import essa_attention_quadratic, essa_attention_reference
from hsikit.layers.selective_scan import default_chunk_size, selective_scan, selective_scan_reference


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_rounds(fns: dict[str, Callable[[], None]], repeats: int, device: torch.device) -> dict[str, float]:
    """Median seconds of each function; one warm-up call each, then interleaved rounds."""
    for f in fns.values():
        f()
    _sync(device)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            _sync(device)
            t0 = time.perf_counter()
            f()
            _sync(device)
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def copy_bandwidth(device: torch.device) -> float:
    """Measured device copy bandwidth in bytes/s (read + write of a 1 GiB fp32 buffer)."""
    src = torch.empty(256 * 1024 * 1024, device=device, dtype=torch.float32).uniform_()
    dst = torch.empty_like(src)
    med = _time_rounds({"copy": lambda: dst.copy_(src)}, 10, device)["copy"]
    return 2 * src.numel() * src.element_size() / med


def _fwd_bwd(fn: Callable[..., torch.Tensor], inputs: list[torch.Tensor], gy: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        for t in inputs:
            t.grad = None
        fn(*inputs).backward(gy)
    return run


ESSA_SIZES = [(16, 64), (16, 128), (16, 256), (64, 64), (64, 128), (64, 256), (31, 64), (224, 64)]  # (C, px)
SCAN_SIZES = [(256, 16, "MorpMamba 4x4 patches"), (256, 81, "MorpMamba 9x9 patches"),
              (4, 224, "224-band spectra"), (4, 1024, "32x32 px")]                         # (B, L, what)


def bench_essa(device: torch.device, repeats: int, compile_: bool, sizes: list[tuple[int, int]],
               fused: Callable | None, copy_bw: float | None) -> list[tuple]:
    rows = []
    compiled = torch.compile(essa_attention_reference) if compile_ and device.type == "cpu" else None
    for c, px in sizes:
        b, n = 4, px * px
        g = torch.Generator(device=device).manual_seed(0)
        qkv = torch.randn(b, n, 3 * c, device=device, generator=g)
        q, k, v = (t.contiguous().requires_grad_(True) for t in qkv.split(c, dim=-1))
        gy = torch.randn(b, n, c, device=device, generator=g)
        for mode in ("fwd", "fwd+bwd"):
            variants: dict[str, Callable[..., torch.Tensor]] = {"reference": essa_attention_reference}
            if n <= 4096 and mode == "fwd" and c in (16, 224):
                variants["quadratic"] = essa_attention_quadratic
            if compiled is not None:
                variants["compiled"] = compiled
            if fused is not None:
                variants["fused"] = fused
            if mode == "fwd":
                fns = {name: (lambda f=f: f(q.detach(), k.detach(), v.detach())) for name, f in variants.items()}
            else:
                fns = {name: _fwd_bwd(f, [q, k, v], gy) for name, f in variants.items()}
            med = _time_rounds(fns, repeats, device)
            for name, t in med.items():
                bw = None
                if name == "fused" and copy_bw:
                    # forward: read k, v (stats) + q, v, write y; backward: read q, gy + q, k, v, gy, write 3
                    moved = (5 if mode == "fwd" else 14) * b * n * c * 4
                    bw = moved / t / copy_bw
                rows.append(("essa", f"B{b} N{n} ({px}px) C{c}", name, mode, t, med["reference"] / t, bw))
    return rows


def _scan_inputs(b: int, l: int, d: int, n: int, device: torch.device) -> list[torch.Tensor]:
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(b, l, d, device=device, generator=g)
    delta = torch.rand(b, l, d, device=device, generator=g) * 0.1 + 1e-3
    A = -torch.arange(1, n + 1, device=device, dtype=torch.float32).repeat(d, 1)
    B = torch.randn(b, l, n, device=device, generator=g)
    C = torch.randn(b, l, n, device=device, generator=g)
    D = torch.ones(d, device=device)
    return [t.requires_grad_(True) for t in (x, delta, A, B, C, D)]


def bench_scan(device: torch.device, repeats: int, sizes: list[tuple[int, int, str]], fused: Callable | None,
               copy_bw: float | None, d: int = 128, n: int = 16) -> list[tuple]:
    rows = []
    for b, l, what in sizes:
        ins = _scan_inputs(b, l, d, n, device)
        gy = torch.randn(b, l, d, device=device)
        variants: dict[str, Callable[..., torch.Tensor]] = {
            "sequential": selective_scan_reference,
            "default": _chunked_torch,
        }
        what += f"; T={min(default_chunk_size(l, b * d * n), l)}"
        if fused is not None:
            variants["fused"] = fused
        for mode in ("fwd", "fwd+bwd"):
            if mode == "fwd":
                fns = {name: (lambda f=f: f(*[t.detach() for t in ins])) for name, f in variants.items()}
            else:
                fns = {name: _fwd_bwd(f, ins, gy) for name, f in variants.items()}
            med = _time_rounds(fns, repeats, device)
            for name, t in med.items():
                bw = None
                if name == "fused" and copy_bw:
                    # forward: read x, delta, B, C, write y; backward: recompute reads + x, delta, B, C, gy
                    # reads, grad writes (gx, gdelta, per-block gB, gC partials)
                    elems = (3 * b * l * d + 2 * b * l * n) if mode == "fwd" else (10 * b * l * d + 10 * b * l * n)
                    bw = elems * 4 / t / copy_bw
                rows.append(("scan", f"B{b} L{l} D{d} N{n} ({what})", name, mode, t, med["sequential"] / t, bw))
    return rows


def _chunked_torch(*args: torch.Tensor) -> torch.Tensor:
    """The chunked PyTorch scan, also on CUDA (where the dispatch would pick the fused kernel)."""
    from hsikit.layers.kernels.dispatch import kernel_mode

    with kernel_mode("reference"):
        return selective_scan(*args)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile CPU variant")
    ap.add_argument("--quick", action="store_true", help="a few sizes only")
    a = ap.parse_args()
    if a.device == "auto":
        a.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(a.device)
    if device.type == "cpu":
        torch.set_num_threads(a.threads)
    copy_bw = copy_bandwidth(device) if device.type == "cuda" else None
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; torch {torch.__version__}; float32; medians of {a.repeats} interleaved rounds")
    if copy_bw:
        print(f"measured copy bandwidth: {copy_bw / 1e9:.0f} GB/s (read + write)")
    t0 = time.perf_counter()
    essa_fused = scan_fused = None
    if device.type == "cuda":  # the Triton kernels only ever run on the GPU here
        from hsikit.layers.kernels.essa_triton import essa_attention_triton as essa_fused
        from hsikit.layers.kernels.scan_triton import selective_scan_triton as scan_fused
    essa_sizes = [ESSA_SIZES[i] for i in (0, 4, 7)] if a.quick else ESSA_SIZES
    scan_sizes = [SCAN_SIZES[i] for i in (0, 2)] if a.quick else SCAN_SIZES
    rows = bench_essa(device, a.repeats, not a.no_compile, essa_sizes, essa_fused, copy_bw)
    rows += bench_scan(device, a.repeats, scan_sizes, scan_fused, copy_bw)
    head = f"{'block':5} {'size':50} {'variant':10} {'pass':8} {'median ms':>10} {'speedup':>7}"
    print(head + ("  bandwidth/copy" if copy_bw else ""))
    print("-" * len(head))
    for blk, size, var, mode, t, ratio, bw in rows:
        line = f"{blk:5} {size:50} {var:10} {mode:8} {t * 1e3:10.2f} {ratio:7.2f}"
        print(line + (f"  {bw:.0%}" if bw is not None else ""))
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
