"""Memory of ImageNet 64x64 under several processes (the ranks of one torchrun node): the in-memory loader
(`load_imagenet64`, one copy per process) against the memory-mapped copy that `get_dataset('imagenet64:PATH')` uses
(`imagenet64_memmap`, one copy per machine in the page cache).

    python benchmarks/imagenet64_memory.py --images 100000 --procs 4

Writes a stand-in of `--images` random images in the official npz format (ten `train_data_batch_*` files) to a temporary
folder, then, for each loader, starts `--procs` processes at once; each loads the training split, reads every pixel
(as an epoch does) and reports its peak RSS and its PSS (proportional set size: shared pages divided among the processes
that map them, so the PSS of all processes adds up to the memory the group really uses) from /proc/self/smaps_rollup.
Linux only. Prints a markdown table and writes --json.
"""
import argparse, json, os, platform, subprocess, sys, tempfile, time
from pathlib import Path

import numpy as np

WORKER = r'''
import json, resource, sys, time
import torch
from sferd_nb.data import load_imagenet64, imagenet64_memmap
t0 = time.perf_counter()
x, y = (load_imagenet64 if sys.argv[2] == "memory" else imagenet64_memmap)(sys.argv[1], "train")[:2]
t_load = time.perf_counter() - t0
total = sum(int(x[i:i + 1024].sum(dtype=torch.int64)) for i in range(0, len(x), 1024))   # every pixel read once, as in an epoch
kib = {l.split(':')[0]: int(l.split()[1]) for l in open('/proc/self/smaps_rollup').read().splitlines()[1:] if l.endswith('kB')}
print(json.dumps(dict(load_s=round(t_load, 2), pixel_sum=total, n=len(x), rss_mib=kib['Rss'] / 1024, pss_mib=kib['Pss'] / 1024,
                      private_mib=(kib['Private_Clean'] + kib['Private_Dirty']) / 1024,
                      peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))
'''


def standin(root: Path, n: int, seed: int = 0):
    "n random images in the official downsampled-ImageNet npz format, split over the ten training files."
    from sferd_nb.data import IMAGENET64_TRAIN_FILES, write_imagenet64_npz
    rng = np.random.default_rng(seed)
    for name, idx in zip(IMAGENET64_TRAIN_FILES, np.array_split(np.arange(n), len(IMAGENET64_TRAIN_FILES))):
        write_imagenet64_npz(root / f'{name}.npz', rng.integers(0, 256, (len(idx), 3, 64, 64), dtype=np.uint8),
                             rng.integers(0, 1000, len(idx)))


def group(root: Path, mode: str, procs: int, env: dict) -> list:
    "Start `procs` workers at once; their reports."
    ps = [subprocess.Popen([sys.executable, '-c', WORKER, str(root), mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, env={**env, 'LOCAL_RANK': str(r), 'OMP_NUM_THREADS': '1'}) for r in range(procs)]
    outs = [p.communicate() for p in ps]
    for p, (o, e) in zip(ps, outs):
        if p.returncode: sys.exit(f"imagenet64_memory: a {mode} worker failed:\n{e}")
    return [json.loads(o.strip().splitlines()[-1]) for o, _ in outs]


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--images', type=int, default=100_000, help='stand-in training images (ImageNet 64x64 has 1,281,167)')
    p.add_argument('--procs', type=int, default=4, help='processes loading at once (the ranks of one node)')
    p.add_argument('--json', default=None, help='write the results here too')
    a = p.parse_args()
    if not Path('/proc/self/smaps_rollup').exists(): sys.exit('imagenet64_memory: needs Linux (/proc/self/smaps_rollup)')
    with tempfile.TemporaryDirectory() as tmp:
        root, env = Path(tmp) / 'in64', {**os.environ, 'SFERD_CACHE': str(Path(tmp) / 'cache')}
        root.mkdir(); standin(root, a.images)
        size_mib = a.images * 3 * 64 * 64 / 2**20
        t0 = time.perf_counter()
        build = group(root, 'memmap', 1, env)[0]                        # the one-time conversion (LOCAL_RANK 0 alone)
        build_s = time.perf_counter() - t0
        res = dict(images=a.images, uint8_mib=round(size_mib), procs=a.procs, conversion_s=round(build_s, 1),
                   conversion_load_s=build['load_s'], machine=f'{platform.machine()}, {os.cpu_count()} CPUs',
                   date=time.strftime('%Y-%m-%d'), rows={})
        print(f'{a.images} images ({size_mib:.0f} MiB as uint8), {a.procs} processes at once; '
              f'one-time conversion {build_s:.1f} s')
        print('| loader | load s (mean) | peak RSS per process MiB | PSS per process MiB | PSS of the group MiB | private per process MiB |')
        print('|---|---|---|---|---|---|')
        for mode in ('memory', 'memmap'):
            rows = group(root, mode, a.procs, env)
            assert len({r['pixel_sum'] for r in rows}) == 1 and len({r['n'] for r in rows}) == 1   # the same data everywhere
            mean = lambda k: sum(r[k] for r in rows) / len(rows)
            res['rows'][mode] = dict(workers=rows, pss_group_mib=round(sum(r['pss_mib'] for r in rows)))
            print(f"| {'in memory (load_imagenet64)' if mode == 'memory' else 'memory-mapped (get_dataset)'} | {mean('load_s'):.2f} | "
                  f"{max(r['peak_rss_mib'] for r in rows):.0f} | {mean('pss_mib'):.0f} | {sum(r['pss_mib'] for r in rows):.0f} | "
                  f"{mean('private_mib'):.0f} |", flush=True)
        assert res['rows']['memory']['workers'][0]['pixel_sum'] == res['rows']['memmap']['workers'][0]['pixel_sum']
    if a.json: Path(a.json).write_text(json.dumps(res, indent=1))


if __name__ == '__main__':
    main()
