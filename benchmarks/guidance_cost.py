"""Cost of SFERD's attention-guided teacher (sferd_nb.guidance) relative to the plain teacher.

    python benchmarks/guidance_cost.py                                    # course teacher, CPU, batch 16
    python benchmarks/guidance_cost.py --batch 64 --iters 20 --device cuda
    python benchmarks/guidance_cost.py --teacher random --config cifar10   # a random-init config instead of a checkpoint

Prints one markdown row per workload, plain vs guided (psi 1, w 0.3, blur 3/15):
- `teacher call`: one denoiser evaluation D(x_t, t) (what every sampler step and distillation target uses);
- `PD step`: one progressive-distillation loss (2 teacher DDIM steps + student) forward + backward;
- `CD step`: one consistency-distillation loss (1 teacher Heun step = 2 evaluations, EMA target, student) forward + backward.
For each: median wall time, the time ratio, the FLOP ratio (torch.utils.flop_counter, independent of machine load) and
the number of teacher-network forwards per call (counted with a forward hook; guidance should need exactly twice as many).
"""
import argparse, copy, statistics, time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from sferd_nb.diffusion import Denoiser, get_schedule, q_sample
from sferd_nb.distill import ConsistencyDistillation, ProgressiveDistillation, consistency_student
from sferd_nb.guidance import AttentionGuidedTeacher
from sferd_nb.io import load_denoiser
from sferd_nb.unet import build_unet

ROOT = Path(__file__).resolve().parents[1]


def get_teacher(spec: str, config: str, device) -> Denoiser:
    if spec != 'random': return load_denoiser(spec, device)
    torch.manual_seed(0)
    return Denoiser(build_unet(config), get_schedule('edm'), parameterization='edm').to(device).eval()


def sync(device):
    if device.type == 'cuda': torch.cuda.synchronize()


def timed(fn, iters: int, warmup: int, device) -> float:
    "Median seconds per call."
    for _ in range(warmup): fn()
    sync(device)
    ts = []
    for _ in range(iters):
        t0 = time.perf_counter(); fn(); sync(device); ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def _custom_flops() -> dict:
    "FlopCounterMode has no formula for the CPU flash-attention kernels SDPA uses on CPU: count them as SDPA."
    from torch.utils import flop_counter as fcm
    aten, out = torch.ops.aten, {}
    if hasattr(aten, '_scaled_dot_product_flash_attention_for_cpu'):
        out[aten._scaled_dot_product_flash_attention_for_cpu] = \
            lambda q, k, v, *a, out_shape=None, **kw: fcm.sdpa_flop_count(q, k, v)
    if hasattr(aten, '_scaled_dot_product_flash_attention_for_cpu_backward'):
        out[aten._scaled_dot_product_flash_attention_for_cpu_backward] = \
            lambda g, q, k, v, *a, out_shape=None, **kw: fcm.sdpa_backward_flop_count(g, q, k, v)
    return out


def flops(fn) -> float:
    with FlopCounterMode(display=False, custom_mapping=_custom_flops()) as fc: fn()
    return float(fc.get_total_flops())


def net_calls(teacher, fn) -> int:
    n = []
    h = teacher.net.register_forward_hook(lambda *a: n.append(1))
    try: fn()
    finally: h.remove()
    return len(n)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--teacher', default=str(ROOT / 'data' / 'teachers' / 'cifar10_uncond'),
                   help="exported teacher or run dir, or 'random' (random-init --config)")
    p.add_argument('--config', default='tiny', help="UNet config for --teacher random")
    p.add_argument('--batch', type=int, default=16)
    p.add_argument('--iters', type=int, default=5)
    p.add_argument('--warmup', type=int, default=1)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--psi', type=float, default=1.0); p.add_argument('--w', type=float, default=0.3)
    p.add_argument('--blur-sigma', type=float, default=3.0)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    T = get_teacher(args.teacher, args.config, device).requires_grad_(False)
    G = AttentionGuidedTeacher(T, psi=args.psi, w=args.w, blur_sigma=args.blur_sigma)
    res = T.net.img_resolution
    B = args.batch
    g = torch.Generator(device=device).manual_seed(0)
    x0 = torch.rand(B, 3, res, res, generator=g, device=device) * 2 - 1
    t = T.schedule.sample_t(B, generator=g, device=device)
    x_t, _ = q_sample(x0, t, T.schedule)
    batch = (x0, torch.zeros(B, dtype=torch.long, device=device))

    def call(den): return lambda: den(x_t, t)

    def pd_step(den):
        student = copy.deepcopy(T).train().requires_grad_(True)
        loss = ProgressiveDistillation(den, student_steps=8)
        def f():
            student.zero_grad(set_to_none=True)
            l, _ = loss(student, batch, 0); l.backward()
        return f

    def cd_step(den):
        student = consistency_student(T).to(device).train().requires_grad_(True)
        loss = ConsistencyDistillation(den, student, N=18)
        def f():
            student.zero_grad(set_to_none=True)
            l, _ = loss(student, batch, 0); l.backward()
        return f

    print(f"teacher: {args.teacher} ({sum(p.numel() for p in T.parameters()) / 1e6:.2f} M params, {res}px), "
          f"batch {B}, device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print('| workload | plain ms | guided ms | time ratio | FLOP ratio | net forwards plain → guided |')
    print('|---|---|---|---|---|---|')
    for name, make in (('teacher call', call), ('PD step (8-step student)', pd_step), ('CD step (N=18, Heun)', cd_step)):
        fp, fg = make(T), make(G)
        tp, tg = timed(fp, args.iters, args.warmup, device), timed(fg, args.iters, args.warmup, device)
        Fp, Fg = flops(fp), flops(fg)
        cp, cg = net_calls(T, fp), net_calls(T, fg)
        print(f'| {name} | {1e3 * tp:.1f} | {1e3 * tg:.1f} | {tg / tp:.2f} | {Fg / Fp:.2f} | {cp} → {cg} |', flush=True)


if __name__ == '__main__':
    main()
