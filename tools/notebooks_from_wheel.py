#!/usr/bin/env python
"""Every lesson notebook, copied alone into an empty folder, runs its default cells with only the wheel installed.

    python tools/notebooks_from_wheel.py                       # all notebooks (~5 minutes on 2 cores)
    python tools/notebooks_from_wheel.py 06_analysis 12_gdd    # some of them

What Colab or a bare Jupyter has: no checkout, no `data/`, no `nbs/results/`; the course assets come from the package
(`data.data_dir`, `data.course_dir`). `make test` runs two notebooks this way (tests/test_packaging.py); this script runs
the rest when a change could make a notebook assume a checkout. It builds the wheel and a venv as that test does
(offline; the dependencies come from this interpreter), prints one line per notebook and exits non-zero on a failure.
"""
import shutil, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'tests'))
from test_packaging import RUN_NOTEBOOKS, _clean_env, build_dists, make_venv, nothing_written_inside   # noqa: E402  (the test's own helpers)


def main(names) -> int:
    nbs = sorted(p for p in (ROOT / 'nbs').glob('[0-9]*.ipynb') if not names or any(p.stem.startswith(n) for n in names))
    if not nbs: print(f"no notebook in nbs/ starts with {', '.join(names)}", file=sys.stderr); return 2
    work = Path(tempfile.mkdtemp(prefix='sferd_nb_wheel_'))
    try:
        _, wheel = build_dists(work / 'dist')
        bin_dir = make_venv(work / 'venv', wheel)
        failed = []
        for nb in nbs:
            folder = work / 'run' / nb.stem; folder.mkdir(parents=True)
            shutil.copy(nb, folder / nb.name)
            t0 = time.time()
            try: r = subprocess.run([str(bin_dir / 'python'), '-c', RUN_NOTEBOOKS, nb.name], cwd=folder, env=_clean_env(),
                                    capture_output=True, text=True, timeout=1800)
            except subprocess.TimeoutExpired as e:
                r = subprocess.CompletedProcess(e.cmd, 1, str(e.stdout or ''), f'timed out after {e.timeout} s')
            print(f"{nb.name:24s} {'ok' if r.returncode == 0 else 'FAILED'}  ({time.time() - t0:.0f} s)", flush=True)
            if r.returncode: failed.append(nb.name); print((r.stdout + r.stderr)[-3000:], flush=True)
            nothing_written_inside(bin_dir)                                # the package is never written to
        print(f"{len(nbs) - len(failed)} of {len(nbs)} notebooks ran from the wheel" + (f"; failed: {', '.join(failed)}" if failed else ''))
        return 1 if failed else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
