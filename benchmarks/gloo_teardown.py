#!/usr/bin/env python
"""How often a 2-rank gloo job hangs (or crashes) at its very end, by the way it leaves the process group.

torch 2.3's `destroy_process_group` runs `~ProcessGroupGloo`, which joins gloo's worker threads while holding the GIL; a
worker thread that still has to free the Python object of a tensor of the last collective waits for that GIL: a deadlock
(seen with gdb on a hung rank). `sferd_nb.train.cleanup_distributed` meets at a barrier and pauses 0.1 s (the GIL free)
before it destroys the group. Each run starts two ranks of one small job (GlobalBatchNorm2d forward and R1's double
backward in float64, like `tests/test_gdd_cli.py::_BN_WORKER`), ended by each variant; a run where a rank exits non-zero
counts as crashed (the first one's error is printed), else one where a rank is still alive after `--timeout` seconds
(start-up included: run it on a quiet machine) as hung. Its ports (24000-31999) overlap the test suite's: not beside pytest.

    python benchmarks/gloo_teardown.py --runs 20                      # with this interpreter's torch
    python benchmarks/gloo_teardown.py --python .venv-oldest/bin/python   # with make test-oldest's torch 2.3
"""
import argparse, os, random, socket, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

JOB = r'''
import sys, time, torch, torch.distributed as dist
from sferd_nb.gdd import GlobalBatchNorm2d
from sferd_nb.train import cleanup_distributed
dist.init_process_group('gloo')
rank, world = dist.get_rank(), dist.get_world_size()
g = torch.Generator().manual_seed(0)
x_all, w_all = torch.randn(8, 4, 5, 5, generator=g, dtype=torch.float64), torch.randn(8, 4, 5, 5, generator=g, dtype=torch.float64)
share = slice(rank * 8 // world, (rank + 1) * 8 // world)
bn = GlobalBatchNorm2d(4).double()
x = x_all[share].clone().requires_grad_(True)
gx, = torch.autograd.grad((bn(x) * w_all[share]).sum(), x, create_graph=True)
gx.square().sum().backward()
END
'''

VARIANTS = {
    'destroy_process_group()': 'dist.destroy_process_group()',
    'no destroy': 'pass',
    'barrier(), destroy': 'dist.barrier(); dist.destroy_process_group()',
    'cleanup_distributed() (barrier, 0.1 s pause, destroy)': 'cleanup_distributed()',
}


def port() -> int:
    "A free port below the kernel's ephemeral range (which gloo's own sockets use)."
    for p in random.sample(range(24000, 32000), 8000):
        with socket.socket() as s:
            try: s.bind(('127.0.0.1', p)); return p
            except OSError: continue
    raise RuntimeError('no free port')


def one_run(python: str, script: Path, timeout: float) -> str:
    env = dict(os.environ, MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port()), WORLD_SIZE='2', OMP_NUM_THREADS='1',
               PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]))
    ps = [subprocess.Popen([python, str(script)], env=dict(env, RANK=str(r), LOCAL_RANK=str(r)),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for r in range(2)]
    t0, alive = time.time(), False
    for p in ps:
        try: p.wait(timeout=max(0.1, timeout - (time.time() - t0)))
        except subprocess.TimeoutExpired: alive = True
    bad = [p for p in ps if p.poll() is not None and p.returncode != 0]
    for p in ps:
        if p.poll() is None: p.kill(); p.wait()
    if bad: return 'crashed: ' + (bad[0].stderr.read().decode(errors='replace').strip().splitlines() or ['?'])[-1]
    return 'hung' if alive else 'ok'


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--python', default=sys.executable, help='the interpreter (and so the torch) to test')
    ap.add_argument('--runs', type=int, default=20, help='runs per variant')
    ap.add_argument('--timeout', type=float, default=25., help='seconds after which a live rank counts as hung')
    ap.add_argument('--variants', nargs='*', default=list(VARIANTS), choices=list(VARIANTS))
    a = ap.parse_args()
    torch_v = subprocess.run([a.python, '-c', 'import torch; print(torch.__version__)'], capture_output=True, text=True).stdout.strip()
    print(f'`python benchmarks/gloo_teardown.py --python {a.python} --runs {a.runs} --timeout {a.timeout:g}`: torch {torch_v}, '
          f'{time.strftime("%Y-%m-%d")}, {os.cpu_count()} cores', flush=True)
    print('\n| end of the job | hung | crashed | runs |\n|---|---|---|---|', flush=True)
    with tempfile.TemporaryDirectory() as d:
        for name in a.variants:
            script = Path(d) / 'job.py'; script.write_text(JOB.replace('END', VARIANTS[name]))
            res = [one_run(a.python, script, a.timeout) for _ in range(a.runs)]
            crashed = [r for r in res if r.startswith('crashed')]
            print(f'| {name} | {res.count("hung")} | {len(crashed)} | {a.runs} |' + (f' first crash: {crashed[0][9:]}' if crashed else ''),
                  flush=True)


if __name__ == '__main__':
    main()
