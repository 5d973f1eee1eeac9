"""Training throughput of the teacher UNet configs through the real training loop (sferd_nb.train.Trainer).

    python benchmarks/train_throughput.py                           # tiny, CPU, batch 64
    python benchmarks/train_throughput.py --configs tiny cifar10 imagenet64 --batch 64 64 8
    python benchmarks/train_throughput.py --configs cifar10 imagenet64 --batch 128 32 --device cuda   # + TFLOP/s, MFU

Prints one markdown row per config: images/s and seconds per optimiser step (EDM teacher loss, Adam, EMA, random
uint8 data through the project's loader), and FLOPs per step counted with torch.utils.flop_counter.FlopCounterMode
(forward + backward of the loss); on CUDA also achieved TFLOP/s and MFU against the GPU's dense bf16 peak.
"""
import argparse, contextlib, tempfile, time

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from sferd_nb.data import ImageDataset
from sferd_nb.diffusion import Denoiser, get_schedule
from sferd_nb.train import TrainConfig, Trainer, teacher_loss
from sferd_nb.unet import build_unet, count_params

# dense bf16 tensor-core peaks (TFLOP/s, without sparsity) for MFU
PEAK_BF16 = {'H200': 989., 'H100': 989., 'A100': 312., 'L40S': 362., 'A10': 125., 'V100': 125., '4090': 165., '3090': 71.}


def peak_tflops(device: torch.device):
    if device.type != 'cuda': return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def flops_per_step(tr: Trainer, data, batch: int) -> float:
    "FLOPs of one forward+backward of the training loss at this batch (counted once, outside the timing)."
    x = torch.stack([data[i][0] for i in range(batch)]).to(tr.device)
    y = torch.zeros(batch, dtype=torch.long, device=tr.device)
    # CPU's fused SDPA kernel is not registered with FlopCounterMode: count the math path there (same FLOPs)
    kernel = sdpa_kernel([SDPBackend.MATH]) if tr.device.type == 'cpu' else contextlib.nullcontext()
    with FlopCounterMode(display=False) as fc, kernel:
        with tr.autocast():
            loss, _ = tr.loss_fn(tr.train_model, (x, y), 0)
        loss.backward()
    tr.opt.zero_grad(set_to_none=True)
    return float(fc.get_total_flops())


def bench(name: str, batch: int, steps: int, warmup: int, device: torch.device, amp: str, channels_last, compile_: bool):
    torch.manual_seed(0)
    net = build_unet(name)
    den = Denoiser(net, get_schedule('edm'), parameterization='edm').to(device)
    res, ncls = net.img_resolution, net.num_classes or 10
    n = max(4 * batch, 64)
    data = ImageDataset(torch.randint(0, 256, (n, 3, res, res), dtype=torch.uint8), labels=torch.randint(0, ncls, (n,)), num_classes=ncls, name='random')
    cfg = TrainConfig(batch_size=batch, max_steps=warmup + steps, log_every=0, ckpt_every=-1, sample_every=-1, amp=amp,
                      channels_last=channels_last, compile=compile_)
    with tempfile.TemporaryDirectory() as out:
        tr = Trainer(den, teacher_loss('edm'), cfg, out, meta={})
        flops = flops_per_step(tr, data, batch)
        tr.fit(data, max_steps=warmup, progress=False)
        if device.type == 'cuda': torch.cuda.synchronize()
        t0 = time.perf_counter()
        tr.fit(data, max_steps=warmup + steps, progress=False)
        if device.type == 'cuda': torch.cuda.synchronize()
        dt = (time.perf_counter() - t0) / steps
    tflops = flops / dt / 1e12
    peak = peak_tflops(device)
    return dict(config=name, params=count_params(net), batch=batch, sec_per_step=dt, img_per_sec=batch / dt,
                gflop_per_img=flops / batch / 1e9, tflops=tflops, mfu=(tflops / peak) if peak else None)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--configs', nargs='+', default=['tiny'], choices=['tiny', 'cifar10', 'imagenet64'])
    p.add_argument('--batch', nargs='+', type=int, default=[64], help='one batch size, or one per config')
    p.add_argument('--steps', type=int, default=5, help='timed optimiser steps')
    p.add_argument('--warmup', type=int, default=2, help='untimed steps first')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--amp', default='auto', choices=['auto', 'bf16', 'none'])
    p.add_argument('--channels-last', default='auto', choices=['auto', 'true', 'false'])
    p.add_argument('--compile', action='store_true')
    p.add_argument('--threads', type=int, help='torch CPU threads (default: torch default)')
    a = p.parse_args(argv)
    if a.threads: torch.set_num_threads(a.threads)
    batches = a.batch * len(a.configs) if len(a.batch) == 1 else a.batch
    if len(batches) != len(a.configs): p.error('give one --batch or one per config')
    cl = {'auto': 'auto', 'true': True, 'false': False}[a.channels_last]
    device = torch.device(a.device)
    dev_name = torch.cuda.get_device_name(device) if device.type == 'cuda' else f'CPU x{torch.get_num_threads()} threads'
    print(f"| config | params | device | batch | amp | s/step | img/s | GFLOP/img (fwd+bwd) | TFLOP/s | MFU |")
    print(f"|---|---|---|---|---|---|---|---|---|---|")
    for name, b in zip(a.configs, batches):
        r = bench(name, b, a.steps, a.warmup, device, a.amp, cl, a.compile)
        mfu = f"{100 * r['mfu']:.1f} %" if r['mfu'] is not None else '–'
        amp = 'bf16' if (a.amp == 'bf16' or (a.amp == 'auto' and device.type == 'cuda')) else 'fp32'
        print(f"| {name} | {r['params'] / 1e6:.1f} M | {dev_name} | {b} | {amp} | {r['sec_per_step']:.3f} | "
              f"{r['img_per_sec']:.1f} | {r['gflop_per_img']:.2f} | {r['tflops']:.3f} | {mfu} |", flush=True)


if __name__ == '__main__':
    main()
