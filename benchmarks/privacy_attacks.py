"""Privacy leakage, measured by attacks, against epsilon (no privacy, 8, 3, 1) on HWU64.

For each epsilon, :func:`homeloop.privacy.audit_privacy` trains the assistant's NLU (fast encoder, the same
private recipe as ``benchmarks/dp_utility.py``) on ``--members`` random HWU64 training utterances plus planted
canaries, keeps as many other random utterances out as non-members, trains ``--shadows`` shadow models on the
rest, and reports: loss-threshold and LiRA (offline) membership-inference AUC and TPR at 0.1% FPR, the
empirical epsilon lower bound (95% confidence) beside the accountant's epsilon, canary exposure (bits, of
log2(10^4) = 13.3) and canary extraction success (whole secret; chance 1e-4; and per digit, chance 0.1).

``--model minilm-probe`` audits the private linear probe on frozen MiniLM sentence vectors instead
(:func:`homeloop.privacy.probe.train_private_probe`, the ``dp_utility.py`` recipe; one shared memo of
sentence vectors, so shadow models cost seconds): the model whose accuracy survives DP.

Run::

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/privacy_attacks.py
    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/privacy_attacks.py --model minilm-probe --members 3000 --shadows 16
    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/privacy_attacks.py --members 500 --shadows 2 --epsilons inf 8
    ... --json --out privacy_attacks.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from datetime import UTC, datetime

import torch

from homeloop.datasets.hwu64 import load_hwu64
from homeloop.privacy import audit_privacy

SMALL_FAST = {"ngram_buckets": 4000, "embedding_dim": 64, "hidden_size": 48}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epsilons", nargs="+", type=float, default=[math.inf, 8.0, 3.0, 1.0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--shadows", type=int, default=4)
    parser.add_argument("--canaries", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=8, help="epochs of the fast NLU")
    parser.add_argument("--model", choices=["fast", "minilm-probe"], default="fast", help="the recipe audited")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    started = time.perf_counter()
    trainer = None
    if args.model == "minilm-probe":
        from homeloop.nlu.probe import SentenceVectors
        from homeloop.privacy.probe import train_private_probe

        vectors = SentenceVectors()

        def minilm_probe(examples, seed, epsilon):
            return train_private_probe(examples, target_epsilon=epsilon, seed=seed, vectors=vectors)

        trainer = minilm_probe
    audit = audit_privacy(
        load_hwu64("train"),
        epsilons=args.epsilons,
        test=load_hwu64("test"),
        members=args.members,
        shadows=args.shadows,
        canaries=args.canaries,
        repeats=args.repeats,
        encoder_params=SMALL_FAST,
        epochs=args.epochs,
        seed=args.seed,
        trainer=trainer,
        on_stage=lambda msg: print(msg, file=sys.stderr, flush=True),
    )
    result = {
        "benchmark": "privacy_attacks",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": time.perf_counter() - started,
        **audit.as_dict(),
    }
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=2, default=str)
    if args.json:
        sys.stdout.write(json.dumps(result, indent=2, default=str) + "\n")
    else:
        s = audit.settings
        print(
            f"HWU64, {s['members']} members / {s['non_members']} non-members, {s['shadows']} shadows, "
            f"{s['canaries']} canaries x {s['repeats']}, "
            + (f"fast encoder, {s['epochs']} epochs" if args.model == "fast" else "linear probe on MiniLM vectors")
        )
        print(
            f"{'epsilon':>8} {'acct eps':>9} {'emp eps':>8} {'loss AUC':>9} {'loss TPR':>9} {'LiRA AUC':>9} "
            f"{'LiRA TPR':>9} {'exposure':>9} {'extract':>8} {'digits':>7} {'test acc':>9}"
        )
        for r in audit.rows:
            print(
                f"{r.target_epsilon:>8g} {r.accountant_epsilon:>9.2f} {r.empirical_epsilon:>8.2f} "
                f"{r.loss_attack['auc']:>9.3f} {r.loss_attack['tpr_at_0_1_fpr']:>9.3f} {r.lira_attack['auc']:>9.3f} "
                f"{r.lira_attack['tpr_at_0_1_fpr']:>9.3f} {r.canary_exposure:>9.2f} {r.extraction_exact:>8.2f} "
                f"{r.extraction_digits:>7.2f} {r.test_accuracy if r.test_accuracy is not None else float('nan'):>9.3f}"
            )
        print("(TPR at 0.1% FPR; empirical epsilon: 95% lower bound, the larger of the two attacks')")
    return result


if __name__ == "__main__":
    main()
