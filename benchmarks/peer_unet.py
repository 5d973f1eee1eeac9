"""Our `cifar10` UNet against diffusers' `UNet2DModel` with the google/ddpm-cifar10-32 config, in one process.

    pip install diffusers                        # optional benchmark dependency
    python benchmarks/peer_unet.py --device cuda --batch 128 512 [--compile]

Both networks (35.7 M parameters each) take the same training step: bf16 autocast on CUDA, channels_last, fused Adam,
an x0-MSE on random data at random noise levels; images/s over timed steps after warm-up (compile time reported
separately). Prints one markdown row per (network, batch, compile).
"""
import argparse, time

import torch
import torch.nn.functional as F

from sferd_nb.unet import build_unet, count_params


def diffusers_unet():
    from diffusers import UNet2DModel
    return UNet2DModel(sample_size=32, in_channels=3, out_channels=3, layers_per_block=2,
                       block_out_channels=(128, 256, 256, 256),
                       down_block_types=('DownBlock2D', 'AttnDownBlock2D', 'DownBlock2D', 'DownBlock2D'),
                       up_block_types=('UpBlock2D', 'AttnUpBlock2D', 'UpBlock2D', 'UpBlock2D'),
                       dropout=0.1, norm_num_groups=32, attention_head_dim=None)


def make_step(net, ours: bool, device, amp: bool, compile_: bool):
    opt = torch.optim.Adam(net.parameters(), lr=1e-4, fused=device.type == 'cuda')
    fwd = (lambda x, t: net(x, t)) if ours else (lambda x, t: net(x, t).sample)
    if compile_: fwd = torch.compile(fwd)
    def step(x, t):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = F.mse_loss(fwd(x, t).float(), x.float())
        loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
        return loss
    return step


def bench(kind: str, batch: int, device, compile_: bool, steps: int, warmup: int) -> dict:
    torch.manual_seed(0)
    net = (build_unet('cifar10') if kind == 'sferd_nb' else diffusers_unet()).to(device).train()
    if device.type == 'cuda': net = net.to(memory_format=torch.channels_last)
    step = make_step(net, kind == 'sferd_nb', device, device.type == 'cuda', compile_)
    x = torch.randn(batch, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    t = torch.randint(0, 1000, (batch,), device=device).float()
    t0 = time.perf_counter()
    for _ in range(warmup): step(x, t)
    if device.type == 'cuda': torch.cuda.synchronize()
    t1 = time.perf_counter()
    for _ in range(steps): step(x, t)
    if device.type == 'cuda': torch.cuda.synchronize()
    dt = (time.perf_counter() - t1) / steps
    return dict(net=kind, params=count_params(net), batch=batch, compile=compile_, img_per_sec=batch / dt,
                warmup_s=t1 - t0)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--batch', nargs='+', type=int, default=[128, 512])
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--compile', action='store_true', help='also the torch.compile rows')
    p.add_argument('--steps', type=int, default=20)
    p.add_argument('--warmup', type=int, default=5)
    a = p.parse_args(argv)
    device = torch.device(a.device)
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'
    print('| network | params | device | batch | compile | img/s | ratio ours/diffusers | warm-up + compile (s) |')
    print('|---|---|---|---|---|---|---|---|')
    for b in a.batch:
        for c in ([False, True] if a.compile else [False]):
            rows = [bench(k, b, device, c, a.steps, a.warmup) for k in ('sferd_nb', 'diffusers')]
            ratio = rows[0]['img_per_sec'] / rows[1]['img_per_sec']
            for r in rows:
                print(f"| {r['net']} | {r['params'] / 1e6:.2f} M | {name} | {b} | {'yes' if c else 'no'} | "
                      f"{r['img_per_sec']:.0f} | {ratio:.2f}x | {r['warmup_s']:.1f} |", flush=True)


if __name__ == '__main__':
    main()
