"""Peak resident memory of daeflow refusing inputs built to take memory (issue 25, item 4).

    .venv/bin/python bench/bombs.py --out /tmp/daeflow-bombs

Writes, 16 MiB of zeros at a time (so writing holds none of it in memory):
- bomb.npz: a 2.1 MB .npz whose member 'clean' inflates to 2 GiB (uint8, shape (2**31,)),
  beside a small 'noisy'; run as `daeflow run --data bomb.npz`;
- liar.npz: a member whose header claims 29 GiB and which holds 1 KB;
- config_bomb.keras: a 1.1 MB .keras file (conv_baseline) whose config.json inflates to
  1 GiB of JSON whitespace; run as `daeflow denoise --model config_bomb.keras`;
- evil.keras: the same model with a member '../../evil'.
Each command runs in its own process under `/usr/bin/time -v` (else a getrusage wrapper);
the report gives its exit code, the last line of its stderr and its peak RSS.
"""

import argparse
import io
import os
import re
import shlex
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
GNU_TIME = "/usr/bin/time"
BLOCK = 2**24
RUSAGE_WRAPPER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.call(sys.argv[1:])\n"
    "print('Maximum resident set size (kbytes):', "
    "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def npy_header(shape: tuple, dtype: str = "uint8") -> bytes:
    buffer = io.BytesIO()
    descr = np.lib.format.dtype_to_descr(np.dtype(dtype))
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return buffer.getvalue()


def small_npy(shape=(4, 16, 16, 1)) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.zeros(shape, np.uint8))
    return buffer.getvalue()


def write_zeros(member, size: int, fill: bytes = b"\0") -> None:
    block = fill * BLOCK
    for start in range(0, size, BLOCK):
        member.write(block[: min(BLOCK, size - start)])


def make_npz_bombs(out: Path) -> None:
    with zipfile.ZipFile(out / "bomb.npz", "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("clean.npy", "w", force_zip64=True) as member:
            member.write(npy_header((2**31,)))
            write_zeros(member, 2**31)
        archive.writestr("noisy.npy", small_npy())
    with zipfile.ZipFile(out / "liar.npz", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("clean.npy", npy_header((29 * 2**30,)) + bytes(1000))
        archive.writestr("noisy.npy", small_npy())


def make_keras_bombs(out: Path) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(ROOT))
    from daeflow.plugin.registry import get_architecture

    spec = get_architecture("conv_baseline").spec
    spec.build((None, None, 1), spec.defaults).save(out / "good.keras")
    with zipfile.ZipFile(out / "good.keras") as source:
        members = [(info.filename, source.read(info)) for info in source.infolist()]
    with zipfile.ZipFile(out / "config_bomb.keras", "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            if name != "config.json":
                archive.writestr(name, data)
                continue
            with archive.open(name, "w", force_zip64=True) as member:
                member.write(data)
                write_zeros(member, 2**30, b" ")  # valid JSON: whitespace after the value
    with zipfile.ZipFile(out / "evil.keras", "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members + [("../../evil", b"x")]:
            archive.writestr(name, data)
    np.save(out / "in.npy", np.zeros((1, 32, 32, 1), np.uint8))


def measure(name: str, args: list[str], out: Path) -> dict:
    command = [sys.executable, "-m", "daeflow", *args]
    wrapped = (
        [GNU_TIME, "-v", *command]
        if Path(GNU_TIME).exists()
        else [sys.executable, "-c", RUSAGE_WRAPPER, *command]
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    start = time.perf_counter()
    done = subprocess.run(wrapped, cwd=out, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    peak = re.search(r"Maximum resident set size \(kbytes\):\s*(\d+)", done.stderr)
    lines = [
        line
        for line in done.stderr.splitlines()
        if line.strip() and not line.startswith(("\t", "Command"))
    ]
    return {
        "name": name,
        "exit": done.returncode,
        "peak_mb": int(peak.group(1)) * 1024 / 1e6 if peak else None,
        "seconds": seconds,
        "stderr": lines[-1] if lines else "",
        "command": shlex.join(["daeflow", *args]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/daeflow-bombs"))
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    make_npz_bombs(out)
    make_keras_bombs(out)
    sizes = {p.name: p.stat().st_size for p in sorted(out.glob("*.*")) if p.suffix != ".npy"}
    print(f"Wrote {sizes} in {time.perf_counter() - start:.1f}s to {out}.")
    store = ["--tracking-uri", f"sqlite:///{out}/mlflow.db"]
    denoise = ["denoise", "in.npy", "-o", "out.npy", "--model"]
    cases = [
        ("npz 2 GiB bomb", ["run", "--arch", "conv_baseline", "--data", "bomb.npz", *store]),
        ("npz 29 GiB header", ["run", "--arch", "conv_baseline", "--data", "liar.npz", *store]),
        ("keras 1 GiB config.json", [*denoise, "config_bomb.keras"]),
        ("keras ../../evil member", [*denoise, "evil.keras"]),
        ("keras good (reference)", [*denoise, "good.keras"]),
    ]
    for name, command in cases:
        result = measure(name, command, out)
        print(
            f"{result['name']}: exit {result['exit']}, peak RSS {result['peak_mb']:.0f} MB, "
            f"{result['seconds']:.1f}s\n  $ {result['command']}\n  {result['stderr']}"
        )
    print(f"command: {shlex.join(sys.orig_argv)}")


if __name__ == "__main__":
    main()
