"""fp32 against bf16-autocast sampling on this machine: time and FID of the same model, seeds and noise (issue 29).

    python benchmarks/sampling_amp.py                                   # the course teacher, DDIM 2 and 4 steps
    python benchmarks/sampling_amp.py --model runs/demo/pd/stage0_2steps --steps 2 --seeds 0,1,2,3

`Model.sample(amp=...)` (notebook 05) runs the network under bf16 autocast with `amp='bf16'` (or `'auto'` on a CPU with
native bf16); the sampler's updates stay fp32. For each step count and seed this draws `--num-samples` images both ways
from the same noise (the two settings interleaved, after one warm-up call each), scores them with the stand-in FID
against the subset's training split, and prints per-seed FIDs and the median sampling time. A bf16 difference smaller than
the seed-to-seed spread of the fp32 FIDs is what "correct" means here: the FID depends on the setting no more than on
the noise.
"""
import argparse, datetime, platform, statistics, time

import torch

from sferd_nb.distill import load
from sferd_nb.metrics import fid_against, load_extractor, reference_stats
from sferd_nb.unet import native_bf16


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--model', default='cifar10_uncond', help='an export folder or a course teacher name')
    ap.add_argument('--steps', default='2,4', help='comma-separated DDIM step counts (a teacher; a student uses its own sampler)')
    ap.add_argument('--seeds', default='0,1,2')
    ap.add_argument('--num-samples', type=int, default=500)
    ap.add_argument('--batch-size', type=int, default=100)
    a = ap.parse_args()
    model = load(a.model, 'cpu')
    if model.method == 'teacher': model.recipe = dict(model.recipe, sampler='ddim')
    ext = load_extractor('standin'); ref = reference_stats(ext, data='cifar10-subset', split='train')
    print(f"# {datetime.date.today()}, {platform.machine()} CPU, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"native bf16: {native_bf16() or 'none'}; {a.model} ({model.method}), {a.num_samples} samples per seed, {ext.name}")
    for amp in ('none', 'bf16'): model.sample(a.batch_size, 1, batch_size=a.batch_size, amp=amp)   # warm-up: oneDNN primitives
    print('| steps | seed | FID fp32 | FID bf16 | bf16 - fp32 |\n|---|---|---|---|---|')
    times, fids = {'none': [], 'bf16': []}, {}
    for st in map(int, a.steps.split(',')):
        for s in map(int, a.seeds.split(',')):
            for amp in ('none', 'bf16'):
                t0 = time.perf_counter()
                x = model.sample(a.num_samples, st, seed=s, batch_size=a.batch_size, uint8=True, amp=amp)
                times[amp].append((time.perf_counter() - t0) / (a.num_samples * st))
                fids[st, s, amp] = fid_against(ext, x, ref)['fid']
            f32, b16 = fids[st, s, 'none'], fids[st, s, 'bf16']
            print(f"| {st} | {s} | {f32:.3f} | {b16:.3f} | {b16 - f32:+.3f} |", flush=True)
        f32 = [fids[st, s, 'none'] for s in map(int, a.seeds.split(','))]
        b16 = [fids[st, s, 'bf16'] for s in map(int, a.seeds.split(','))]
        print(f"| {st} | mean ± sd | {statistics.mean(f32):.3f} ± {statistics.stdev(f32):.3f} | "
              f"{statistics.mean(b16):.3f} ± {statistics.stdev(b16):.3f} | {statistics.mean(b16) - statistics.mean(f32):+.3f} |")
    ms = {k: 1e3 * statistics.median(v) for k, v in times.items()}
    print(f"\nmedian sampling time per image and step (network call + sampler update): fp32 {ms['none']:.2f} ms, "
          f"bf16 {ms['bf16']:.2f} ms ({ms['none'] / ms['bf16']:.2f}x)")


if __name__ == '__main__':
    main()
