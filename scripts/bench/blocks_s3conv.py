"""Time S3Conv: naive reference vs hsikit's CPU path vs the full 3x3x3 conv it replaces.

One command, forward (no grad) and forward+backward (grads for x and all weights), medians over
interleaved repeats (robust to load drift: every variant sees the same conditions), printed as a
table with ratios. On CUDA it also times the fused Triton kernel and reports its achieved memory
bandwidth against a measured device copy bandwidth.

    .venv/bin/python scripts/bench/blocks_s3conv.py                 # CPU, default sizes (~3-5 min on 2 cores)
    .venv/bin/python scripts/bench/blocks_s3conv.py --quick         # one small size, 3 repeats
    .venv/bin/python scripts/bench/blocks_s3conv.py --sizes 1x16x31x256 4x32x224x64 --repeats 7
    .venv/bin/python scripts/bench/blocks_s3conv.py --compile       # also torch.compile(reference)
    .venv/bin/python scripts/bench/blocks_s3conv.py --floor         # the block's primitives alone vs the full conv

Sizes are BxCxDxH (W = H); the conv is C -> C, HSDT's S3Conv (two spatial convs + LeakyReLU,
one spectral conv, k = 3, no bias; ``--num-spatial 1`` for the plain parallel pair). Besides the
wall-clock median the table gives the median process CPU time (all threads), which on a shared,
oversubscribed machine is far less disturbed by waiting for a core than wall time is.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from hsikit.layers.kernels import dispatch
from hsikit.layers.s3conv import s3conv, s3conv_reference

CL = torch.channels_last_3d
DEFAULT_SIZES = ["1x16x31x256", "4x16x31x64", "1x32x31x128", "1x64x31x64", "1x16x224x64", "2x32x224x64"]


def _parse(size: str) -> tuple[int, int, int, int]:
    b, c, d, h = (int(v) for v in size.lower().split("x"))
    return b, c, d, h


def _weights(c: int, device: str, grad: bool) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    mk = lambda *s: (torch.randn(*s, generator=g) * 0.1).to(device).requires_grad_(grad)  # noqa: E731
    return {"w1": mk(c, c, 1, 3, 3), "w2": mk(c, c, 1, 3, 3), "ws": mk(c, c, 3, 1, 1), "wf": mk(c, c, 3, 3, 3)}


def _variants(w: dict[str, torch.Tensor], num_spatial: int, compiled: Callable | None) -> dict[str, Callable]:
    sp = [w["w1"], w["w2"]][:num_spatial]
    ref = lambda x: s3conv_reference(x, sp, w["ws"])  # noqa: E731
    out = {
        "naive s3conv": ref,
        "hsikit s3conv": lambda x: s3conv(x, sp, w["ws"]),  # auto dispatch: the CPU path
        "full conv3d": lambda x: F.conv3d(x, w["wf"], padding=1),
    }
    if compiled is not None:
        out["compiled naive"] = compiled
    return out


def _timed(fn: Callable[[], object], sync: Callable[[], None]) -> float:
    sync()
    t = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t


def _timed_cpu(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall, process CPU time of all threads) in seconds."""
    c, t = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - t, time.process_time() - c


def bench_cpu(size: str, repeats: int, compile_ref: bool, num_spatial: int = 2) -> list[dict]:
    b, c, d, h = _parse(size)
    x0 = torch.randn(b, c, d, h, h, generator=torch.Generator().manual_seed(1))
    inputs = {"NCDHW": x0, "ch-last": x0.contiguous(memory_format=CL)}
    rows = []
    for mode in ("fwd", "fwd+bwd"):
        grad = mode == "fwd+bwd"
        w = _weights(c, "cpu", grad)
        compiled = None
        if compile_ref:
            sp = [w["w1"], w["w2"]][:num_spatial]
            compiled = torch.compile(lambda x: s3conv_reference(x, sp, w["ws"]))
        variants = _variants(w, num_spatial, compiled)
        jobs: dict[tuple[str, str], Callable[[], object]] = {}
        for vname, fn in variants.items():
            for lname, xin in inputs.items():
                xg = xin.detach().clone(memory_format=torch.preserve_format).requires_grad_(grad)
                if grad:
                    gout = torch.randn_like(fn(xg))  # same layout as the variant's output

                    def job(fn=fn, xg=xg, gout=gout):
                        fn(xg).backward(gout)
                else:

                    def job(fn=fn, xg=xg):
                        with torch.no_grad():
                            fn(xg)

                job()  # warm-up (and compilation)
                jobs[(vname, lname)] = job
        times: dict[tuple[str, str], list[tuple[float, float]]] = {k: [] for k in jobs}
        for _ in range(repeats):
            for k, job in jobs.items():
                times[k].append(_timed_cpu(job))
        for k, ts in times.items():
            rows.append({
                "size": size, "mode": mode, "variant": k[0], "layout": k[1],
                "ms": 1e3 * statistics.median(t[0] for t in ts), "cpu_ms": 1e3 * statistics.median(t[1] for t in ts),
            })  # fmt: skip
    return rows


def bench_floor(size: str, repeats: int, num_spatial: int = 2) -> list[dict]:
    """The block's own oneDNN primitives, one call each on the whole channels-last tensor, vs the full conv.

    Forward: the 3x3 2-D conv over the B*D frames (LeakyReLU fused) and the (3, 1) spectral conv over
    the band image, exactly as the CPU path calls them (no chunking, no threads of its own), and the
    full 3x3x3 conv. Backward: ``convolution_backward`` (input and weight gradients) of each. The sum
    over S3Conv's convs (forward: n_spatial x 2-D + spectral; fwd+bwd: plus every backward, i.e. with the
    activations kept, no recompute) is a floor for any implementation built on these primitives. Run it
    with glibc keeping freed memory (see ``--floor`` in main) so no op pays first-touch page faults.
    """
    b, c, d, h = _parse(size)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(b, c, d, h, h, generator=g).contiguous(memory_format=CL)
    rows_ = x.permute(0, 2, 3, 4, 1).reshape(b * d, h, h, c)  # (B*D, H, W, C), a view
    frames = rows_.permute(0, 3, 1, 2)  # (B*D, C, H, W) channels-last
    image = x.permute(0, 2, 3, 4, 1).reshape(b, d, h * h, c).permute(0, 3, 1, 2)  # (B, C, D, H*W) channels-last
    w2 = torch.randn(c, c, 3, 3, generator=g) * 0.1
    ws = torch.randn(c, c, 3, 1, generator=g) * 0.1
    wf = torch.randn(c, c, 3, 3, 3, generator=g) * 0.1
    conv = torch.ops.mkldnn._convolution_pointwise
    bwd = torch.ops.aten.convolution_backward
    y2 = conv(frames, w2, None, [1, 1], [1, 1], [1, 1], 1, "leaky_relu", [0.01], None)
    ys = conv(image, ws, None, [1, 0], [1, 1], [1, 1], 1, "none", [], None)
    yf = conv(x, wf, None, [1, 1, 1], [1, 1, 1], [1, 1, 1], 1, "none", [], None)
    ops = {
        ("fwd", "spatial 3x3"): lambda: conv(frames, w2, None, [1, 1], [1, 1], [1, 1], 1, "leaky_relu", [0.01], None),
        ("fwd", "spectral 3x1"): lambda: conv(image, ws, None, [1, 0], [1, 1], [1, 1], 1, "none", [], None),
        ("fwd", "full conv3d"): lambda: conv(x, wf, None, [1, 1, 1], [1, 1, 1], [1, 1, 1], 1, "none", [], None),
        ("bwd", "spatial 3x3"): lambda: bwd(y2, frames, w2, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, [True, True, False]),
        ("bwd", "spectral 3x1"): lambda: bwd(ys, image, ws, None, [1, 1], [1, 0], [1, 1], False, [0, 0], 1, [True, True, False]),
        ("bwd", "full conv3d"): lambda: bwd(yf, x, wf, None, [1, 1, 1], [1, 1, 1], [1, 1, 1], False, [0, 0, 0], 1,
                                            [True, True, False]),
    }  # fmt: skip
    times: dict = {k: [] for k in ops}
    with torch.no_grad():
        for fn in ops.values():
            fn()
        for _ in range(repeats):
            for k, fn in ops.items():
                times[k].append(_timed_cpu(fn)[0])
    med = {k: 1e3 * statistics.median(v) for k, v in times.items()}
    fwd = num_spatial * med[("fwd", "spatial 3x3")] + med[("fwd", "spectral 3x1")]
    bwd_ = num_spatial * med[("bwd", "spatial 3x3")] + med[("bwd", "spectral 3x1")]
    full_f, full_b = med[("fwd", "full conv3d")], med[("bwd", "full conv3d")]
    out = [{"size": size, "pass": p, "primitive": n, "ms": v} for (p, n), v in med.items()]
    out.append({"size": size, "pass": "fwd", "primitive": f"S3Conv floor ({num_spatial} sp + spec)", "ms": fwd, "ratio": fwd / full_f})
    out.append({"size": size, "pass": "fwd+bwd", "primitive": f"S3Conv floor ({num_spatial} sp + spec)", "ms": fwd + bwd_,
                "ratio": (fwd + bwd_) / (full_f + full_b)})
    out.append({"size": size, "pass": "fwd+bwd", "primitive": "full conv3d", "ms": full_f + full_b})
    return out


def print_floor(rows: list[dict]) -> None:
    for r in rows:
        ratio = f"{r['ratio']:6.2f}" if "ratio" in r else ""
        print(f"{r['size']:14s} {r['pass']:8s} {r['primitive']:28s} {r['ms']:9.1f} {ratio}")


def _bytes_fused(b: int, c: int, d: int, h: int, elem: int, grad: bool, num_spatial: int) -> int:
    """Compulsory DRAM bytes of the fused kernels (each tensor read or written once per kernel).

    Forward: HSDT's two-conv block with C <= 32 is one pass (x in, out out: 2 tensors); otherwise
    each spatial conv but the last reads its input and writes h_i, the last reads h_{n-1} and x and
    writes out -> (2n + 1) tensors. Backward: recompute (2n), per spatial conv one
    weight-grad pass (g, mask, input: 3) and one transposed conv (g, mask, write: 3; the last also
    reads g for the spectral branch: +1), and the spectral weight grad (g, x: 2).
    """
    n = b * c * d * h * h * elem
    single_pass = num_spatial == 2 and c <= 32  # _fused2_kernel: read x, write out
    fwd = 2 * n if single_pass else (2 * num_spatial + 1) * n
    if not grad:
        return fwd
    return fwd + (2 * num_spatial + 6 * num_spatial + 1 + 2) * n


def bench_cuda(size: str, repeats: int, num_spatial: int = 2) -> list[dict]:
    dev = "cuda"
    b, c, d, h = _parse(size)
    x0 = torch.randn(b, c, d, h, h, device=dev)
    sync = torch.cuda.synchronize
    # measured copy bandwidth (read + write) on a 1 GiB buffer
    src = torch.empty(1 << 28, device=dev)
    dst = torch.empty_like(src)
    dst.copy_(src)
    copy_s = statistics.median(_timed(lambda: dst.copy_(src), sync) for _ in range(10))
    copy_bw = 2 * src.numel() * 4 / copy_s
    del src, dst
    rows = []
    for mode in ("fwd", "fwd+bwd"):
        grad = mode == "fwd+bwd"
        w = _weights(c, dev, grad)

        def run(kind: str) -> Callable[[], object]:
            xg = x0.detach().clone().requires_grad_(grad)

            def fwd():
                if kind == "full conv3d":
                    return F.conv3d(xg, w["wf"], padding=1)
                with dispatch.kernel_mode("fused" if kind == "fused s3conv" else "reference"):
                    return s3conv(xg, [w["w1"], w["w2"]][:num_spatial], w["ws"])

            if not grad:
                return lambda: torch.no_grad()(fwd)()
            gout = torch.randn_like(x0)
            return lambda: fwd().backward(gout)

        jobs = {k: run(k) for k in ("naive s3conv", "fused s3conv", "full conv3d")}
        for job in jobs.values():
            job()
        times: dict[str, list[float]] = {k: [] for k in jobs}
        for _ in range(repeats):
            for k, job in jobs.items():
                times[k].append(_timed(job, sync))
        for k, ts in times.items():
            ms = 1e3 * statistics.median(ts)
            row = {"size": size, "mode": mode, "variant": k, "layout": "NCDHW", "ms": ms}
            if k == "fused s3conv":
                bw = _bytes_fused(b, c, d, h, 4, grad, num_spatial) / (ms / 1e3)
                row["bw"] = f"{bw / 1e9:.0f} GB/s = {100 * bw / copy_bw:.0f}% of copy {copy_bw / 1e9:.0f} GB/s"
            rows.append(row)
    return rows


def print_header() -> None:
    print(
        f"{'size BxCxDxH':14s} {'mode':8s} {'variant':16s} {'layout':8s} {'wall ms':>9s} {'/full':>6s} {'/naive':>6s}"
        f" {'cpu ms':>9s} {'/full':>6s}  note"
    )


def print_table(rows: list[dict]) -> None:
    """Medians with ratios to the full 3x3x3 conv (same size, mode, layout) and to the naive pair."""
    base = {(r["size"], r["mode"], r["layout"], r["variant"]): r["ms"] for r in rows}
    cpu = {(r["size"], r["mode"], r["layout"], r["variant"]): r.get("cpu_ms") for r in rows}
    for r in rows:
        key = (r["size"], r["mode"], r["layout"])
        full = base.get((*key, "full conv3d"))
        naive = base.get((*key, "naive s3conv"))
        cfull = cpu.get((*key, "full conv3d"))
        c_ms = r.get("cpu_ms")
        cpu_cols = f"{c_ms:9.1f} {c_ms / cfull:6.2f}" if c_ms and cfull else f"{'':9s} {'':6s}"
        print(
            f"{r['size']:14s} {r['mode']:8s} {r['variant']:16s} {r['layout']:8s} {r['ms']:9.1f} "
            f"{r['ms'] / full if full else float('nan'):6.2f} {r['ms'] / naive if naive else float('nan'):6.2f}"
            f" {cpu_cols}  {r.get('bw', '')}"
        )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=None, help="BxCxDxH sizes (W = H)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="one small size, 3 repeats")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile(reference) (CPU)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--num-spatial", type=int, default=2, help="spatial convs in S3Conv (HSDT: 2; 1 = the plain parallel pair)")
    ap.add_argument("--floor", action="store_true",
                    help="time S3Conv's oneDNN primitives alone against the full conv (a floor for any implementation on "
                         "them); reruns itself with glibc keeping freed memory, so no op pays page faults")
    args = ap.parse_args(argv)
    if args.floor and os.environ.get("MALLOC_MMAP_THRESHOLD_") is None:
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="4000000000", MALLOC_TRIM_THRESHOLD_="100000000000")
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = args.sizes or (["1x16x31x64"] if args.quick else DEFAULT_SIZES)
    repeats = 3 if args.quick else args.repeats
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, cuda={torch.cuda.is_available()}, "
        f"S3Conv with {args.num_spatial} spatial conv(s); wall = median wall clock, cpu = median process CPU time"
    )
    if args.floor:
        print(f"{'size BxCxDxH':14s} {'pass':8s} {'primitive (one oneDNN call)':28s} {'ms':>9s} {'/full':>6s}")
        for size in sizes:
            print_floor(bench_floor(size, repeats, args.num_spatial))
            sys.stdout.flush()
        return
    print_header()
    for size in sizes:
        rows = bench_cpu(size, repeats, args.compile, args.num_spatial)
        if torch.cuda.is_available():
            rows += bench_cuda(size, repeats, args.num_spatial)
        print_table(rows)
        sys.stdout.flush()


if __name__ == "__main__":
    main()
