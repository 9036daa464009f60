"""Scale: train the device-state model on, and embed, ~100k simulated devices on the machine's cores.

Device timelines come from the world simulator's routines (homes, residents, their days and
the devices they drive; the assistant's conversations are not needed here). Measured: time
to build the slot grid, to fit the model, to embed every device, and peak memory (RSS);
for a ratio in the same run, the time the hour-of-week prior baseline takes to fit.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/device_scale.py --devices 100000 --days 7
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np
import pandas as pd
import torch


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def simulated_history(devices: int, days: int, seed: int):
    """A :class:`~homeloop.home.features.DeviceHistory` of at least ``devices`` simulated devices."""
    from homeloop.home.features import DeviceHistory, _home_slots
    from homeloop.world import WorldConfig
    from homeloop.world.homes import build_homes
    from homeloop.world.routines import simulate_routines

    slot_minutes = 10
    homes, total, first = [], 0, 0
    skipped: dict = {}
    from collections import Counter

    skipped = Counter()
    day0 = pd.Timestamp("2026-03-02", tz="UTC").value // 1000
    while total < devices:
        config = WorldConfig(homes=500, days=days, seed=seed, first_home=first)
        for home in build_homes(config):
            tl = simulate_routines(home, config)
            per: dict[str, tuple[list[int], list[int]]] = {}
            for iv in tl.intervals:
                s, e = per.setdefault(iv.device.device_id, ([], []))
                s.append(day0 + int(iv.start * 3.6e9))
                e.append(day0 + int(min(iv.end, 24 * days) * 3.6e9))
            rows = pd.DataFrame([{"device_id": d.device_id, "name": d.name, "type": d.type, "room": None,
                                  "groups": list(d.groups)} for d in home.devices])  # fmt: skip
            ivs = {k: (np.asarray(v[0], np.int64), np.asarray(v[1], np.int64)) for k, v in per.items()}
            span = (day0, day0 + days * 86_400_000_000 - 1)
            hs = _home_slots(home.home_id, "UTC", rows, ivs, slot_minutes, skipped, span)
            if hs is not None:
                homes.append(hs)
                total += len(hs.devices)
        first += 500
    return DeviceHistory(homes, slot_minutes, skipped)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--samples-per-device", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--text-encoder", default="minilm", choices=["minilm", "hashing"])
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from homeloop.home.baselines import HourOfWeekPrior
    from homeloop.home.device_model import DeviceStateModel
    from homeloop.home.features import split_days

    out: dict = {"threads": args.threads, "days": args.days}
    t = time.perf_counter()
    history = simulated_history(args.devices, args.days, args.seed)
    out["homes"], out["devices"] = len(history.homes), history.n_devices
    out["seconds_build_history"] = time.perf_counter() - t
    days = split_days(history)

    t = time.perf_counter()
    HourOfWeekPrior().fit(history, days)
    out["seconds_fit_hour_of_week_prior"] = time.perf_counter() - t

    t = time.perf_counter()
    model = DeviceStateModel(
        text_encoder=args.text_encoder,
        epochs=args.epochs,
        batch_size=args.batch_size,
        samples_per_device=args.samples_per_device,
        validation_fraction=0.0,
        seed=0,
    )
    model.fit(history, days)  # fmt: skip
    out["seconds_fit_model"] = time.perf_counter() - t
    out["training_queries"] = args.samples_per_device * int(sum(h.has_events.sum() for h in history.homes))

    t = time.perf_counter()
    emb = model.embed(history)
    out["seconds_embed"] = time.perf_counter() - t
    out["embeddings"] = list(emb.shape)
    out["peak_rss_mib"] = _peak_mib()
    out["fit_time_ratio_model_vs_prior"] = out["seconds_fit_model"] / max(out["seconds_fit_hour_of_week_prior"], 1e-9)
    out["devices_embedded_per_second"] = history.n_devices / max(out["seconds_embed"], 1e-9)
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
