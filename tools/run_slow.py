#!/usr/bin/env python
"""Run a course notebook's *course run*: every code cell in order, `#| slow` cells included (`#| eval: false` skipped).

    python tools/run_slow.py nbs/05_distill.ipynb --figs runs/slow/05      # print results, save every figure as PNG
    python tools/run_slow.py nbs/06_analysis.ipynb --only attn32           # ... and of the slow cells, only those containing 'attn32'

`nbdev_test --flags slow` runs the same cells but shows nothing; this runner prints each cell's timing and the value
of a cell's last expression (as a notebook would display it) and saves each matplotlib figure, so the numbers and
figures quoted in the notebooks' "What we find" sections can be regenerated. Threads: `OMP_NUM_THREADS` (default 2).
"""
import argparse, ast, os, sys, time
from pathlib import Path

from make_docs import read_cells, skipped          # tools/: nbdev's directive parse and nbdev_test's skip rule

def cells(nb_path: Path, only=None):
    "(index, source) of every code cell that runs in the course run: all but `#| eval: false` (slow and gpu included); with `only`, the `slow` cells whose source does not contain it are left out."
    for i, c in enumerate(read_cells(nb_path).cells):
        if skipped(c): continue
        if only is not None and skipped(c, ('slow',)) and only not in c.source: continue
        yield i, c.source

def run(nb_path: Path, figs: Path, only=None) -> dict:
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import torch
    torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', 2)))
    figs.mkdir(parents=True, exist_ok=True)
    import types
    mod = sys.modules['__course_run__'] = types.ModuleType('__course_run__')   # classes defined in cells pickle (torch.save)
    g = mod.__dict__
    for i, src in cells(nb_path, only):
        src = '\n'.join(l for l in src.splitlines() if not l.lstrip().startswith(('%', '!')))   # IPython magics
        tree = ast.parse(src)
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        t0 = time.time()
        exec(compile(tree, f'{nb_path.stem}:cell{i}', 'exec'), g)
        val = eval(compile(ast.Expression(last.value), f'{nb_path.stem}:cell{i}', 'eval'), g) if last else None
        head = next((l for l in src.splitlines() if not l.startswith('#|')), '')[:70]
        print(f'--- cell {i:3d} {time.time() - t0:8.1f}s  {head}', flush=True)
        if val is not None and not isinstance(val, (plt.Axes, plt.Figure)):
            print(val.to_string() if hasattr(val, 'to_string') else repr(val), flush=True)
        for num in plt.get_fignums():
            p = figs / f'cell{i:03d}_{num}.png'
            plt.figure(num).savefig(p, dpi=110, bbox_inches='tight'); print(f'    figure -> {p}', flush=True)
        plt.close('all')
    return g

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('notebook', type=Path)
    ap.add_argument('--figs', type=Path, default=None, help='where to save figures (default runs/slow/<notebook stem>)')
    ap.add_argument('--only', help="run only the slow cells whose source contains this text (the default cells always run)")
    a = ap.parse_args()
    if not a.notebook.exists(): sys.exit(f'run_slow: no notebook {a.notebook}; pass a path like nbs/05_distill.ipynb')
    run(a.notebook, a.figs or Path('runs/slow') / a.notebook.stem, a.only)
