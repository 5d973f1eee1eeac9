#!/usr/bin/env python
"""Package a finished teacher run as a shipped course teacher under data/teachers/NAME.

    python tools/ship_teacher.py runs/teacher_uncond data/teachers/cifar10_uncond --command "..." --hardware "..."

Copies the EMA weights (fp16 safetensors) and config.json, the run's metrics.jsonl, writes a 64-image sample grid
(64 DDIM steps, timed) and MODEL_CARD.md with the exact command, hardware, wall time and final loss.
"""
import argparse, json, os, shutil, time
from pathlib import Path

import torch

from sferd_nb.data import save_image_grid
from sferd_nb.samplers import prior_sample, sample
from sferd_nb.io import export_denoiser, load_denoiser

def main():
    p = argparse.ArgumentParser()
    p.add_argument('run'); p.add_argument('dest')
    p.add_argument('--command', required=True); p.add_argument('--hardware', required=True)
    p.add_argument('--wall', required=True, help='wall time of the training run')
    p.add_argument('--title', default='')
    p.add_argument('--note', default='', help='a paragraph for the card (e.g. how it compares with the teacher it replaces)')
    p.add_argument('--replace', action='store_true', help='replace an existing DEST (otherwise refused)')
    a = p.parse_args()
    run, dest = Path(a.run), Path(a.dest)
    if dest.exists() and not a.replace: raise SystemExit(f'ship_teacher: {dest} exists; pass --replace to replace it')
    den = load_denoiser(run)                                     # EMA weights of the checkpoint / export
    cfg = json.loads((run / 'config.json').read_text()) if (run / 'config.json').exists() else {}
    tmp = dest.with_name(dest.name + '.tmp')
    if tmp.exists(): shutil.rmtree(tmp)
    export_denoiser(den, tmp, config={k: v for k, v in cfg.items() if k in ('data', 'weighting', 'step')}, fp16=True)
    shutil.copy(run / 'metrics.jsonl', tmp / 'metrics.jsonl')
    grids = sorted(run.glob('training_grid_step*.png'))
    if grids: shutil.copy(grids[-1], tmp / grids[-1].name)                     # the trainer's own last sample grid
    recs = [json.loads(l) for l in (run / 'metrics.jsonl').read_text().splitlines() if l.strip()]
    last = recs[-1]
    ncls = den.net.num_classes
    g = torch.Generator().manual_seed(0)
    x_T = prior_sample(den.schedule, (64, 3, 32, 32), generator=g)
    cond = torch.arange(64) % ncls if ncls else None
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    with torch.no_grad(): x = sample(den, x_T, 64, sampler='ddim', cond=cond)
    dt = time.perf_counter() - t0
    save_image_grid(x, tmp / 'samples.png', nrow=8)
    n_params = sum(p.numel() for p in den.parameters())
    card = f"""# {dest.name}{(' — ' + a.title) if a.title else ''}

A course teacher of sferd_nb: the `tiny` ADM-style UNet ({n_params / 1e6:.2f} M parameters, attention at 16x16 and 8x8)
with EDM preconditioning, EDM noise schedule and EDM loss weighting, trained on the embedded CIFAR-10 subset
(5085 real training images){' with class conditioning (10 classes)' if ncls else ', unconditional'}.

| | |
|---|---|
| command | `{a.command}` |
| hardware | {a.hardware} |
| wall time | {a.wall} |
| optimiser steps | {last['step']} (batch {round(last['kimg'] * 1000 / last['step'])}, {last['kimg']:.1f} k images seen, about {last['kimg'] * 1000 / 5085:.0f} epochs) |
| final training loss (EDM-weighted, mean over the last logging interval) | {last['loss']:.4f} |
| weights | EMA (EDM half-life with ramp-up), stored as fp16 safetensors |
| sampling 64 images, 64 DDIM steps, 2 CPU threads | {dt:.1f} s |

`samples.png`: 64 samples, 64 DDIM steps, fixed seed 0{' (class = index mod 10)' if ncls else ''}. `metrics.jsonl`: the training log.

{(a.note + chr(10) + chr(10)) if a.note else ''}Load it with `sferd_nb.io.load_denoiser('{dest.as_posix()}')`.
"""
    (tmp / 'MODEL_CARD.md').write_text(card)
    if dest.exists(): shutil.rmtree(dest)
    os.replace(tmp, dest)
    print(card)

if __name__ == '__main__':
    main()
