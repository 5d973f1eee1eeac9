"""Smoke runs of the full-size distillation recipes: a teacher with random weights at a named UNet config (`cifar10`:
35.7 M parameters; `imagenet64`: 296 M, class-conditional, attention at 32/16/8) distilled by `sferd-distill` for a few
steps per stage, then its exported student scored by `sferd-eval`. Every method runs in its own process, timed.

    python benchmarks/fullsize_smoke.py --config imagenet64 --device cpu --steps 2 --batch 2      # CPU: the path runs
    python benchmarks/fullsize_smoke.py --config imagenet64 --device cuda --steps 300 --batch 64  # GPU: the recipe's cost
    python benchmarks/fullsize_smoke.py --config cifar10 --device cuda --steps 300 --batch 128

Without `--data`, `imagenet64` runs on a stand-in ImageNet-64 directory written in the official npz format
(`train_data_batch_1..10`, `val_data`: the embedded CIFAR-10 subset upsampled 2x, its labels as classes 0..9 of 1000),
so the real loader (its memory-mapped copy goes to OUT/cache), label handling and 64 px paths are the ones exercised;
32 px configs run on the embedded subset.
Random weights: this measures whether the full-size recipe runs and what it costs, not sample quality.
Prints one markdown row per method and writes OUT/smoke.json (rc, wall seconds, per-stage steps, last loss, img/s).
"""
import argparse, json, os, platform, subprocess, sys, time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sferd_nb.data import IMAGENET64_TRAIN_FILES, IMAGENET64_VAL_FILE, get_dataset, write_imagenet64_npz
from sferd_nb.diffusion import Denoiser
from sferd_nb.io import export_denoiser, load_denoiser
from sferd_nb.unet import UNET_CONFIGS, build_unet, count_params

COURSE_TEACHER = Path(__file__).resolve().parents[1] / 'data' / 'teachers' / 'cifar10_uncond'
PD_STEPS = ['--teacher-steps', '2', '--student-steps', '1']       # one halving stage: 2-step teacher -> 1-step student


def standin_imagenet64(root: Path) -> str:
    "Write the embedded CIFAR-10 subset, upsampled to 64 px, as the official downsampled-ImageNet files; return the spec."
    root.mkdir(parents=True, exist_ok=True)
    for split, names in (('train', IMAGENET64_TRAIN_FILES), ('test', (IMAGENET64_VAL_FILE,))):
        ds = get_dataset('cifar10-subset', split=split)
        x = F.interpolate(ds.images.float(), scale_factor=2, mode='nearest').round().to(torch.uint8).numpy()
        for name, idx in zip(names, np.array_split(np.arange(len(x)), len(names))):
            write_imagenet64_npz(root / f'{name}.npz', x[idx], ds.labels[idx].numpy())
    return f'imagenet64:{root}'


def random_teacher(config: str, out: Path) -> int:
    "Export a teacher with the course teacher's schedule and parameterisation and a `config` UNet of random weights."
    course = load_denoiser(COURSE_TEACHER)
    net = build_unet(config)
    export_denoiser(Denoiser(net, course.schedule, parameterization=course.parameterization, sigma_data=course.sigma_data), out,
                    config=dict(data='random weights (benchmarks/fullsize_smoke.py)'))
    return count_params(net)


def run(cmd: list, log: Path) -> tuple[int, float]:
    "Run `cmd`, its output to `log`; (exit code, wall seconds)."
    t0 = time.perf_counter()
    with open(log, 'w') as f: rc = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT)
    return rc, time.perf_counter() - t0


def students(log: Path) -> list:
    "The exported students, in stage order, from `sferd-distill`'s last line ('students: A, B')."
    line = next((l for l in reversed(log.read_text().splitlines()) if l.startswith('students: ')), '')
    return [Path(d) for d in line[len('students: '):].split(', ') if d]


def stages(dirs: list) -> list:
    "Per stage: its name, the last logged step and loss, and the mean logged img/s after the first record."
    rows = []
    for f in (d / 'metrics.jsonl' for d in dirs if (d / 'metrics.jsonl').exists()):
        recs = [json.loads(l) for l in f.read_text().splitlines() if l.strip()]
        recs = [r for r in recs if 'step' in r and 'loss' in r]
        if not recs: continue
        last, later = recs[-1], [r['img_per_sec'] for r in recs[1:] if 'img_per_sec' in r]   # the first holds warm-up
        ips = sum(later) / len(later) if later else recs[-1].get('img_per_sec')
        rows.append(dict(stage=f.parent.name, step=last['step'], loss=last['loss'], img_per_s=ips))
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--config', default='imagenet64', choices=list(UNET_CONFIGS), help="UNet config ('tiny': a quick check of this script)")
    p.add_argument('--methods', nargs='+', default=['sferd-pd', 'sferd-cd', 'gdd'])
    p.add_argument('--steps', type=int, default=2, help='optimiser steps per stage (and of the SGP latent sampler)')
    p.add_argument('--batch', type=int, default=2)
    p.add_argument('--device', default='cpu')
    p.add_argument('--data', help="data spec (default: the stand-in ImageNet-64 / 'cifar10-subset')")
    p.add_argument('--eval-samples', type=int, default=8, help='samples scored by sferd-eval per student (0: no eval)')
    p.add_argument('--out', default='build/fullsize_smoke')
    a = p.parse_args()
    out = Path(a.out) / a.config
    if out.exists() and any(out.iterdir()):
        sys.exit(f"fullsize_smoke: {out} is not empty; pass another --out or remove it")
    out.mkdir(parents=True)
    at64 = UNET_CONFIGS[a.config]['img_resolution'] == 64
    data = a.data or (standin_imagenet64(out / 'imagenet64') if at64 else 'cifar10-subset')
    if not a.data: os.environ.setdefault('SFERD_CACHE', str(out / 'cache'))   # the stand-in's memory-mapped copy stays in OUT
    n = random_teacher(a.config, out / 'teacher')
    print(f'{a.config}: {n / 1e6:.1f} M parameters, data {data}, {a.steps} steps/stage at batch {a.batch} on {a.device}')
    res = dict(config=a.config, params=n, data=data, steps=a.steps, batch=a.batch, device=a.device,
               torch=torch.__version__, machine=f'{platform.machine()}, {os.cpu_count()} CPUs',
               cuda=torch.cuda.get_device_name() if torch.cuda.is_available() else None,
               date=time.strftime('%Y-%m-%d'), methods={})
    print('| method | distill rc | wall s | stages: last step, loss, img/s | eval rc | eval s | FID [stand-in] |')
    print('|---|---|---|---|---|---|---|')
    for m in a.methods:
        cmd = ['sferd-distill', '--method', m, '--teacher', str(out / 'teacher'), '--out', str(out / m), '--data', data,
               '--max-steps', str(a.steps), '--batch-size', str(a.batch), '--device', a.device, '--no-progress',
               '--ckpt-every', '0', '--log-every', '1', *(PD_STEPS if m != 'gdd' else [])]
        if m.startswith('sferd'): cmd += ['--latent-steps', str(a.steps)]
        rc, wall = run(cmd, out / f'{m}.log')
        dirs = students(out / f'{m}.log')
        r = dict(cmd=' '.join(cmd), rc=rc, wall_s=round(wall, 1), stages=stages(dirs))
        if rc == 0 and a.eval_samples:
            final = dirs[-1]
            ecmd = ['sferd-eval', '--checkpoint', str(final), '--num-samples', str(a.eval_samples), '--seeds', '0',
                    '--extractor', 'standin', '--data', data, '--ref-split', 'test', '--denoise-images', str(a.eval_samples),
                    '--batch-size', str(a.batch * 2), '--device', a.device, '--out', str(out / f'{m}_eval'),
                    '--score-degenerate']   # a smoke run's samples may be degenerate: scored anyway, flagged
            r['eval_cmd'] = ' '.join(ecmd)
            r['eval_rc'], r['eval_s'] = run(ecmd, out / f'{m}_eval.log')
            ej = out / f'{m}_eval' / 'eval.json'
            if ej.exists(): r['eval'] = json.loads(ej.read_text())
        res['methods'][m] = r
        st = '; '.join(f"{s['stage']}: {s['step']}, {s['loss']:.4g}" + (f", {s['img_per_s']:.1f}" if s['img_per_s'] else '')
                       for s in r['stages'])
        fid = r['eval']['rows'][0]['fid_mean'] if 'eval' in r else None
        print(f"| {m} | {rc} | {wall:.0f} | {st} | {r.get('eval_rc', '-')} | {r.get('eval_s', 0):.0f} | "
              f"{fid if fid is None else f'{fid:.1f}'} |", flush=True)
        (out / 'smoke.json').write_text(json.dumps(res, indent=1))
    sys.exit(int(any(r['rc'] or r.get('eval_rc', 0) for r in res['methods'].values())))


if __name__ == '__main__':
    main()
