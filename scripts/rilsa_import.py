"""Import one of SUMO's RiLSA example junctions and run it in both simulators.

SUMO ships four real-world example junctions from the German signal
guideline RiLSA (eclipse-sumo wheel,
``sumo/tools/sumolib/scenario/scenarios/RealWorld/RiLSA_exampleK``; EPL-2.0 OR
GPL-2.0-or-later), each with a signal program and an hour of demand. For
example ``K`` this script

1. copies the folder to ``WORKDIR/rK`` and runs its ``makeRoutes.py``
   (writes ``flows.rou.xml``, the demand);
2. imports it: ``gpssignal import-sumo rilsaK.net.xml --routes vtypes.add.xml
   flows.rou.xml --additional rilsaK_tls.add.xml --end 3600 --start 07:00
   --origin 52.52,13.40 --out WORKDIR/rilsaK.toml`` (printing what is not
   represented);
3. runs the fixed-timing cross-check on SEEDS (gpssignal and SUMO on the
   re-exported scenario with the same vehicles);
4. runs SUMO on the *original* files (its own network with internal lanes,
   its flows; ``--seed`` each seed) and computes the same KPIs from their
   tripinfo (:func:`gpssignal.interop.compare.sumo_kpis`), all three side by
   side, plus the time loss per approach and movement in the three.

docs/validation.md ("Imported public SUMO networks") quotes its output.
Needs the sumo extra; about 1 min per example and seed on 2 cores.

    .venv/bin/python scripts/rilsa_import.py K [SEEDS] [WORKDIR]
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd

from gpssignal.cli import main as cli_main
from gpssignal.interop.compare import compare_fixed, compare_fixed_movements, sumo_kpis
from gpssignal.interop.sumo import sumo_binary
from gpssignal.model.io import read_scenario

KPIS = ["vehicles", "mean_time_loss_s", "throughput_vph", "co2_g_per_veh_km"]


def examples_dir() -> Path:
    """Return the RealWorld examples folder of the installed sumo package."""
    import sumo

    return Path(sumo.SUMO_HOME) / "tools" / "sumolib" / "scenario" / "scenarios" / "RealWorld"


def prepare(k: int, work: Path) -> Path:
    """Copy RiLSA example ``k`` to ``work/rK`` and write its flows; return the folder."""
    folder = work / f"r{k}"
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(examples_dir() / f"RiLSA_example{k}", folder,
                    ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "makeRoutes.py"], cwd=folder, check=True)
    return folder


def original_runs(folder: Path, k: int, seeds: list[int], scenario_path: Path
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """SUMO on the original files: the compared KPIs and the loss per movement."""
    sc = read_scenario(scenario_path)
    rows, moves = [], []
    for s in seeds:
        out = folder / f"orig{s}"
        out.mkdir(exist_ok=True)
        subprocess.run([str(sumo_binary("sumo")), "-n", f"rilsa{k}.net.xml", "-r",
                        "flows.rou.xml", "-a", f"vtypes.add.xml,rilsa{k}_tls.add.xml",
                        "--seed", str(s), "--no-step-log", "--no-warnings",
                        "--tripinfo-output", str(out / "tripinfo.xml"),
                        "--tripinfo-output.write-unfinished", "true",
                        "--device.emissions.probability", "1"],
                       cwd=folder, check=True, capture_output=True)
        rows.append({"seed": s, **sumo_kpis(out, sc)})
        for t in ET.parse(out / "tripinfo.xml").getroot().iter("tripinfo"):
            src, dst = t.get("id", "").split(".")[0][:-3].split("2")
            moves.append({"seed": s, "approach": src, "to": dst,
                          "loss": float(t.get("timeLoss", "nan"))
                          + float(t.get("departDelay", "0"))})
    return pd.DataFrame(rows), pd.DataFrame(moves)


def main() -> None:
    """Print the tables."""
    k = int(sys.argv[1])
    seeds = [int(x) for x in (sys.argv[2] if len(sys.argv) > 2 else "1,2,3").split(",")]
    work = Path(sys.argv[3] if len(sys.argv) > 3 else f"rilsa{k}-work").resolve()
    work.mkdir(parents=True, exist_ok=True)
    folder = prepare(k, work)
    toml = work / f"rilsa{k}.toml"
    code = cli_main(["import-sumo", str(folder / f"rilsa{k}.net.xml"), "--routes",
                     str(folder / "vtypes.add.xml"), str(folder / "flows.rou.xml"),
                     "--additional", str(folder / f"rilsa{k}_tls.add.xml"), "--end", "3600",
                     "--start", "07:00", "--origin", "52.52,13.40", "--out", str(toml),
                     "--force"])
    if code:
        raise SystemExit(code)
    sc = read_scenario(toml)
    cc = compare_fixed(sc, seeds, work / "cross-check")
    orig, orig_moves = original_runs(folder, k, seeds, toml)
    table = cc.groupby("simulator")[KPIS].mean().T
    table["sumo (original files)"] = orig[KPIS].mean()
    pd.set_option("display.width", 200)
    print(f"RiLSA example {k}, seeds {seeds} (means)")
    print(table.round(1).to_string())
    mv = compare_fixed_movements(sc, seeds, work / "movements")
    per = mv.groupby(["approach", "movement", "simulator"])[
        ["vehicles", "mean_time_loss_s", "throughput_vph"]].mean().unstack("simulator")
    print(per.round(1).to_string())
    print("SUMO, original files: mean time loss per approach and destination [s]")
    print(orig_moves.groupby(["approach", "to"])["loss"].agg(["count", "mean"])
          .assign(count=lambda d: d["count"] / len(seeds)).round(1).to_string())


if __name__ == "__main__":
    main()
