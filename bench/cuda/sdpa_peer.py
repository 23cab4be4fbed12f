#!/usr/bin/env python3
"""The peer of strata_attention_bench: PyTorch's scaled_dot_product_attention on the same
shapes (32 query heads, 8 KV heads, head dim 128, bf16; contiguous K/V, since SDPA has no paged
cache). Each case runs twice: with enable_gqa (8 KV heads read) and with K/V expanded to 32
heads (which every SDPA backend accepts); the faster is the peer figure. FLOPs and bytes are
counted as the Strata benchmark counts them. Medians of CUDA-event timings after warm-up.

Runs on the GPU machine (scripts/gpu-check.sh), where PyTorch is installed."""
import statistics
import sys

import torch
import torch.nn.functional as F

HEADS, KV_HEADS, DIM = 32, 8, 128


def median_ms(fn, iters):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times)


def best_ms(q, k, v, causal, iters):
    results = {}
    try:
        results["gqa"] = median_ms(
            lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True), iters)
    except RuntimeError as error:  # a backend that refuses the shape
        print(f"  (enable_gqa failed: {error})", file=sys.stderr)
    group = q.shape[1] // k.shape[1]
    k32, v32 = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    results["expanded"] = median_ms(
        lambda: F.scaled_dot_product_attention(q, k32, v32, is_causal=causal), iters)
    variant = min(results, key=results.get)
    return results[variant], variant


def rand(*shape):
    return torch.empty(*shape, device="cuda", dtype=torch.bfloat16).uniform_(-1, 1)


def prefill(batch, seq, peak, iters):
    q, k, v = rand(batch, HEADS, seq, DIM), rand(batch, KV_HEADS, seq, DIM), rand(batch, KV_HEADS, seq, DIM)
    ms, variant = best_ms(q, k, v, True, iters)
    tflops = 4.0 * DIM * HEADS * batch * seq * (seq + 1) / 2 / (ms * 1e-3) / 1e12
    print(f"sdpa prefill d128 bf16 causal batch={batch} seq={seq} heads=32/8: {ms:.3f} ms, "
          f"{tflops:.1f} TFLOP/s ({100 * tflops / peak:.1f} % of {peak:.0f}) [{variant}]")


def decode(batch, ctx, copy_gbs, iters):
    q, k, v = rand(batch, HEADS, 1, DIM), rand(batch, KV_HEADS, ctx, DIM), rand(batch, KV_HEADS, ctx, DIM)
    ms, variant = best_ms(q, k, v, False, iters)
    gbs = batch * (2.0 * ctx * KV_HEADS * DIM * 2 + 2.0 * HEADS * DIM * 2) / (ms * 1e-3) / 1e9
    print(f"sdpa decode  d128 bf16 dense  batch={batch} ctx={ctx} heads=32/8: {ms:.3f} ms, "
          f"{gbs:.0f} GB/s ({100 * gbs / copy_gbs:.1f} % of the {copy_gbs:.0f} GB/s copy) [{variant}]")


def copy_bandwidth(iters):
    a = rand(1 << 30)  # 2 GiB of bf16
    b = torch.empty_like(a)
    ms = median_ms(lambda: b.copy_(a), iters)
    return 2.0 * a.numel() * 2 / (ms * 1e-3) / 1e9


def main():
    iters, peak = 20, 989.0
    for arg in sys.argv[1:]:
        if arg.startswith("--iters="):
            iters = max(1, int(arg.split("=", 1)[1]))
        elif arg.startswith("--peak_tflops="):
            peak = float(arg.split("=", 1)[1])
        else:
            sys.exit(f"usage: {sys.argv[0]} [--iters=N] [--peak_tflops=T]")
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name(0)}")
    copy_gbs = copy_bandwidth(iters)
    print(f"copy: {copy_gbs:.0f} GB/s (device to device, read + write)")
    prefill(16, 1024, peak, iters)
    prefill(4, 4096, peak, iters)
    prefill(1, 16384, peak, iters)
    for batch in (1, 32, 128):
        decode(batch, 4096, copy_gbs, iters)
    for ctx in (16384, 65536):
        decode(1, ctx, copy_gbs, iters)
    decode(32, 16384, copy_gbs, iters)


if __name__ == "__main__":
    main()
