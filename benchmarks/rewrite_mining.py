"""Rewrite mining at scale: 1M and 10M sessions end to end (read the lake, count transitions, solve the
chains, write the table), homeloop's DuckDB + sparse-LU job beside a straightforward implementation
(row-by-row Python counting, dense solves per connected component) in the same run; prints time, peak
memory, the scaling and the ratio.

    python benchmarks/rewrite_mining.py --model <saved fast NLU> --sessions 1000000 10000000 --baseline-max 1000000

The sessions are synthesised from one simulated world (``--homes``/``--days``, seed 0) by resampling: each
replica of the world's sessions gets its own users (``<user>#<replica>``, device ids likewise) and is
shifted in time; ``--text-variants V`` tags each replica's texts with one of V variants so that the chain
has V times the distinct utterances of the base world (a bigger chain to solve, same structure). Synthesis
writes Parquet files in the lake's layout into a temporary folder and is not timed. Each measurement runs in
a fresh Python process, so peak memory (max RSS) is that job's own.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

COLUMNS = "turn_id, user_id, device_id, time, asr_text, rewritten_from, intent, response_type, barge_in, feedback"


# ------------------------------------------------------------------------------------------ synthesis


def base_world(args) -> Path:
    """Simulate the base world once into ``<tmp>/base.parquet`` (the columns mining reads)."""
    import pyarrow.parquet as pq
    import torch

    from homeloop.datasets import load_hwu64
    from homeloop.nlu import IntentSlotModel, load_model
    from homeloop.world import WorldConfig, simulate

    out = Path(args.workdir) / f"base-{args.homes}-{args.days}.parquet"
    if out.exists():
        return out
    torch.set_num_threads(2)
    model = load_model(args.model) if args.model else IntentSlotModel(encoder="fast", seed=0).fit(load_hwu64("train"))
    result = simulate(WorldConfig(homes=args.homes, days=args.days, seed=0), nlu=model)
    turns = result.tables["turns"]
    pq.write_table(turns.select([c.strip() for c in COLUMNS.split(",")] + ["session_id"]), out)
    return out


def synthesise(base: Path, lake_root: Path, dataset: str, sessions: int, variants: int) -> dict:
    """Replicate the base world's sessions until there are ``sessions`` of them; write a lake ``turns`` table."""
    import duckdb

    con = duckdb.connect()
    con.execute(f"CREATE TABLE base AS SELECT * FROM read_parquet('{base}')")
    base_sessions = con.sql("SELECT count(DISTINCT session_id) FROM base").fetchall()[0][0]
    replicas = math.ceil(sessions / base_sessions)
    # keep whole sessions: the last replica takes only the first sessions of the base world
    con.execute(
        "CREATE TABLE sess AS SELECT session_id, row_number() OVER (ORDER BY session_id) - 1 AS k "
        "FROM (SELECT DISTINCT session_id FROM base)"
    )
    target = lake_root / dataset / "turns"
    target.mkdir(parents=True, exist_ok=True)
    tag = "CASE WHEN {v} > 1 THEN {col} || ' v' || (r % {v}) ELSE {col} END"
    asr = tag.format(v=variants, col="b.asr_text")
    rew = tag.format(v=variants, col="b.rewritten_from")
    con.execute(
        f"""COPY (
            SELECT b.turn_id || '#' || r AS turn_id, b.user_id || '#' || r AS user_id, b.device_id || '#' || r AS device_id,
                   b.time + to_days(CAST(r % 3650 AS INTEGER)) AS time, {asr} AS asr_text, {rew} AS rewritten_from,
                   b.intent, b.response_type, b.barge_in, b.feedback
            FROM base b JOIN sess s USING (session_id) CROSS JOIN range({replicas}) t(r)
            WHERE r * {base_sessions} + s.k < {sessions}
        ) TO '{target}' (FORMAT parquet, PER_THREAD_OUTPUT true, FILENAME_PATTERN 'part-{{i}}')"""
    )
    n = con.sql(f"SELECT count(*) FROM read_parquet('{target}/*.parquet')").fetchall()[0][0]
    con.close()
    return {"sessions": sessions, "turns": int(n), "replicas": replicas, "base_sessions": int(base_sessions)}


# ------------------------------------------------------------------------------------------ the two jobs


def project_job(lake_root: str, dataset: str, out_dir: str) -> dict:
    from homeloop.data.lake import Lake
    from homeloop.selflearn.rewrites import RewriteMiner

    t0 = time.perf_counter()
    miner = RewriteMiner(labels="rules").fit(Lake(lake_root), dataset)
    miner.table_.to_parquet(Path(out_dir) / "project.parquet")
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "rewrites": len(miner.table_), "figures": miner.figures_}


def _norm(text):
    from homeloop.selflearn.rewrites import normalise_utterance

    return normalise_utterance(text)


def baseline_job(lake_root: str, dataset: str, out_dir: str) -> dict:
    """The straightforward way: rows as Python objects, dictionaries, dense solves per component."""
    import numpy as np
    import pyarrow.dataset as pads

    from homeloop.selflearn.rewrites import REACTION_INTENTS, Rewrite, RewriteTable

    t0 = time.perf_counter()
    files = sorted(str(p) for p in (Path(lake_root) / dataset / "turns").rglob("part-*.parquet"))
    rows = pads.dataset(files, format="parquet").to_table(columns=[c.strip() for c in COLUMNS.split(",")]).to_pylist()
    seen, by_key = set(), defaultdict(list)
    for r in rows:
        if r["turn_id"] in seen or r["time"] is None or r["asr_text"] is None:
            continue
        seen.add(r["turn_id"])
        by_key[(r["user_id"], r["device_id"])].append(r)
    gap, window = 60.0, 30.0
    n, succ, fail = defaultdict(int), defaultdict(int), defaultdict(int)
    trans = defaultdict(int)
    pair_support, pair_users = defaultdict(int), defaultdict(set)
    for turns in by_key.values():
        turns.sort(key=lambda r: (r["time"], r["turn_id"]))
        sessions, current = [], []
        for i, r in enumerate(turns):
            nxt = turns[i + 1]["time"] if i + 1 < len(turns) else None
            r["defect"] = (
                r["response_type"] == "error"
                or bool(r["barge_in"])
                or r["feedback"] == "negative"
                or (nxt is not None and (nxt - r["time"]).total_seconds() <= window)
            )
            if current and (r["time"] - current[-1]["time"]).total_seconds() > gap:
                sessions.append(current)
                current = []
            current.append(r)
        sessions.append(current)
        for sess in sessions:
            chain = []
            for r in sess:
                text = _norm(r["rewritten_from"] if r["rewritten_from"] is not None else r["asr_text"])
                if (r["intent"] or "") in REACTION_INTENTS or not text:
                    continue
                chain.append((text, r))
            seg, segs = 0, []
            for _text, r in chain:
                segs.append(seg)
                if not r["defect"]:
                    seg += 1
            for i, (text, r) in enumerate(chain):
                nxt = chain[i + 1][0] if i + 1 < len(chain) else None
                if r["rewritten_from"] is None:
                    n[text] += 1
                    if not r["defect"]:
                        succ[text] += 1
                    elif nxt is None:
                        fail[text] += 1
                    else:
                        trans[(text, nxt)] += 1
                if r["defect"] and r["rewritten_from"] is None:
                    for j in range(i + 1, len(chain)):
                        if segs[j] != segs[i]:
                            break
                        if chain[j][0] != text:
                            pair_support[(text, chain[j][0])] += 1
                            pair_users[(text, chain[j][0])].add(r["user_id"])
    t_count = time.perf_counter() - t0
    # the chain: per connected component, a dense solve of (I - Q) B = R
    prior_strength, min_support, min_users, min_improvement = 2.0, 3, 2, 0.3
    states = sorted(set(n) | {d for _, d in trans} | {s for s, _ in pair_support} | {d for _, d in pair_support})
    index = {s: i for i, s in enumerate(states)}
    total_s, total_f = sum(succ.values()), sum(fail.values())
    p0 = total_s / (total_s + total_f)
    parent = list(range(len(states)))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    out_edges = defaultdict(list)
    for (s, d), c in trans.items():
        out_edges[index[s]].append((index[d], c))
        parent[find(index[s])] = find(index[d])
    comps = defaultdict(list)
    for i in range(len(states)):
        comps[find(i)].append(i)
    b = np.zeros(len(states))
    direct = np.zeros(len(states))
    for members in comps.values():
        local = {g: k for k, g in enumerate(members)}
        m = len(members)
        a = np.eye(m)
        rhs = np.zeros(m)
        for g in members:
            s = states[g]
            tot = n[s] + prior_strength
            rhs[local[g]] = (succ[s] + prior_strength * p0) / tot
            direct[g] = rhs[local[g]]
            for d, c in out_edges.get(g, ()):
                a[local[g], local[d]] -= c / tot
        b[members] = np.linalg.solve(a, rhs)
    best = {}
    for (s, d), sup in pair_support.items():
        if sup < min_support or len(pair_users[(s, d)]) < min_users or n[s] < min_support:
            continue
        # rank by the absorption probability, judge by the target's own success (the default scorer)
        tp, sp = direct[index[d]], direct[index[s]]
        if tp - sp < min_improvement:
            continue
        key = (round(float(b[index[d]]), 9), sup, d, tp)
        if (
            s not in best
            or (key[0], key[1]) > (best[s][0], best[s][1])
            or ((key[0], key[1]) == (best[s][0], best[s][1]) and d < best[s][2])
        ):
            best[s] = key
    table = RewriteTable(
        Rewrite(s, d, pair_support[(s, d)], float(direct[index[s]]), float(tp)) for s, (_, _, d, tp) in best.items()
    )
    table.to_parquet(Path(out_dir) / "baseline.parquet")
    return {
        "seconds": time.perf_counter() - t0,
        "seconds_count": t_count,
        "rewrites": len(table),
        "figures": {
            "states": len(states),
            "components": len(comps),
            "largest_component": max(map(len, comps.values())),
        },
    }


JOBS = {"project": project_job, "baseline": baseline_job}


def run_child(job: str, lake_root: Path, dataset: str, out_dir: Path) -> dict:
    """Run one job in a fresh interpreter; returns its figures with its own peak RSS."""
    cmd = [sys.executable, __file__, "--child", job, str(lake_root), dataset, str(out_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{job} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def same_tables(out_dir: Path) -> bool:
    from homeloop.selflearn.rewrites import RewriteTable

    a = RewriteTable.read(out_dir / "project.parquet")
    b = RewriteTable.read(out_dir / "baseline.parquet")
    key = lambda t: sorted((r.source, r.target, r.support) for r in t)  # noqa: E731
    return key(a) == key(b)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        job, lake_root, dataset, out_dir = sys.argv[2:6]
        import homeloop.selflearn.rewrites  # noqa: F401  (imports are not the job's memory)

        before = resource.getrusage(resource.RUSAGE_SELF)
        figures = JOBS[job](lake_root, dataset, out_dir)
        after = resource.getrusage(resource.RUSAGE_SELF)
        figures["peak_rss_mb"] = round(after.ru_maxrss / 1024, 1)
        figures["rss_after_imports_mb"] = round(before.ru_maxrss / 1024, 1)
        figures["cpu_seconds"] = round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 2)
        figures["load_average_1min"] = os.getloadavg()[0]
        print(json.dumps(figures, default=str))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--baseline-max", type=int, default=1_000_000, help="run the baseline up to this many sessions")
    ap.add_argument("--homes", type=int, default=40)
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--text-variants", type=int, default=20)
    ap.add_argument("--model", help="a saved NLU model folder (default: train the fast encoder first)")
    ap.add_argument("--workdir", default=None, help="where to put the synthetic lake (default: a temp folder)")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="homeloop-mining-") if args.workdir is None else None
    args.workdir = args.workdir or tmp.name
    work = Path(args.workdir)
    base = base_world(args)
    results = []
    for sessions in args.sessions:
        lake_root = work / "lake"
        dataset = f"synthetic{sessions}"
        if not (lake_root / dataset).exists():
            synth = synthesise(base, lake_root, dataset, sessions, args.text_variants)
        else:
            synth = {"sessions": sessions}
        out_dir = work / f"out{sessions}"
        out_dir.mkdir(exist_ok=True)
        row = {**synth, "project": run_child("project", lake_root, dataset, out_dir)}
        if sessions <= args.baseline_max:
            row["baseline"] = run_child("baseline", lake_root, dataset, out_dir)
            row["speedup"] = round(row["baseline"]["seconds"] / row["project"]["seconds"], 1)
            row["same_rewrites"] = same_tables(out_dir)
        results.append(row)
        print(json.dumps(row, default=str), flush=True)
        import shutil

        shutil.rmtree(lake_root / dataset, ignore_errors=True)
    if len(results) > 1:
        a, b = results[0], results[-1]
        print(
            json.dumps(
                {
                    "scaling_sessions": round(b["sessions"] / a["sessions"], 1),
                    "scaling_project_seconds": round(b["project"]["seconds"] / a["project"]["seconds"], 2),
                    "cpus": os.cpu_count(),
                }
            )
        )


if __name__ == "__main__":
    main()
