"""The defect model against the rules-only baseline, on simulated truth and on real rated dialogues (USS).

Parts (``--parts``, default both):

- ``sim``: a simulated world (``--homes``, ``--days``, seed 0) with the real
  fast-encoder NLU. For each of ``--splits`` random splits of the homes (30%
  held out), the :class:`~homeloop.selflearn.DefectModel` is fitted on the
  training homes' turns (labels: ``truth_turns.success``) and scored on the
  held-out homes' turns beside the rules (any of barge-in, negative feedback,
  error response, a "no" next, a rephrase within 45 s, abandonment). Then a
  model fitted on that whole world is scored on a second world of new homes
  and residents (``first_home=10000``, the same recogniser), which is the
  transfer a deployed model faces.
- ``uss``: USS (SGD and MultiWOZ, 2,000 dialogues; a user turn with majority
  rating <= 2 is dissatisfied): the model on dialogue signals, trained on 70%
  of the dialogues and scored on the other 30%, for ``--splits`` splits, beside
  the rules (a negation, a repeated request, a failure message before).

Figures: ROC AUC (rules: their 0/1 flag as the score), precision, recall, F1;
mean and standard deviation over the splits; the ratio model/rules.

Run::

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/defect_model.py --nlu <saved NLU folder> --out defects.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np


def _summary(runs: list[dict], keys=("auc", "precision", "recall", "f1")) -> dict:
    return {
        k: (round(float(np.mean([r[k] for r in runs])), 4), round(float(np.std([r[k] for r in runs])), 4)) for k in keys
    }


def _nlu(path: str | None):
    from homeloop.nlu import load_model
    from homeloop.serving import assistant_nlu
    from homeloop.workspace import Workspace

    if path:
        return load_model(path)
    return assistant_nlu(Workspace.open(tempfile.mkdtemp(prefix="defect-bench-")))[0]


def sim_part(args) -> dict:
    from homeloop.data.lake import Lake
    from homeloop.selflearn import DefectModel, binary_metrics, rule_defects, signals_from_lake, truth_labels
    from homeloop.selflearn.defects import split_homes
    from homeloop.world import WorldConfig, simulate

    nlu = _nlu(args.nlu)
    lake = Lake(tempfile.mkdtemp(prefix="defect-bench-lake-"))
    started = time.perf_counter()
    simulate(WorldConfig(homes=args.homes, days=args.days, seed=0), nlu=nlu).write(lake, "train-world")
    simulate(WorldConfig(homes=args.homes // 2, days=args.days, seed=0, first_home=10000), nlu=nlu).write(
        lake, "new-homes"
    )
    sim_seconds = time.perf_counter() - started
    signals = signals_from_lake(lake, "train-world")
    y = truth_labels(lake, "train-world", signals["turn_id"].tolist())
    homes = signals["home_id"].tolist()
    model_runs, rule_runs = [], []
    for split in range(args.splits):
        test = split_homes(homes, test_fraction=0.3, seed=split)
        model = DefectModel(seed=split).fit(signals[~test], y[~test])
        p = model.predict_proba(signals[test])[:, 1]
        rules = rule_defects(signals[test])
        model_runs.append(binary_metrics(y[test], p >= model.threshold_, p))
        rule_runs.append(binary_metrics(y[test], rules, rules.astype(float)))
    # transfer to new homes and residents
    model = DefectModel(seed=0).fit(signals, y)
    new = signals_from_lake(lake, "new-homes")
    y_new = truth_labels(lake, "new-homes", new["turn_id"].tolist())
    p_new = model.predict_proba(new)[:, 1]
    rules_new = rule_defects(new)
    out = {
        "world": {
            "homes": args.homes,
            "days": args.days,
            "turns": len(signals),
            "defect_rate": round(float(y.mean()), 4),
        },
        "simulation_seconds": round(sim_seconds, 1),
        "held_out_homes": {"model": _summary(model_runs), "rules": _summary(rule_runs), "splits": args.splits},
        "new_world": {
            "turns": len(new),
            "model": binary_metrics(y_new, p_new >= model.threshold_, p_new),
            "rules": binary_metrics(y_new, rules_new, rules_new.astype(float)),
        },
    }
    importance = _top_features(model, new, y_new)
    if importance:
        out["top_features_new_world"] = importance
    return out


def _top_features(model, signals, y) -> dict:
    try:
        from sklearn.inspection import permutation_importance
    except ImportError:  # pragma: no cover
        return {}
    x = signals[list(model.features_)].to_numpy(dtype=float)
    r = permutation_importance(model.classifier_, x, y, scoring="roc_auc", n_repeats=3, random_state=0)
    order = np.argsort(-r.importances_mean)[:8]
    return {model.features_[i]: round(float(r.importances_mean[i]), 4) for i in order}


def uss_part(args) -> dict:
    from homeloop.selflearn.uss import evaluate_defects_on_uss

    runs = [evaluate_defects_on_uss(seed=s) for s in range(args.splits)]
    out = {
        "test_turns": runs[0]["test_turns"],
        "test_dissatisfied_rate": runs[0]["test_dissatisfied_rate"],
        "model": _summary([r["model"] for r in runs]),
        "rules": _summary([r["rules"] for r in runs]),
        "splits": args.splits,
    }
    for corpus in ("SGD", "MWOZ"):
        out[f"{corpus}_model"] = _summary([r[f"{corpus}_model"] for r in runs])
        out[f"{corpus}_rules"] = _summary([r[f"{corpus}_rules"] for r in runs])
    return out


def _print(title: str, rows: list[tuple[str, dict]]) -> None:
    print(f"\n{title}")
    print(f"{'':28} {'AUC':>15} {'precision':>15} {'recall':>15} {'F1':>15}")
    for name, m in rows:
        cells = []
        for k in ("auc", "precision", "recall", "f1"):
            v = m[k]
            cells.append(f"{v[0]:.3f} ± {v[1]:.3f}" if isinstance(v, tuple | list) else f"{v:.3f}")
        print(f"{name:28} " + " ".join(f"{c:>15}" for c in cells))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", nargs="+", default=["sim", "uss"], choices=["sim", "uss"])
    parser.add_argument("--homes", type=int, default=40)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--nlu", help="a saved NLU model folder (default: train the fast NLU)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    results: dict = {"measured": datetime.now(UTC).isoformat(timespec="seconds"), "args": vars(args) | {"out": None}}
    if "sim" in args.parts:
        sim = results["sim"] = sim_part(args)
        _print(
            f"simulated world ({sim['world']['turns']} turns, defect rate {sim['world']['defect_rate']}), "
            f"held-out homes, {args.splits} splits",
            [("defect model", sim["held_out_homes"]["model"]), ("rules", sim["held_out_homes"]["rules"])],
        )
        nw = sim["new_world"]
        _print(
            f"new homes and residents ({nw['turns']} turns)", [("defect model", nw["model"]), ("rules", nw["rules"])]
        )
        m, r = sim["held_out_homes"]["model"], sim["held_out_homes"]["rules"]
        print(
            f"ratio model/rules, held-out homes: AUC {m['auc'][0] / r['auc'][0]:.2f}x, F1 {m['f1'][0] / r['f1'][0]:.2f}x"
        )
    if "uss" in args.parts:
        uss = results["uss"] = uss_part(args)
        _print(
            f"USS, held-out dialogues ({uss['test_turns']} user turns, {uss['test_dissatisfied_rate']:.1%} "
            f"dissatisfied), {args.splits} splits",
            [
                ("defect model", uss["model"]),
                ("rules", uss["rules"]),
                ("defect model, SGD", uss["SGD_model"]),
                ("rules, SGD", uss["SGD_rules"]),
                ("defect model, MultiWOZ", uss["MWOZ_model"]),
                ("rules, MultiWOZ", uss["MWOZ_rules"]),
            ],
        )
        m, r = uss["model"], uss["rules"]
        print(f"ratio model/rules, USS: AUC {m['auc'][0] / r['auc'][0]:.2f}x, F1 {m['f1'][0] / r['f1'][0]:.2f}x")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
