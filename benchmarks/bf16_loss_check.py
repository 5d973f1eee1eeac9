"""Does a bf16 CPU run train as well as fp32? The same teacher runs in both precisions over several training seeds.

    python benchmarks/bf16_loss_check.py                      # 3 seeds x {fp32, bf16}, 150 steps each (~10 min on 2 cores)
    python benchmarks/bf16_loss_check.py --steps 40 --seeds 0 1

Each run trains a small `tiny` EDM teacher (16 channels) on the embedded CIFAR-10 subset through the real `Trainer`
(`amp='none'` or `amp='bf16'`, everything else equal, the same seed giving both precisions the same data order and
noise). Each trained EMA model is then scored in fp32 on one fixed held-out set: the EDM-weighted loss of Eq. 2 on 256
test images at fixed noise levels and noise (`held-out loss`). The verdict compares the bf16-fp32 gap of the mean with
the seed-to-seed spread of fp32: "same within the spread" when |gap| <= the larger of the two precisions' standard
deviations over seeds. Also checks that resuming a bf16 run is bit-identical to the straight run.
"""
import argparse, copy, datetime, statistics, tempfile, time

import torch

from sferd_nb.data import get_dataset
from sferd_nb.diffusion import Denoiser, diffusion_loss, get_schedule
from sferd_nb.train import TrainConfig, Trainer, teacher_loss
from sferd_nb.unet import build_unet, native_bf16


def make(seed: int) -> Denoiser:
    torch.manual_seed(seed)
    return Denoiser(build_unet('tiny', model_channels=16), get_schedule('edm'), parameterization='edm')


def config(amp: str, steps: int, seed: int) -> TrainConfig:
    return TrainConfig(lr=1e-3, batch_size=32, max_steps=steps, warmup_steps=10, ema_halflife_kimg=0.5, seed=seed, amp=amp,
                       log_every=max(steps // 5, 1), ckpt_every=-1, sample_every=-1)


@torch.no_grad()
def held_out_loss(den: Denoiser, x0: torch.Tensor) -> float:
    g = torch.Generator().manual_seed(1234)
    t = den.schedule.sample_t(len(x0), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    return float(diffusion_loss(den.eval(), x0, t=t, noise=noise, weighting='edm').mean())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--steps', type=int, default=150)
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    a = p.parse_args(argv)
    if len(set(a.seeds)) < 2: p.error('give at least two distinct --seeds (the spread needs them)')
    train = get_dataset('cifar10-subset', split='train')
    test = get_dataset('cifar10-subset', split='test', flip=False)
    x0 = torch.stack([test[i][0] for i in range(256)])
    print(f"# {datetime.date.today()} · {torch.get_num_threads()} threads · torch {torch.__version__} · native bf16: "
          f"{native_bf16()} · tiny/16 ch EDM teacher, batch 32, {a.steps} steps\n")
    print('| seed | fp32 held-out loss | bf16 held-out loss | fp32 s/step | bf16 s/step |\n|---|---|---|---|---|')
    res = {'none': [], 'bf16': []}
    for s in a.seeds:
        row = {}
        for amp in ('none', 'bf16'):
            with tempfile.TemporaryDirectory() as d:
                tr = Trainer(make(s), teacher_loss('edm', seed=s), config(amp, a.steps, s), d, meta={})
                t0 = time.perf_counter(); tr.fit(train, progress=False); dt = (time.perf_counter() - t0) / a.steps
                ema = copy.deepcopy(tr.ema.module).float()
            row[amp] = (held_out_loss(ema, x0), dt)
            res[amp].append(row[amp][0])
        print(f"| {s} | {row['none'][0]:.5f} | {row['bf16'][0]:.5f} | {row['none'][1]:.3f} | {row['bf16'][1]:.3f} |", flush=True)
    m = {k: statistics.mean(v) for k, v in res.items()}
    sd = {k: statistics.stdev(v) for k, v in res.items()}
    gap, spread = m['bf16'] - m['none'], max(sd.values())
    print(f"\nmean ± sd over seeds: fp32 {m['none']:.5f} ± {sd['none']:.5f}, bf16 {m['bf16']:.5f} ± {sd['bf16']:.5f}; "
          f"gap bf16 - fp32 {gap:+.5f}: {'same within the seed-to-seed spread' if abs(gap) <= spread else 'OUTSIDE the spread'}")

    # resume: a bf16 run cut after half its steps and resumed equals the straight run, bit for bit
    half = max(a.steps // 10, 2)
    with tempfile.TemporaryDirectory() as d1, tempfile.TemporaryDirectory() as d2:
        straight = Trainer(make(0), teacher_loss('edm'), config('bf16', 2 * half, 0), d1, meta={}).fit(train, progress=False)
        cut = Trainer(make(0), teacher_loss('edm'), config('bf16', 2 * half, 0), d2, meta={})
        cut.fit(train, max_steps=half, progress=False); cut.save()
        resumed = Trainer(make(0), teacher_loss('edm'), config('bf16', 2 * half, 0), d2, meta={}).resume().fit(train, progress=False)
        same = all(torch.equal(u, v) for u, v in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()))
    print(f"bf16 resume after {half} of {2 * half} steps bit-identical to the straight run: {same}")


if __name__ == '__main__':
    main()
