"""Minimal reproduction: CPU backward of GroupNorm on a channels_last input that needs no gradient segfaults (torch 2.13).

    python benchmarks/cpu_groupnorm_cl_crash.py

`semantic.py` feeds the frozen UNet trunk's features (`h.detach()`) to the gradient predictor G, a copy of the UNet
decoder. G's first ResBlock starts with GroupNorm(cat([h, skip])): a channels_last input that requires no grad, under a
GroupNorm whose affine weight does. Its backward (ATen's GroupNormBackwardKernelImplChannelsLastInternal, not oneDNN's
convolution as first suspected) then segfaults, whatever the size, dtype or thread count. The NCHW layout does not
crash (`semantic._frozen` made the features NCHW on the CPU before issue 29), nor does a channels_last input that requires
grad: `h.detach().requires_grad_(torch.is_grad_enabled())` keeps channels_last and G's gradients (checked here against
NCHW). This script runs each case in a child process (a crash kills only the child) and prints one row per case.
"""
import signal, subprocess, sys

CASE = r'''
import sys, torch
torch.manual_seed(0)
cl, dtype, inp = sys.argv[1] == 'cl', getattr(torch, sys.argv[2]), sys.argv[3]
fmt = torch.channels_last if cl else torch.contiguous_format

def grads(fmt, inp):
    gn = torch.nn.GroupNorm(2, 8).to(dtype)                                   # affine weight/bias require grad
    h, skip = (torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(i)).to(dtype, memory_format=fmt)
               for i in (1, 2))                                               # the frozen trunk's outputs
    if inp == 'detach': x = torch.cat([h, skip], 1).detach()
    elif inp == 'cat': x = torch.cat([h.detach(), skip.detach()], 1)          # G's first layer
    elif inp == 'requires_grad_': x = torch.cat([h.detach().requires_grad_(), skip.detach().requires_grad_()], 1)
    assert x.is_contiguous(memory_format=fmt)
    gn(x).float().square().sum().backward()
    return gn.weight.grad.float()

g = grads(fmt, inp)
ref = grads(torch.contiguous_format, 'requires_grad_')                        # NCHW, input with grad
assert torch.allclose(g, ref, rtol=1e-2, atol=1e-2), (g, ref)
print('ok')
'''

INPUTS = {'detach': 'x.detach()', 'cat': 'cat([h.detach(), skip.detach()])',
          'requires_grad_': 'cat([h.detach().requires_grad_(), skip.detach().requires_grad_()])'}


def main():
    print("| layout | dtype | GroupNorm input x | outcome |\n|---|---|---|---|")
    for cl, inps in (('cl', ('detach', 'cat', 'requires_grad_')), ('nchw', ('detach', 'cat'))):
        for dtype in ('float32', 'bfloat16'):
            for inp in inps:
                r = subprocess.run([sys.executable, '-c', CASE, cl, dtype, inp], capture_output=True, text=True)
                why = signal.Signals(-r.returncode).name if r.returncode < 0 else (r.stderr.strip().splitlines() or ['?'])[-1][:80]
                out = 'ok' if r.returncode == 0 and 'ok' in r.stdout else f"FAILS (exit {r.returncode}: {why})"
                print(f"| {'channels_last' if cl == 'cl' else 'NCHW'} | {dtype} | `{INPUTS[inp]}` | {out} |", flush=True)


if __name__ == '__main__':
    main()
