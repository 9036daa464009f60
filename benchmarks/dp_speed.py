"""DP-SGD speed, side by side: the same model on the same batches without privacy, with homeloop's DP
(bookkeeping clipping; its Gaussian noise drawn ahead on a background thread, and drawn at the step), with
Opacus ghost clipping and with Opacus's default per-sample gradients ("hooks").

The model is the assistant's NLU (fast encoder with the convolutional context, or MiniLM with its
embedding layer frozen: position embeddings are shared by the batch), built on HWU64
train; every mode starts from the same weights and trains on the same fixed batches with the same AdamW
settings (DP modes clip at 1.0 and add noise of multiplier 1.0; Poisson sampling is left out so the batches are
identical). Time: the steps of all modes are interleaved round-robin in one process, so load changes on a
shared machine hit every mode alike; the median wall seconds and CPU seconds (all threads) per optimizer step
are reported. Memory: each mode runs again in its own process; the peak resident memory during training
(``VmHWM`` after resetting it through ``/proc/self/clear_refs``) is reported, as the total and as the increase
over the process before training (median of ``--memory-repeats`` processes per mode, 3 by default).

Run::

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/dp_speed.py                      # fast encoder, batch 64
    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/dp_speed.py --batch-size 256
    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/dp_speed.py --encoder minilm --batch-size 16 --steps 6
    ... --json                                                                       # figures as JSON
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import ctypes
import gc
import json
import platform
import statistics
import subprocess
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import torch

from homeloop.datasets.hwu64 import load_hwu64
from homeloop.nlu import IntentSlotModel
from homeloop.privacy.clipping_modes import CLIPPING_MODES
from homeloop.privacy.nlu import per_example_joint_loss

MODES = ("none", "bookkeeping", "bookkeeping-at-step", "ghost", "hooks")


def _build(encoder: str, batch_size: int, steps: int, seed: int):
    """The untrained network, its collate function and ``steps`` fixed batches."""
    train = load_hwu64("train")
    params = {"encoder_params": {"context": "cnn"}} if encoder == "fast" else {}
    model = IntentSlotModel(encoder=encoder, epochs=0, seed=seed, **params).fit(train)
    network = model.network_.train()
    if encoder == "minilm":  # position embeddings are shared by the whole batch: no per-example gradient
        for p in network.encoder.transformer.embeddings.parameters():
            p.requires_grad_(False)
    collate = model._collate(network.encoder)
    intents = {name: i for i, name in enumerate(model.intents_)}
    tags = {name: i for i, name in enumerate(model.slot_tags_)}
    from homeloop.datasets._base import bio_tags

    items = [
        {
            "index": i,
            "tokens": tuple(t.lower() for t in u.tokens),
            "intent": intents[u.intent],
            "tags": [tags[t] for t in bio_tags(len(u.tokens), u.slots)],
        }
        for i, u in enumerate(train)
        if u.tokens
    ]
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(items), generator=generator).tolist()
    batches = [collate([items[j] for j in order[(k * batch_size) % len(items) :][:batch_size]]) for k in range(steps)]
    return network, batches


def _mode(network, mode: str, batch_size: int, lr: float):
    """(module, optimizer, loss_fn) for ``mode`` on a copy of ``network``."""
    net = copy.deepcopy(network)
    optimizer = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=lr)
    if mode == "none":
        return net, optimizer, lambda m, b: per_example_joint_loss(m, b).mean(), None
    generator = torch.Generator().manual_seed(1)
    options = {"noise_ahead": False} if mode == "bookkeeping-at-step" else {}
    prepared = CLIPPING_MODES[mode.removesuffix("-at-step")](
        net,
        optimizer,
        noise_multiplier=1.0,
        max_grad_norm=1.0,
        expected_batch_size=batch_size,
        generator=generator,
        **options,
    )
    return prepared.module, prepared.optimizer, prepared.loss(per_example_joint_loss), prepared


def _step(module, optimizer, loss_fn, batch) -> float:
    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn(module, batch)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def time_modes(
    encoder: str, batch_size: int, steps: int, modes: list[str], seed: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Median wall seconds and median CPU seconds (all the process's threads) per step, by mode."""
    network, batches = _build(encoder, batch_size, steps + 2, seed)
    runs = {m: _mode(network, m, batch_size, 1e-3) for m in modes}
    wall: dict[str, list[float]] = {m: [] for m in modes}
    cpu: dict[str, list[float]] = {m: [] for m in modes}
    for k, batch in enumerate(batches):
        for m in modes:
            module, optimizer, loss_fn, _ = runs[m]
            start, start_cpu = time.perf_counter(), time.process_time()
            _step(module, optimizer, loss_fn, batch)
            if k >= 2:  # the first steps allocate optimizer state and warm caches
                wall[m].append(time.perf_counter() - start)
                cpu[m].append(time.process_time() - start_cpu)
    return {m: statistics.median(t) for m, t in wall.items()}, {m: statistics.median(t) for m, t in cpu.items()}


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def memory_worker(encoder: str, batch_size: int, steps: int, mode: str, seed: int) -> dict[str, float]:
    network, batches = _build(encoder, batch_size, steps, seed)
    module, optimizer, loss_fn, _ = _mode(network, mode, batch_size, 1e-3)
    del network
    gc.collect()
    with contextlib.suppress(OSError):  # not glibc
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    before = _rss_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    for batch in batches:
        _step(module, optimizer, loss_fn, batch)
    peak = _rss_kib("VmHWM")
    return {"rss_before_mb": before / 1024, "peak_mb": peak / 1024, "training_mb": (peak - before) / 1024}


def _memory(args: argparse.Namespace, mode: str) -> dict[str, float | str]:
    """Median over ``--memory-repeats`` fresh processes (the peak moves by about 2% from run to run)."""
    cmd = [sys.executable, __file__, "--memory-worker", mode, "--encoder", args.encoder]
    cmd += ["--batch-size", str(args.batch_size), "--memory-steps", str(args.memory_steps)]
    cmd += ["--threads", str(args.threads), "--seed", str(args.seed)]
    runs = []
    for _ in range(args.memory_repeats):
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        try:
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        except (IndexError, json.JSONDecodeError):
            return {"error": done.stderr[-500:]}
    out = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    out["peak_mb_runs"] = [round(r["peak_mb"], 1) for r in runs]
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoder", default="fast", choices=["fast", "minilm"])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per mode (plus 2 warm-up steps)")
    parser.add_argument("--memory-steps", type=int, default=5)
    parser.add_argument("--memory-repeats", type=int, default=3, help="processes per mode; the median is reported")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--memory-worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    if args.memory_worker:
        out = memory_worker(args.encoder, args.batch_size, args.memory_steps, args.memory_worker, args.seed)
        sys.stdout.write(json.dumps(out) + "\n")
        return out
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if "none" not in modes:
        modes.insert(0, "none")
    seconds, cpu_seconds = time_modes(args.encoder, args.batch_size, args.steps, modes, args.seed)
    memory = {m: _memory(args, m) for m in modes}
    base_t, base_m = seconds["none"], memory["none"]
    rows = {}
    for m in modes:
        mem = memory[m]
        rows[m] = {
            "seconds_per_step": seconds[m],
            "time_ratio": seconds[m] / base_t,
            "cpu_seconds_per_step": cpu_seconds[m],
            "cpu_ratio": cpu_seconds[m] / cpu_seconds["none"],
            "peak_mb": mem.get("peak_mb"),
            "peak_ratio": mem["peak_mb"] / base_m["peak_mb"] if "peak_mb" in mem else None,
            "peak_mb_runs": mem.get("peak_mb_runs"),
            "training_mb": mem.get("training_mb"),
            "training_memory_ratio": (
                mem["training_mb"] / base_m["training_mb"]
                if "training_mb" in mem and base_m.get("training_mb")
                else None
            ),
        }
    result = {
        "benchmark": "dp_speed",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} torch {torch.__version__}, {args.threads} thread(s)",
        "encoder": args.encoder + (" (cnn context)" if args.encoder == "fast" else ""),
        "batch_size": args.batch_size,
        "timed_steps": args.steps,
        "modes": rows,
    }
    if args.json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        print(f"DP-SGD speed, {result['encoder']}, batch {args.batch_size}, {args.steps} interleaved steps per mode")
        print(
            f"{'mode':<12} {'s/step':>8} {'x time':>7} {'cpu s':>7} {'x cpu':>6} {'peak MB':>8} {'x peak':>7} "
            f"{'train MB':>9} {'x train':>8}"
        )
        for m, r in rows.items():

            def f(v, spec):
                return format(v, spec) if isinstance(v, (int, float)) else "-"

            print(
                f"{m:<12} {f(r['seconds_per_step'], '8.4f')} {f(r['time_ratio'], '7.2f')} "
                f"{f(r['cpu_seconds_per_step'], '7.4f')} {f(r['cpu_ratio'], '6.2f')} {f(r['peak_mb'], '8.0f')} "
                f"{f(r['peak_ratio'], '7.2f')} {f(r['training_mb'], '9.0f')} {f(r['training_memory_ratio'], '8.2f')}"
            )
    return result


if __name__ == "__main__":
    main()
