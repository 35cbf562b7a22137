"""``make bench``: runs every benchmark in its own process and prints one table.

    python bench/run.py [--quick] [--out runs/bench.json]

Each script prints its figures as a JSON line (``--json``); this runner adds the peak
resident memory of each process and writes everything to ``--out``. ``--quick`` runs
fewer steps and images (minutes instead of about half an hour; for trying it out).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

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
    results = {}
    for name, script, extra in (
        ("compile", "compile.py", ["--archs", "10" if quick else "50"]),
        ("step", "train_step.py", ["--steps", "3", "--blocks", "1"] if quick else []),
        ("score", "score.py", ["--images", "1000" if quick else "5000", "--archs", "2"]),
        ("resnet20", "resnet20.py", ["--steps", "5" if quick else "20"]),
    ):
        print(f"--- {script} {' '.join(extra)}", flush=True)
        figures, mib = run(script, extra)
        results[name] = {"figures": figures, "peak_mib": mib}
    print()
    print(table(results, quick))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"\nfigures written to {args.out}")


def table(r: dict, quick: bool) -> str:
    c, s, sc, rn = (r[k]["figures"] for k in ("compile", "step", "score", "resnet20"))
    mem = {k: f"{v['peak_mib']:.0f} MiB" for k, v in r.items()}
    images = 1000 if quick else 5000
    rows = [
        ("compile, from text (archs/s)", f"{c['text']['archs_per_s']:.1f}", mem["compile"]),
        ("compile, training path (archs/s)", f"{c['training']['archs_per_s']:.1f}", ""),
    ]
    for key, label in (("bottleneck128", "<=128"), ("bottleneck64", "<=64, reference work")):
        for when in ("early", "late"):
            m = s[key][when]
            split = "/".join(
                f"{m[p]:.3f}" for p in ("sample", "compile", "hypernet", "forward", "backward")
            )
            rows.append((f"SMASH step {when}, bottleneck {label} (s)", f"{m['step']:.3f}", split))
            rows.append(
                (f"  first run on the architecture {when} (s)", f"{m['fresh']:.3f}", "as trained")
            )
        for when, cost in s[key]["compile_cost"].items():
            rows.append(
                (
                    f"  compile cost {when}, prefetched / inline, {label}",
                    f"{100 * cost['prefetched_cost']:+.1f}% / {100 * cost['inline_cost']:+.1f}%",
                    f"of a precompiled step ({cost['precompiled']:.3f} s); prefetched waits "
                    f"{1000 * cost['wait']:.1f} ms"
                    + (f"; {mem['step']}" if key == "bottleneck128" and when == "late" else ""),
                )
            )
    for key, label in (("bottleneck128", "<=128"), ("bottleneck64", "<=64, reference work")):
        rows.append(
            (
                f"score 1 arch on {images} images, bottleneck {label} (s)",
                f"{sc[key]['seconds']:.1f}",
                mem["score"] if key == "bottleneck128" else "",
            )
        )
    rows.append(
        (
            "ResNet-20 training, compiled / hand-written (images/s)",
            f"{rn['compiled']:.0f} / {rn['hand']:.0f}",
            f"ratio {rn['ratio']:.3f}; {mem['resnet20']}",
        )
    )
    w = max(len(a) for a, _, _ in rows)
    lines = [f"{'benchmark':<{w}}  {'figure':>12}  notes (step: sample/compile/hypernet/fwd/bwd)"]
    lines += [f"{a:<{w}}  {b:>12}  {n}" for a, b, n in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
