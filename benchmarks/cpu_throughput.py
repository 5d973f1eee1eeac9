"""The CPU path against a peer and against the hardware, in one run (issue 29).

    python benchmarks/cpu_throughput.py                              # tiny and cifar10, all threads torch uses
    python benchmarks/cpu_throughput.py --configs tiny --rounds 3 --threads 2

Three tables, all measured in this one process:
1. **Peak**: a large fp32 and bf16 matmul (GFLOP/s): what these cores do at best in each dtype.
2. **Ours vs diffusers' `UNet2DModel`** at the same channels, blocks, attention resolutions, heads, up/down-sampling and
   time conditioning (`tiny` and `cifar10`, as `peer_unet.py` does on the GPU): a training step (forward, x0-MSE,
   backward, Adam) and a sampling step (one forward without autograd), for every setting (fp32 / bf16 autocast x NCHW /
   channels_last), the two networks interleaved round by round (median of `--rounds` rounds). FLOPs per image are
   counted once per network with `torch.utils.flop_counter` (attention through the math path, same FLOPs); the
   achieved GFLOP/s are given as a fraction of the matching matmul peak.
3. **The library's Trainer** on the `tiny` teacher: today's default before issue 29 (fp32, NCHW) against what
   `TrainConfig()` now resolves to on this CPU (`sferd_nb.train.cpu_settings`), the same real training loop
   (`benchmarks/train_throughput.py`'s), interleaved.

Needs `pip install diffusers` (an optional benchmark dependency, not the library's).
"""
import argparse, contextlib, datetime, platform, statistics, tempfile, time

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from sferd_nb.data import ImageDataset
from sferd_nb.diffusion import Denoiser, get_schedule
from sferd_nb.train import TrainConfig, Trainer, teacher_loss
from sferd_nb.unet import UNET_CONFIGS, build_unet, count_params, cpu_settings, num_groups

SETTINGS = [('fp32', False), ('fp32', True), ('bf16', False), ('bf16', True)]   # (dtype, channels_last)


def cpu_name() -> str:
    try:
        for line in open('/proc/cpuinfo'):
            if line.startswith('model name'): return line.split(':', 1)[1].strip()
    except OSError: pass
    return platform.processor() or platform.machine()


def diffusers_peer(name: str):
    "diffusers' UNet2DModel with our named config's channels, blocks, attention, heads, resampling and conditioning."
    from diffusers import UNet2DModel
    c = UNET_CONFIGS[name]
    chans = [c['model_channels'] * m for m in c['channel_mult']]
    attn = [c['img_resolution'] >> i in c['attn_resolutions'] for i in range(len(chans))]
    heads = c.get('head_channels')      # None: one head (num_heads=1) = head dim = channels
    updown = 'resnet' if c['resblock_updown'] else 'conv'
    return UNet2DModel(sample_size=c['img_resolution'], in_channels=3, out_channels=3, layers_per_block=c['num_blocks'],
                       block_out_channels=tuple(chans),
                       down_block_types=tuple('AttnDownBlock2D' if a else 'DownBlock2D' for a in attn),
                       up_block_types=tuple('AttnUpBlock2D' if a else 'UpBlock2D' for a in reversed(attn)),
                       dropout=c['dropout'], norm_num_groups=min(num_groups(ch) for ch in chans),
                       attention_head_dim=heads, downsample_type=updown, upsample_type=updown,
                       resnet_time_scale_shift='scale_shift' if c['scale_shift'] else 'default')


class Arm:
    "One network at one setting: a training step and a sampling step on fixed random data."
    def __init__(self, kind: str, config: str, batch: int, dtype: str, cl: bool):
        torch.manual_seed(0)
        self.net = build_unet(config) if kind == 'sferd_nb' else diffusers_peer(config)
        self.kind, self.bf16, self.cl = kind, dtype == 'bf16', cl
        res = UNET_CONFIGS[config]['img_resolution']
        fmt = torch.channels_last if cl else torch.contiguous_format
        self.net = self.net.to(memory_format=fmt).train()
        self.x = torch.randn(batch, 3, res, res).contiguous(memory_format=fmt)
        self.t = torch.rand(batch) * 999
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-4)

    def forward(self):
        out = self.net(self.x, self.t)
        return out if self.kind == 'sferd_nb' else out.sample

    def amp(self): return torch.autocast('cpu', dtype=torch.bfloat16, enabled=self.bf16)

    def train_step(self):
        with self.amp(): loss = F.mse_loss(self.forward().float(), self.x)
        loss.backward(); self.opt.step(); self.opt.zero_grad(set_to_none=True)

    @torch.inference_mode()
    def sample_step(self):
        self.net.eval()
        with self.amp(): self.forward()
        self.net.train()

    def flops(self, train: bool) -> float:
        with FlopCounterMode(display=False) as fc, sdpa_kernel([SDPBackend.MATH]):
            if train:
                F.mse_loss(self.forward().float(), self.x).backward(); self.opt.zero_grad(set_to_none=True)
            else:
                with torch.no_grad(): self.forward()
        return float(fc.get_total_flops())


def timed(fn, reps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(reps): fn()
    return (time.perf_counter() - t0) / reps


def matmul_peak(dtype, n: int = 2048, reps: int = 5) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    return 2 * n ** 3 / min(timed(lambda: a @ b, 1) for _ in range(reps)) / 1e9


def trainer_arm(amp: str, cl, batch: int, steps: int):
    "The real Trainer on the tiny EDM teacher at one (amp, channels_last) setting: s/step over `steps` steps."
    torch.manual_seed(0)
    den = Denoiser(build_unet('tiny'), get_schedule('edm'), parameterization='edm')
    n = 4 * batch
    data = ImageDataset(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8), labels=torch.zeros(n, dtype=torch.long), num_classes=10, name='random')
    cfg = TrainConfig(batch_size=batch, max_steps=10 ** 6, log_every=0, ckpt_every=-1, sample_every=-1, amp=amp, channels_last=cl)
    out = tempfile.TemporaryDirectory()
    tr = Trainer(den, teacher_loss('edm'), cfg, out.name, meta={})
    tr.fit(data, max_steps=1, progress=False)
    def run():
        tr.fit(data, max_steps=tr.step + steps, progress=False)
    return tr, run, out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--configs', nargs='+', default=['tiny', 'cifar10'], choices=['tiny', 'cifar10'])
    p.add_argument('--batch', nargs='+', type=int, default=[64, 8], help='one batch size, or one per config')
    p.add_argument('--rounds', type=int, default=3, help='interleaved rounds per cell (median)')
    p.add_argument('--reps', type=int, default=2, help='steps timed per round')
    p.add_argument('--trainer-steps', type=int, default=4, help='Trainer steps per round (table 3); 0 skips it')
    p.add_argument('--threads', type=int, help='torch CPU threads (default: what the library would choose)')
    a = p.parse_args(argv)
    batches = a.batch * len(a.configs) if len(a.batch) == 1 else a.batch[:len(a.configs)]
    auto = cpu_settings()
    torch.set_num_threads(a.threads or auto['threads'])
    print(f"# {datetime.date.today()} · {cpu_name()} · {torch.get_num_threads()} threads · torch {torch.__version__} · "
          f"native bf16: {auto['bf16_isa']} · library CPU default: amp={auto['amp']}, "
          f"channels_last={auto['channels_last']}\n")
    peak = {'fp32': matmul_peak(torch.float32), 'bf16': matmul_peak(torch.bfloat16)}
    print('| peak (2048² matmul) | fp32 | bf16 |\n|---|---|---|')
    print(f"| GFLOP/s | {peak['fp32']:.0f} | {peak['bf16']:.0f} |\n", flush=True)

    print('| config | batch | step | dtype | layout | sferd_nb img/s | diffusers img/s | ratio | sferd_nb GFLOP/s (% of peak) | diffusers GFLOP/s (% of peak) |')
    print('|---|---|---|---|---|---|---|---|---|---|', flush=True)
    for config, b in zip(a.configs, batches):
        best = {}
        for what in ('train', 'sample'):
            for dtype, cl in SETTINGS:
                arms = {k: Arm(k, config, b, dtype, cl) for k in ('sferd_nb', 'diffusers')}
                fl = {k: arm.flops(what == 'train') / b for k, arm in arms.items()}
                for arm in arms.values(): (arm.train_step if what == 'train' else arm.sample_step)()   # warm-up
                ts = {k: [] for k in arms}
                for _ in range(a.rounds):
                    for k, arm in arms.items():
                        ts[k].append(timed(arm.train_step if what == 'train' else arm.sample_step, a.reps))
                ips = {k: b / statistics.median(v) for k, v in ts.items()}
                for k in arms:                                         # each network's fastest setting so far
                    if ips[k] > best.get((what, k), (0., ''))[0]: best[(what, k)] = (ips[k], f"{dtype} {'CL' if cl else 'NCHW'}")
                g = {k: ips[k] * fl[k] / 1e9 for k in arms}
                print(f"| {config} | {b} | {what} | {dtype} | {'channels_last' if cl else 'NCHW'} | {ips['sferd_nb']:.2f} | "
                      f"{ips['diffusers']:.2f} | {ips['sferd_nb'] / ips['diffusers']:.2f}x | "
                      f"{g['sferd_nb']:.0f} ({100 * g['sferd_nb'] / peak[dtype]:.0f} %) | "
                      f"{g['diffusers']:.0f} ({100 * g['diffusers'] / peak[dtype]:.0f} %) |", flush=True)
                del arms
            o, d = best[(what, 'sferd_nb')], best[(what, 'diffusers')]
            print(f"| {config} | {b} | {what} | **best** | | {o[0]:.2f} ({o[1]}) | {d[0]:.2f} ({d[1]}) | "
                  f"{o[0] / d[0]:.2f}x | | |", flush=True)

    if a.trainer_steps:
        b = batches[a.configs.index('tiny')] if 'tiny' in a.configs else 64
        print(f"\n| the Trainer, tiny teacher, batch {b} | amp | channels_last | s/step | img/s | vs before |\n|---|---|---|---|---|---|")
        arms = {'before issue 29 (fp32, NCHW)': trainer_arm('none', False, b, a.trainer_steps),
                'TrainConfig() default now': trainer_arm('auto', 'auto', b, a.trainer_steps)}
        ts = {k: [] for k in arms}
        for _ in range(a.rounds):
            for k, (tr, run, _) in arms.items(): ts[k].append(timed(run, 1) / a.trainer_steps)
        base = statistics.median(ts['before issue 29 (fp32, NCHW)'])
        for k, (tr, _, _) in arms.items():
            s = statistics.median(ts[k])
            print(f"| {k} | {'bf16' if tr.amp is not None else 'fp32'} | {tr.channels_last} | {s:.3f} | {b / s:.1f} | "
                  f"{base / s:.2f}x |", flush=True)


if __name__ == '__main__':
    with contextlib.suppress(KeyboardInterrupt): main()
