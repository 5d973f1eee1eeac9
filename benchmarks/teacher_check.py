"""Check candidate course teachers against the shipped ones (issue 16, item 2): same samples protocol, same reference.

    OMP_NUM_THREADS=1 python benchmarks/teacher_check.py data/teachers/cifar10_uncond ../shared/teachers/cifar10_uncond_gpu \
        --num-samples 300 --steps 8 --out build/teacher_check

For each teacher: it loads (`load_denoiser`, typed config), samples `--num-samples` images with Heun (class-conditional
teachers get balanced labels), scores them with the stand-in extractor against the subset's test split, measures the
x0 denoising error on 256 real test images at four noise levels, and saves a sample grid. Prints one markdown row each.
"""
import argparse, json, time
from pathlib import Path

import torch

from sferd_nb.data import get_dataset, save_image_grid, to_model_range
from sferd_nb.diffusion import q_sample
from sferd_nb.metrics import extract, fid_against, gaussian_stats, generate, load_extractor, load_model, nfe


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('teachers', nargs='+')
    ap.add_argument('--num-samples', type=int, default=300)
    ap.add_argument('--steps', type=int, default=8, help='Heun steps')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--out', default='build/teacher_check')
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    ext = load_extractor('standin')
    test = get_dataset('cifar10-subset', split='test', flip=False)
    mu, sigma = gaussian_stats(extract(ext, test.images, batch_size=100)[0])
    ref = dict(mu=mu, sigma=sigma, n=len(test.images), reference='cifar10-subset[test]')
    x0 = to_model_range(test.images[:256]).float()
    y0 = torch.as_tensor(test.labels[:256])
    print(f"| teacher | final training loss (last logged interval) | FID [{ext.name}], {a.num_samples} samples, Heun {a.steps} | "
          "x0 MSE at sigma 0.2 / 1 / 5 / 20 | sampling (s) |")
    print("|---|---|---|---|---|")
    rows = []
    for tdir in a.teachers:
        den, recipe = load_model(tdir)
        ncls = getattr(den.net, 'num_classes', None)
        t0 = time.time()
        x = generate(den, a.num_samples, a.steps, recipe=recipe, seed=a.seed, batch_size=100, sampler='heun')
        ts = time.time() - t0
        r = fid_against(ext, x, ref, batch_size=100)
        g = torch.Generator().manual_seed(1)
        mse = []
        with torch.no_grad():
            for s in (0.2, 1.0, 5.0, 20.0):
                x_t, _ = q_sample(x0, s, den.schedule, generator=g)
                mse.append((den(x_t, s, cond=y0 if ncls else None).x0 - x0).pow(2).mean().item())
        log = [json.loads(l) for l in (Path(tdir) / 'metrics.jsonl').read_text().splitlines() if '"loss"' in l]
        loss = log[-1]['loss']                                  # the last logged interval's mean loss
        name = Path(tdir).name
        save_image_grid(to_model_range(x[:64]), out / f'{name}.png')
        row = dict(teacher=str(tdir), fid=r['fid'], mse=mse, loss=loss, nfe=nfe(recipe, a.steps), sample_s=ts)
        rows.append(row)
        print(f"| `{tdir}` | {loss:.4f} | {r['fid']:.2f} | {' / '.join(f'{m:.4f}' for m in mse)} | {ts:.0f} |", flush=True)
    (out / 'teacher_check.json').write_text(json.dumps(rows, indent=1))


if __name__ == '__main__':
    main()
