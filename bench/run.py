"""``make bench``: runs every benchmark in its own process and prints one table.

    python bench/run.py [--quick] [--out runs/bench.json]

Each script prints its figures as a JSON line (``--json``); this runner adds the peak
resident memory of each process and writes everything to ``--out``. The SMASH step and
scoring run in fp32 and, where ``--precision auto`` picks it, in bf16; the reference's
work also runs as ``bench/reference.py`` re-enacts the reference (the bar the targets
halve), and ``bench/compile_floor.py`` gives the floor under compiling, and ``bench/ranking.py`` the
ranking quality on the committed ground truth. ``--quick`` runs
fewer steps and images (minutes instead of about 10; for trying it out).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from smashc.runtime import precision

HERE = Path(__file__).resolve().parent


def run(script: str, args: list[str]) -> tuple[dict, float]:
    """The script's JSON figures and its peak resident memory in MiB."""
    proc = subprocess.Popen(
        [sys.executable, str(HERE / script), *args, "--json"], stdout=subprocess.PIPE, text=True
    )
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)  # reaped here, so the rusage is this child's
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    if code:
        raise SystemExit(f"{script} failed (exit {code})")
    lines = out.splitlines()
    sys.stdout.write("".join(line + "\n" for line in lines[:-1]))
    return json.loads(lines[-1]), usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="runs/bench.json")
    args = ap.parse_args()
    quick = args.quick
    # fp32 always; also smashc's default precision where it differs (bf16 on CPUs that
    # compute it natively), without the compile-cost blocks the fp32 run already timed
    auto = precision.resolve("auto", torch.device("cpu"))
    precisions = ["fp32"] + ([auto] if auto != "fp32" else [])
    step = ["--steps", "3", "--blocks", "1"] if quick else []
    score = ["--images", "1000" if quick else "5000", "--archs", "2"]
    jobs = [
        ("compile", "compile.py", ["--archs", "10" if quick else "50"]),
        ("floor", "compile_floor.py", ["--archs", "20" if quick else "60"]),
    ]
    for p in precisions:
        again = ["--blocks", "0"] if p != "fp32" else []
        jobs.append((f"step_{p}", "train_step.py", [*step, *again, "--precision", p]))
        jobs.append((f"score_{p}", "score.py", [*score, "--precision", p]))
    ref = ["--steps", "3", "--images", "1000"] if quick else []
    jobs.append(("reference", "reference.py", ref))
    jobs.append(("resnet20", "resnet20.py", ["--steps", "5" if quick else "20"]))
    # ranking quality: the demo's SMASH training (--quick: 1 epoch) on the ground truth
    jobs.append(("ranking", "ranking.py", ["--epochs", "1"] if quick else []))
    results = {}
    for name, script, extra in jobs:
        print(f"--- {script} {' '.join(extra)}", flush=True)
        figures, mib = run(script, extra)
        results[name] = {"figures": figures, "peak_mib": mib}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print()
    print(table(results, precisions, quick))
    print(f"\nfigures written to {args.out}")


def table(r: dict, precisions: list[str], quick: bool) -> str:
    c, ref, rn = (r[k]["figures"] for k in ("compile", "reference", "resnet20"))
    mem = {k: f"{v['peak_mib']:.0f} MiB" for k, v in r.items()}
    images = 1000 if quick else 5000
    rows = [
        ("compile, from text (archs/s)", f"{c['text']['archs_per_s']:.1f}", mem["compile"]),
        ("compile, training path (archs/s)", f"{c['training']['archs_per_s']:.1f}", ""),
    ]
    for when, f in r["floor"]["figures"].items():
        rows.append(
            (
                f"compile floor {when}: building its two graphs (ms)",
                f"{f['floor_ms']:.2f}",
                f"networkx {f['networkx_ms']:.2f} + fx {f['fx_ms']:.2f}; whole compile"
                f" {f['compile_ms']:.2f} (<=64)",
            )
        )
    for when in ("early", "late"):
        m = ref[when]
        rows.append(
            (
                f"reference stand-in, SMASH step {when}, first run (s)",
                f"{m['fresh']:.3f}",
                f"faster of two {m['step']:.3f}; target: half",
            )
        )
    rows.append(
        (
            f"reference stand-in, score 1 arch on {images} images (s)",
            f"{ref['score']['seconds']:.1f}",
            mem["reference"],
        )
    )
    for p in precisions:
        rows += precision_rows(p, r[f"step_{p}"]["figures"], r[f"score_{p}"]["figures"], images)
        peaks = f"{mem['step_' + p]} / {mem['score_' + p]}"
        rows.append((f"  peak memory, {p}: steps / scoring", "", peaks))
    rows.append(
        (
            "ResNet-20 training, compiled / hand-written (images/s)",
            f"{rn['compiled']:.0f} / {rn['hand']:.0f}",
            f"ratio {rn['ratio']:.3f}; {mem['resnet20']}",
        )
    )
    rk = r["ranking"]["figures"]
    for name, p in rk["predictors"].items():
        rho = p["rho"]
        rows.append(
            (
                f"ranking {rk['archs']} archs: {name} Spearman rho",
                f"{rho['value']:+.3f}",
                f"[{rho['low']:+.3f}, {rho['high']:+.3f}], top-10% {p['top_recall']:.2f}",
            )
        )
    w = max(len(a) for a, _, _ in rows)
    lines = [f"{'benchmark':<{w}}  {'figure':>12}  notes (step: sample/compile/hypernet/fwd/bwd)"]
    lines += [f"{a:<{w}}  {b:>12}  {n}" for a, b, n in rows]
    return "\n".join(lines)


def precision_rows(p: str, s: dict, sc: dict, images: int) -> list[tuple[str, str, str]]:
    """The table's rows for the SMASH step ``s`` and scoring ``sc`` in precision ``p``."""
    rows = []
    for key, label in (("bottleneck64", "<=64, reference work"), ("bottleneck128", "<=128")):
        for when in ("early", "late"):
            m = s[key][when]
            split = "/".join(
                f"{m[k]:.3f}" for k in ("sample", "compile", "hypernet", "forward", "backward")
            )
            rows.append(
                (f"{p} SMASH step {when}, bottleneck {label} (s)", f"{m['step']:.3f}", split)
            )
            rows.append((f"  first run on the architecture {when} (s)", f"{m['fresh']:.3f}", ""))
        for when, cost in s[key]["compile_cost"].items():
            pre, inl = 100 * cost["prefetched_cost"], 100 * cost["inline_cost"]
            rows.append(
                (
                    f"  compile cost {when}, prefetched / inline, {label}",
                    f"{pre:+.1f}% / {inl:+.1f}%",
                    f"of a precompiled step ({cost['precompiled']:.3f} s); prefetched waits "
                    f"{1000 * cost['wait']:.1f} ms",
                )
            )
        secs = f"{sc[key]['seconds']:.1f}"
        rows.append((f"{p} score 1 arch on {images} images, bottleneck {label} (s)", secs, ""))
    return rows


if __name__ == "__main__":
    main()
