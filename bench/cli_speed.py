"""Start-up time of the daeflow CLI, and whether it imports TensorFlow, Keras or MLflow.

Each command runs as a fresh subprocess, once to warm the file cache and then --runs times;
the median wall time is compared with the target. A second subprocess runs the same
command in-process through the Typer app and reports which heavy modules got imported.

    .venv/bin/python bench/cli_speed.py --runs 5 --target 0.5
"""

import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

HEAVY = ("tensorflow", "keras", "mlflow")
COMMANDS = (("--help",), ("archs",))

# Runs the Typer app in-process with the given arguments, then prints one JSON line saying
# which heavy modules are in sys.modules.
CHECK = (
    "import json, sys\n"
    "from daeflow.cli import app\n"
    "try:\n"
    "    app(sys.argv[1:], prog_name='daeflow')\n"
    "except SystemExit:\n"
    "    pass\n"
    f"heavy = {{m: m in sys.modules for m in {HEAVY!r}}}\n"
    "print('HEAVY-MODULES ' + json.dumps(heavy))\n"
)
IMPORT_LINE = re.compile(r"import time:\s+\d+ \|\s+(\d+) \| ( *)(\S+)")
SKIP = ("site", "__editable__", "encodings")


def wall_times(command: list[str], runs: int, env: dict) -> list[float]:
    """Wall seconds of `runs` runs of `command`, after one untimed warm-up run."""
    subprocess.run(command, env=env, capture_output=True, check=True)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, env=env, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return times


def imports_of(args: tuple[str, ...], env: dict, top: int):
    """After `daeflow ARGS` in-process: which heavy modules are loaded, and the slowest imports.

    The slowest imports are (cumulative seconds, name indented by nesting) from
    `python -X importtime`, so nested entries are part of the ones above them.
    """
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", CHECK, *args],
        env=env,
        capture_output=True,
        text=True,
    )
    heavy = None
    for line in done.stdout.splitlines():
        if line.startswith("HEAVY-MODULES "):
            heavy = json.loads(line.removeprefix("HEAVY-MODULES "))
    if heavy is None:
        raise RuntimeError(f"import check of {args} failed:\n{done.stderr[-2000:]}")
    rows = []
    for line in done.stderr.splitlines():
        match = IMPORT_LINE.match(line)
        if match and not match.group(3).startswith(SKIP):
            rows.append((int(match.group(1)) / 1e6, match.group(2) + match.group(3)))
    return heavy, sorted(rows, reverse=True)[:top]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="Timed runs of each command.")
    parser.add_argument("--target", type=float, default=0.5, help="Seconds; median must beat.")
    parser.add_argument("--top", type=int, default=8, help="Slowest imports to list per command.")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1.")

    daeflow = Path(sys.executable).parent / "daeflow"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    floor = statistics.median(wall_times([sys.executable, "-c", "pass"], args.runs, env))

    rows, details, passed = [], [], True
    for command in COMMANDS:
        text = " ".join(command)
        times = wall_times([str(daeflow), *command], args.runs, env)
        median = statistics.median(times)
        heavy, slowest = imports_of(command, env, args.top)
        ok = median <= args.target and not any(heavy.values())
        passed &= ok
        loaded = ", ".join(m for m, present in heavy.items() if present) or "none"
        rows.append(
            f"daeflow {text:<8} median {median:6.3f}s  "
            f"(runs: {' '.join(f'{t:.3f}' for t in times)})  heavy imports: {loaded:<24} "
            f"{'PASS' if ok else 'FAIL'}"
        )
        details.append(f"slowest imports during 'daeflow {text}' (cumulative, nested):")
        details.extend(f"  {seconds:6.3f}s  {name}" for seconds, name in slowest)

    lines = [
        "",
        "=== bench/cli_speed.py: daeflow CLI start-up ===",
        f"command: {shlex.join(sys.orig_argv)}",
        f"executable: {daeflow}; {args.runs} timed runs after 1 warm-up, median; "
        f"target <= {args.target:g}s and none of {', '.join(HEAVY)} imported",
        f"floor: '{Path(sys.executable).name} -c pass' median {floor:.3f}s on this machine",
        *rows,
        *details,
        f"result: {'PASS' if passed else 'FAIL'}",
    ]
    print("\n".join(lines))
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
