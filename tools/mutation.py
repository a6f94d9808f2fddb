"""Mutation score of the core modules (issue #21): one command, too slow for every CI run.

    python tools/mutation.py                 # the core groups (all but files), in order
    python tools/mutation.py loudness limiter

Each group mutates a few modules with mutmut 3 and runs only the test files that cover them,
in a scratch copy of the tree (nothing in the checkout is touched). It prints, per group, the
mutants, killed, survivors listed as equivalent in tests/mutation_equivalent.txt (with their
reason), and the score over the non-equivalent mutants, then every other survivor.
Install with `pip install -e .[mutation]`; run it niced on a shared machine.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EQUIVALENT_FILE = ROOT / "tests" / "mutation_equivalent.txt"

# group -> (modules mutated, test files run against them); smallest first.
GROUPS: dict[str, tuple[list[str], list[str]]] = {
    "loudness": (["automix/loudness.py"], ["tests/test_loudness.py"]),
    "limiter": (["automix/effects/limiter.py"], ["tests/test_limiter.py"]),
    "audio": (["automix/audio.py"], ["tests/test_audio.py"]),
    "files": (["automix/files.py"], ["tests/test_nothing_lost.py"]),
    "settings": (["automix/settings.py", "automix/params.py"],
                 ["tests/test_settings.py", "tests/test_presets.py"]),
    "analysis": (["automix/analysis.py"], ["tests/test_analysis.py"]),
    "mastering": (["automix/mastering/pipeline.py", "automix/mastering/finalise.py"],
                  ["tests/test_mastering.py", "tests/test_mastering_pipeline.py"]),
}
# Run when no group is named: the core modules of issue #21. "files" (the CLI's file handling,
# 1067 mutants against tests that run whole masters) takes hours here: name it to run it.
CORE = [name for name in GROUPS if name != "files"]
COPIED = ["automix", "tests", "presets", "reference_tracks", "pyproject.toml"]
RESULT = re.compile(r"^\s*(\S+): (\w[\w ]*)$")


def equivalents() -> dict[str, str]:
    """Mutant name -> why it cannot change behaviour (one `name  reason` a line)."""
    out: dict[str, str] = {}
    if EQUIVALENT_FILE.exists():
        for line in EQUIVALENT_FILE.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                name, _, reason = line.partition(" ")
                out[name] = reason.strip()
    return out


def config(modules: list[str], tests: list[str]) -> str:
    quoted = lambda xs: "[" + ", ".join(f'"{x}"' for x in xs) + "]"  # noqa: E731
    return (
        "\n[tool.mutmut]\n"
        'source_paths = ["automix/"]\n'
        'also_copy = ["presets/", "reference_tracks/"]\n'  # the CLI's tests need the presets
        f"only_mutate = {quoted(modules)}\n"
        f"pytest_add_cli_args_test_selection = {quoted(tests)}\n"
        'pytest_add_cli_args = ["-q", "-p", "no:cacheprovider", "-m", "not data"]\n'
        'process_isolation = "forkserver"\n'
    )


def run_group(name: str, work: Path) -> tuple[int, int, list[str]]:
    modules, tests = GROUPS[name]
    tree = work / name
    for item in COPIED:
        src = ROOT / item
        if src.is_dir():
            shutil.copytree(src, tree / item, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, tree / item)
    pyproject = tree / "pyproject.toml"
    text = re.sub(r"\n\[tool\.mutmut\][^\[]*", "\n", pyproject.read_text())
    pyproject.write_text(text + config(modules, tests))
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.pop("AUTOMIX_DATA", None)
    subprocess.run(["mutmut", "run", "--max-children", "1"], cwd=tree, env=env, check=False)
    shown = subprocess.run(["mutmut", "results", "--all", "true"], cwd=tree, env=env,
                           capture_output=True, text=True, check=False).stdout
    status = {m.group(1): m.group(2) for m in map(RESULT.match, shown.splitlines()) if m}
    wanted = tuple(m.removesuffix(".py").replace("/", ".") + ".x" for m in modules)
    status = {k: v for k, v in status.items() if k.startswith(wanted) or
              any(k.startswith(m.removesuffix(".py").replace("/", ".")) for m in modules)}
    killed = sum(v in ("killed", "timeout") for v in status.values())  # timeout: caught
    survivors = sorted(k for k, v in status.items() if v not in ("killed", "timeout"))
    return len(status), killed, survivors


def main(argv: list[str]) -> int:
    names = argv or CORE
    unknown = [n for n in names if n not in GROUPS]
    if unknown:
        print(f"unknown group(s) {unknown}; choose from {list(GROUPS)}", file=sys.stderr)
        return 1
    equivalent = equivalents()
    rows, lost = [], []
    work = Path(tempfile.gettempdir()) / "automix-mutation"
    for name in names:
        shutil.rmtree(work / name, ignore_errors=True)
        if True:
            total, killed, survivors = run_group(name, work)
            eq = [s for s in survivors if s in equivalent]
            real = [s for s in survivors if s not in equivalent]
            score = killed / max(total - len(eq), 1)
            rows.append((name, total, killed, len(eq), score))
            lost += [(name, s) for s in real]
            print(f"[{name}] {total} mutants, {killed} killed, {len(eq)} equivalent, "
                  f"score {score:.1%}", flush=True)
    print(f"\n{'group':<10} {'mutants':>8} {'killed':>7} {'equiv':>6} {'score':>7}")
    for name, total, killed, eq, score in rows:
        print(f"{name:<10} {total:>8} {killed:>7} {eq:>6} {score:>7.1%}")
    print(f"\nsurviving non-equivalent mutants (copies kept in {work}/GROUP):")
    for name, s in lost:
        diff = subprocess.run(["mutmut", "show", s], cwd=work / name, capture_output=True,
                              text=True, check=False).stdout
        changed = [ln for ln in diff.splitlines()
                   if ln[:1] in "+-" and ln[:3] not in ("+++", "---")]
        print(f"  {name}: {s}\n" + "".join(f"      {ln}\n" for ln in changed), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
