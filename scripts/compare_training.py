r"""Compare the training methods on the same held-out days (issue 16, item 4).

Simulates a probe history (seeds 1..N, the existing plan), trains one model
per method on it (``same-seed``: the upper bound; ``reconstruct``;
``data-driven``), and evaluates each on the same held-out days (seeds from
1001) with ``evaluate``'s machinery, beside the existing plan, every program
fixed (the best chosen on the history days) and the hindsight bound. It also
measures the day reconstruction against the history's true day factors
(read from the history's manifest here, after training, never by training).

Usage (1 worker; the figures in docs/controller.md came from this command)::

    .venv/bin/python scripts/compare_training.py --history-days 10 --candidates 16 \\
        --held-out 16 --grid 6x5 --out results/training-comparison-16

Writes ``OUT/comparison.md`` (the tables), ``OUT/comparison.json``,
``OUT/fit.csv`` (per day: true and fitted level and shift), the three models
and the history. Re-running with the same options reuses the history and the
models already in OUT.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from gpssignal.control.io import read_model, write_model
from gpssignal.evaluate.statistics import capture_ratio, mean_ci, paired_difference, verdict
from gpssignal.experiment.evaluation import evaluate_controllers
from gpssignal.experiment.history import simulate_history
from gpssignal.experiment.training import train
from gpssignal.model.io import read_scenario

METHODS = ("same-seed", "reconstruct", "data-driven")
LABELS = {"same-seed": "GPS, same-seed search (UPPER BOUND)",
          "reconstruct": "GPS, reconstructed-day search",
          "data-driven": "GPS, data-driven rule"}
KPI = "mean_time_loss_s"


def _fmt(iv) -> str:  # type: ignore[no-untyped-def]
    return f"{iv.mean:.1f} [{iv.low:.1f}, {iv.high:.1f}]"


def _markdown(df: pd.DataFrame) -> str:
    """Return a DataFrame as a Markdown table (no extra dependency)."""
    rows = [list(map(str, df.columns)), ["---"] * len(df.columns)]
    rows += [[f"{x:.3f}" if isinstance(x, float) else str(x) for x in r]
             for r in df.itertuples(index=False)]
    return "\n".join("| " + " | ".join(r) + " |" for r in rows)


def main() -> None:
    """Run the comparison (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenario", default="scenarios/vallensbaek.toml")
    ap.add_argument("--history-days", type=int, default=8)
    ap.add_argument("--candidates", type=int, default=8)
    ap.add_argument("--held-out", type=int, default=8)
    ap.add_argument("--grid", default="6x5", help="reconstruction library: LEVELSxSHIFTS")
    ap.add_argument("--out", default="results/training-comparison")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    sc = read_scenario(a.scenario)
    grid = tuple(int(x) for x in a.grid.split("x"))
    timings: dict[str, float] = {}
    t = time.perf_counter()
    hist = out / "history"
    if not (hist / "manifest.json").exists():
        simulate_history(sc, a.history_days, hist)
    timings["history_s"] = time.perf_counter() - t
    manifest = json.loads((hist / "manifest.json").read_text(encoding="utf-8"))
    history_seeds = [d["seed"] for d in manifest["days"]]
    models = {}
    for m in METHODS:
        path = out / f"model-{m}.json"
        t = time.perf_counter()
        if path.exists():
            models[m] = read_model(path)
        else:
            models[m] = train(sc, hist, method=m, candidates=a.candidates, grid=grid)  # type: ignore[arg-type]
            models[m].provenance.pop("train_wall_s", None)
            write_model(models[m], path)
        timings[f"train_{m}_s"] = time.perf_counter() - t
        print(m, f"{timings[f'train_{m}_s']:.0f} s", flush=True)

    # The reconstruction against the truth (known only because the history is simulated).
    fits = pd.DataFrame(models["reconstruct"].provenance["reconstruction"]["fits"])
    truth = pd.DataFrame(manifest["days"])[["date", "seed", "day_type", "demand_level",
                                            "peak_shift_s"]]
    fit = truth.merge(fits, on="date", suffixes=("_true", "_fit"))
    fit.to_csv(out / "fit.csv", index=False)
    fit_summary = {"days": len(fit)}
    for name, lv, sh in (("posterior", "demand_level_fit", "peak_shift_s_fit"),
                         ("least_squares", "ls_level", "ls_shift_s"),
                         ("mean_day", None, None)):
        est_lv = fit[lv] if lv else pd.Series(1.0, index=fit.index)
        est_sh = fit[sh] if sh else pd.Series(0.0, index=fit.index)
        e_lv = est_lv - fit["demand_level_true"]
        e_sh = est_sh - fit["peak_shift_s_true"]
        fit_summary[name] = {
            "level_mean_abs_error": float(e_lv.abs().mean()), "level_bias": float(e_lv.mean()),
            "level_rmse": float(np.sqrt((e_lv ** 2).mean())),
            "level_corr": float(np.corrcoef(est_lv, fit["demand_level_true"])[0, 1])
            if lv else float("nan"),
            "shift_mean_abs_error_s": float(e_sh.abs().mean()),
            "shift_bias_s": float(e_sh.mean()), "shift_rmse_s": float(np.sqrt((e_sh ** 2).mean())),
            "shift_corr": float(np.corrcoef(est_sh, fit["peak_shift_s_true"])[0, 1])
            if sh else float("nan")}
    fit_summary |= {"level_sd_true": float(fit["demand_level_true"].std()),
                    "shift_sd_true_s": float(fit["peak_shift_s_true"].std()),
                    "rmse_fit_kmh_mean": float(fit["rmse_kmh"].mean()),
                    "rmse_mean_day_kmh_mean": float(fit["rmse_mean_day_kmh"].mean())}

    # Held-out evaluation, every arm on the same days.
    seeds = list(range(1001, 1001 + a.held_out))
    t = time.perf_counter()
    base = evaluate_controllers(sc, [f"fixed:{p}" for p in sc.program_names] + ["tod", "oracle"],
                                seeds, selection_seeds=history_seeds)
    timings["evaluate_baselines_s"] = time.perf_counter() - t
    existing = sc.baseline_plan
    arms = {f"{p} fixed": base.values(f"fixed:{p}", KPI) for p in sc.program_names}
    arms[f"existing plan ({existing})"] = ex = base.values(existing, KPI)
    arms[f"best fixed ({base.best_fixed}, chosen on the history days)"] = \
        best_fixed = base.values(base.best_fixed, KPI)
    oracle = base.values("oracle", KPI)
    for m in METHODS:
        t = time.perf_counter()
        ev = evaluate_controllers(sc, ["gps"], seeds, model=models[m],
                                  selection_seeds=history_seeds)
        timings[f"evaluate_{m}_s"] = time.perf_counter() - t
        arms[LABELS[m]] = ev.values("gps", KPI)
        assert np.allclose(ev.values(existing, KPI), ex)  # same days, same vehicles
    arms["hindsight bound (oracle)"] = oracle

    rows = []
    for name, v in arms.items():
        d_ex, rel = paired_difference(v, ex)
        d_bf, _ = paired_difference(v, best_fixed)
        cap = capture_ratio(ex, v, oracle)
        rows.append({"arm": name, "time_loss_s_per_veh": _fmt(mean_ci(v)),
                     "vs_existing_s": _fmt(d_ex), "vs_existing_rel": f"{100 * rel:+.1f} %",
                     "verdict_vs_existing": verdict(d_ex),
                     "vs_best_fixed_s": _fmt(d_bf), "verdict_vs_best_fixed": verdict(d_bf),
                     "capture_ratio": f"{cap.mean:.2f}" if np.isfinite(cap.mean) else "n/a"})
    table = pd.DataFrame(rows)
    thresholds = {m: {"stretches": [{"stretch": s.id, "low_kmh": round(s.threshold_low_kmh, 1),
                                     "high_kmh": round(s.threshold_high_kmh, 1),
                                     "free_flow_kmh": round(s.free_flow_kmh, 1)}
                                    for s in models[m].stretches],
                      "window_s": models[m].window_s, "min_dwell_s": models[m].min_dwell_s}
                  for m in METHODS}
    result = {"options": vars(a), "history_seeds": history_seeds, "held_out_seeds": seeds,
              "day_types_held_out": {str(k): v for k, v in base.day_types().items()},
              "best_fixed": base.best_fixed, "table": rows, "fit": fit_summary,
              "thresholds": thresholds, "timings_s": {k: round(v, 1) for k, v in timings.items()}}
    (out / "comparison.json").write_text(json.dumps(result, indent=2, default=str) + "\n",
                                         encoding="utf-8")
    md = ["# Training methods on the same held-out days", "",
          f"Held-out seeds {seeds[0]}..{seeds[-1]}; history seeds {history_seeds[0]}.."
          f"{history_seeds[-1]}; mean time loss per vehicle, s, mean [95 % CI].", "",
          _markdown(table), "", "## Day reconstruction against the truth", "",
          _markdown(fit), "", json.dumps(fit_summary, indent=2), "",
          "## Thresholds", "", json.dumps(thresholds, indent=2), "",
          json.dumps(result["timings_s"], indent=2)]
    (out / "comparison.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    print("\n".join(md))


if __name__ == "__main__":
    main()
