"""Time per distillation step (teacher solve + target + student forward/backward + Adam) for PD and CD.

    python benchmarks/distill_step.py                                    # tiny, CPU, batch 32
    python benchmarks/distill_step.py --configs cifar10 imagenet64 --batch 128 32 --device cuda
    python benchmarks/distill_step.py --teacher data/teachers/cifar10_uncond     # a shipped/exported teacher

Prints one markdown row per (config, method): seconds per optimiser step and images/s. PD = 2 teacher DDIM steps
(2 teacher forwards) per student step; CD = 1 Heun step (2 teacher forwards) + 1 target-network forward.
Optionally `--guided` wraps the teacher in attention guidance (notebook 07) and `--sgp` wraps the student in the semantic
gradient predictor (notebook 08b: encoder + z-modulated decoder copy) to measure their cost; `--compare` runs each row
plain and wrapped in the same process (the peer).
"""
import argparse, contextlib, time

import torch

from sferd_nb.diffusion import Denoiser, get_schedule
from sferd_nb.distill import ProgressiveDistillation, ConsistencyDistillation, consistency_student
from sferd_nb.io import load_denoiser
from sferd_nb.unet import build_unet


def bench(teacher, method, batch, steps, warmup, device, amp, guided=False, sgp=False):
    res = teacher.net.config.get('img_resolution', 32)
    ncls = teacher.net.num_classes
    T = teacher
    if guided:
        from sferd_nb.guidance import AttentionGuidedTeacher
        T = AttentionGuidedTeacher(teacher)
    if method == 'pd':
        student = Denoiser(type(teacher.net)(**teacher.net.config), teacher.schedule,
                           parameterization=teacher.parameterization).to(device)
        student.load_state_dict(teacher.state_dict())
        loss_fn = ProgressiveDistillation(T, student_steps=8)
    else:
        student = consistency_student(teacher).to(device)
    if sgp:
        from sferd_nb.semantic import build_sgp
        student = build_sgp(student, latent_dim=128)
    if method == 'cd': loss_fn = ConsistencyDistillation(T, student, N=18).to(device)
    student.train().requires_grad_(True)
    opt = torch.optim.Adam(student.parameters(), lr=1e-5)
    x = torch.rand(batch, 3, res, res, device=device) * 2 - 1
    y = torch.randint(0, ncls or 10, (batch,), device=device)
    ctx = torch.autocast('cuda', dtype=torch.bfloat16) if (device.type == 'cuda' and amp) else contextlib.nullcontext()
    def one(i):
        with ctx:
            loss, _ = loss_fn(student, (x, y), i)
        loss.float().backward(); opt.step(); opt.zero_grad(set_to_none=True)
        if method == 'cd': loss_fn.update_target(student)
    for i in range(warmup): one(i)
    if device.type == 'cuda': torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in range(steps): one(warmup + i)
    if device.type == 'cuda': torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / steps
    return dt, batch / dt


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--configs', nargs='+', default=['tiny'])
    p.add_argument('--batch', nargs='+', type=int, default=[32])
    p.add_argument('--teacher', help='an exported teacher (overrides --configs)')
    p.add_argument('--methods', nargs='+', default=['pd', 'cd'])
    p.add_argument('--steps', type=int, default=3)
    p.add_argument('--warmup', type=int, default=1)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--no-amp', action='store_true')
    p.add_argument('--guided', action='store_true', help='wrap the teacher in attention guidance (sferd_nb.guidance)')
    p.add_argument('--sgp', action='store_true', help='wrap the student in the semantic gradient predictor (sferd_nb.semantic)')
    p.add_argument('--compare', action='store_true', help='with --guided/--sgp: also the plain row, in the same process')
    a = p.parse_args()
    dev = torch.device(a.device)
    print(f"| teacher | method | guided | sgp | batch | s/step | img/s | device | threads |")
    print(f"|---|---|---|---|---|---|---|---|---|")
    specs = [(a.teacher, a.batch[0])] if a.teacher else list(zip(a.configs, a.batch + a.batch[-1:] * len(a.configs)))
    for name, batch in specs:
        torch.manual_seed(0)
        if a.teacher: teacher = load_denoiser(name, dev)
        else: teacher = Denoiser(build_unet(name), get_schedule('edm'), parameterization='edm').to(dev).eval()
        teacher.requires_grad_(False)
        variants = [(a.guided, a.sgp)] + ([(False, False)] if a.compare and (a.guided or a.sgp) else [])
        for m in a.methods:
            for guided, sgp in variants:
                dt, ips = bench(teacher, m, batch, a.steps, a.warmup, dev, not a.no_amp, guided, sgp)
                devname = torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'cpu'
                print(f"| {name} | {m} | {guided} | {sgp} | {batch} | {dt:.3f} | {ips:.1f} | {devname} | {torch.get_num_threads()} |",
                      flush=True)


if __name__ == '__main__':
    main()
