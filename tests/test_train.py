"""Integration tests of the training loop (sferd_nb.train) and the UNet configs (sferd_nb.unet); CPU, small, fast."""
import json, os, subprocess, sys
from pathlib import Path

import pytest
import torch

from sferd_nb.data import ImageDataset, get_dataset
from sferd_nb.diffusion import Denoiser, diffusion_loss, get_schedule
from sferd_nb.train import CKPT_NAME, TrainConfig, Trainer, atomic_save, load_checkpoint, teacher_loss
from sferd_nb.io import denoiser_config, export_denoiser, load_denoiser
from sferd_nb.cli import main_train_teacher
from sferd_nb.unet import build_unet, count_params

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def ds():
    return get_dataset('cifar10-subset')


def small_denoiser(seed=0, **kw):
    torch.manual_seed(seed)
    kw = {**dict(model_channels=8, num_blocks=1), **kw}
    return Denoiser(build_unet('tiny', **kw), get_schedule('edm'), parameterization='edm')


def small_trainer(out, seed=0, cfg=None, loss_fn=None, den=None, **kw):
    den = den or small_denoiser(seed, **kw)
    cfg = cfg or TrainConfig(lr=1e-3, batch_size=8, max_steps=4, log_every=1, ckpt_every=2, sample_every=-1)
    return Trainer(den, loss_fn or teacher_loss('edm'), cfg, out, meta=denoiser_config(den))


def states_equal(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.values(), b.values())) and list(a) == list(b)


def test_overfit_one_batch(ds, tmp_path):
    "A shrunk tiny UNet memorises one fixed batch (fixed t and noise): the loss falls >= 10x."
    x0 = torch.stack([ds[i][0] for i in range(8)])
    g = torch.Generator().manual_seed(0)
    t = torch.exp(torch.linspace(-1.5, 1.0, 8))                        # sigmas 0.22 .. 2.7
    noise = torch.randn(x0.shape, generator=g)
    def loss_fn(model, batch, step):
        return diffusion_loss(model, x0, t=t, noise=noise, weighting='edm').mean(), {}
    den = small_denoiser(0, model_channels=16, num_blocks=1)
    cfg = TrainConfig(lr=3e-3, batch_size=8, max_steps=150, log_every=1, ckpt_every=-1, sample_every=-1, grad_clip=0)
    tr = Trainer(den, loss_fn, cfg, tmp_path, meta={}).fit(ds, progress=False)
    first, last = tr.history[0]['loss'], min(r['loss'] for r in tr.history[-5:])
    assert last < first / 10, (first, last)


def test_resume_bit_identical(ds, tmp_path):
    "N steps + resume N steps == 2N straight steps (dropout on, grad accumulation on, across an epoch boundary)."
    sub = ImageDataset(ds.images[:40], labels=ds.labels[:40], num_classes=10, name='sub40')         # 5 batches of 8 per epoch
    cfg = lambda: TrainConfig(lr=1e-3, batch_size=8, grad_accum=2, max_steps=6, log_every=1, ckpt_every=3,
                              sample_every=-1, ema_halflife_kimg=0.05)
    a = small_trainer(tmp_path / 'a', cfg=cfg(), dropout=0.2).fit(sub, progress=False)
    b = small_trainer(tmp_path / 'b', cfg=cfg(), dropout=0.2).fit(sub, max_steps=3, progress=False)
    del b
    b = small_trainer(tmp_path / 'b', seed=99, cfg=cfg(), dropout=0.2).resume().fit(sub, progress=False)
    assert b.step == a.step == 6
    assert states_equal(a.model.state_dict(), b.model.state_dict())
    assert states_equal(a.ema.state_dict(), b.ema.state_dict())
    assert [r['loss'] for r in a.history[3:]] == [r['loss'] for r in b.history]
    lines = [json.loads(l) for l in (tmp_path / 'b' / 'metrics.jsonl').read_text().splitlines()]
    assert [r['step'] for r in lines] == [1, 2, 3, 4, 5, 6]


def test_cli_ddp_equals_single_process(tmp_path):
    "torchrun with 2 gloo processes == 1 process with the same global batch (dropout 0, same data)."
    common = ['--config', 'tiny', '--data', 'cifar10-subset', '--model-channels', '16', '--num-blocks', '1',
              '--batch-size', '8', '--max-steps', '3', '--warmup', '1', '--lr', '1e-3', '--sample-every', '-1',
              '--no-progress', '--dropout', '0', '--device', 'cpu',   # gloo on the CPU, also where a GPU is visible
              '--amp', 'none']                                        # fp32: bf16 sums depend on how the batch is split
    main_train_teacher(common + ['--out', str(tmp_path / 'one')])
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(ROOT)}
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
           '-m', 'sferd_nb', 'train-teacher'] + common + ['--out', str(tmp_path / 'two')]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    assert '2 process(es) x 4 x 1 = batch 8' in r.stdout, r.stdout
    one, two = load_checkpoint(tmp_path / 'one'), load_checkpoint(tmp_path / 'two')
    assert one['step'] == two['step'] == 3
    diff = max((one['model'][k] - two['model'][k]).abs().max().item() for k in one['model'])
    assert diff <= 1e-5, diff
    diff_ema = max((one['ema'][k].float() - two['ema'][k].float()).abs().max().item() for k in one['ema'])
    assert diff_ema <= 1e-5, diff_ema


def test_bad_checkpoints(tmp_path, ds):
    tr = small_trainer(tmp_path / 'run').fit(ds, max_steps=2, progress=False)
    good = (tmp_path / 'run' / CKPT_NAME).read_bytes()
    for name, data in [('trunc.pt', good[:len(good) // 2]), ('garbage.pt', b'not a checkpoint at all' * 100), ('empty.pt', b'')]:
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match='corrupt or truncated'): load_checkpoint(tmp_path / name)
    torch.save({'hello': torch.zeros(2)}, tmp_path / 'other.pt')
    with pytest.raises(ValueError, match='not a sferd_nb training checkpoint'): load_checkpoint(tmp_path / 'other.pt')
    ck = torch.load(tmp_path / 'run' / CKPT_NAME, weights_only=True); del ck['optimizer']
    torch.save(ck, tmp_path / 'incomplete.pt')
    with pytest.raises(ValueError, match='lacks'): load_checkpoint(tmp_path / 'incomplete.pt')
    with pytest.raises(FileNotFoundError): load_checkpoint(tmp_path / 'missing')
    # mismatches: model architecture, meta, config
    other = small_denoiser(0, model_channels=16)
    with pytest.raises(ValueError, match='different setup'):
        Trainer(other, teacher_loss(), tr.cfg, tmp_path / 'run', meta=denoiser_config(other)).resume()
    with pytest.raises(ValueError, match='does not match'):
        Trainer(other, teacher_loss(), tr.cfg, tmp_path / 'run', meta=tr.meta).resume()
    cfg = TrainConfig(lr=1e-3, batch_size=16, max_steps=4)
    with pytest.raises(ValueError, match='batch_size'):
        small_trainer(tmp_path / 'run', cfg=cfg).resume()


def test_interrupted_save_keeps_last_checkpoint(tmp_path, ds, monkeypatch):
    tr = small_trainer(tmp_path / 'run').fit(ds, max_steps=2, progress=False)
    path = tmp_path / 'run' / CKPT_NAME
    good = path.read_bytes()
    real_save = torch.save
    def half_save(obj, f, *a, **k):                     # write half a file, then die
        real_save(obj, f, *a, **k); f.seek(0); f.truncate(1000)
        raise KeyboardInterrupt('killed mid-save')
    monkeypatch.setattr(torch, 'save', half_save)
    with pytest.raises(KeyboardInterrupt): tr.fit(ds, max_steps=4, progress=False)
    monkeypatch.setattr(torch, 'save', real_save)
    assert path.read_bytes() == good and load_checkpoint(path)['step'] == 2
    assert not path.with_name(path.name + '.tmp').exists()
    def bad_replace(*a): raise OSError('disk full')
    monkeypatch.setattr(os, 'replace', bad_replace)
    with pytest.raises(OSError): atomic_save({'x': 1}, path)
    monkeypatch.undo()
    assert path.read_bytes() == good


def test_nan_loss_stops_with_message(tmp_path, ds):
    base = teacher_loss('edm')
    def loss_fn(model, batch, step):
        loss, m = base(model, batch, step)
        return (loss * float('nan') if step == 3 else loss), m
    tr = small_trainer(tmp_path / 'run', loss_fn=loss_fn)
    with pytest.raises(FloatingPointError, match=r'non-finite loss.*step 3.*last good checkpoint .* is intact'):
        tr.fit(ds, progress=False)
    ck = load_checkpoint(tmp_path / 'run')
    assert ck['step'] == 2
    assert all(torch.isfinite(v).all() for v in ck['model'].values())
    assert all(torch.isfinite(p).all() for p in tr.model.parameters())   # the bad step never touched the weights


def test_cli_tiny_and_resume(tmp_path):
    out = tmp_path / 'cli'
    args = ['--config', 'tiny', '--data', 'cifar10-subset', '--out', str(out), '--model-channels', '16',
            '--batch-size', '8', '--sample-steps', '3', '--no-progress']
    main_train_teacher(args + ['--max-steps', '3'])
    assert (out / CKPT_NAME).exists() and (out / 'samples' / '0000003.png').exists()
    assert (out / 'model.safetensors').exists() and json.loads((out / 'config.json').read_text())['unet']['model_channels'] == 16
    with pytest.raises(SystemExit, match='--resume'): main_train_teacher(args + ['--max-steps', '5'])
    main_train_teacher(args + ['--max-steps', '5', '--resume'])
    assert load_checkpoint(out)['step'] == 5 and (out / 'samples' / '0000005.png').exists()
    steps = [json.loads(l)['step'] for l in (out / 'metrics.jsonl').read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 5
    den = load_denoiser(out)
    assert den.schedule.name == 'edm' and den.parameterization == 'edm'


def test_cli_class_conditional(tmp_path):
    out = tmp_path / 'cond'
    main_train_teacher(['--out', str(out), '--cond', '--model-channels', '8', '--num-blocks', '1', '--batch-size', '4',
                        '--max-steps', '1', '--sample-steps', '2', '--no-progress'])
    den = load_denoiser(out)
    assert den.net.num_classes == 10


def test_export_roundtrip_fp16(tmp_path):
    den = small_denoiser(1, num_classes=10)
    with torch.no_grad():
        for p in den.parameters(): p.add_(0.01 * torch.randn_like(p))
    export_denoiser(den, tmp_path / 'e32'); export_denoiser(den, tmp_path / 'e16', fp16=True)
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([1, 2])
    with torch.no_grad():
        ref = den.eval()(x, 0.5, cond=y).x0
        assert torch.allclose(load_denoiser(tmp_path / 'e32')(x, 0.5, cond=y).x0, ref, atol=1e-6)
        assert torch.allclose(load_denoiser(tmp_path / 'e16')(x, 0.5, cond=y).x0, ref, atol=5e-2)
    (tmp_path / 'e32' / 'model.safetensors').write_bytes(b'junk')
    with pytest.raises(ValueError, match='corrupt'): load_denoiser(tmp_path / 'e32')


@pytest.mark.parametrize('name,expected', [('cifar10', 35.7e6), ('imagenet64', 296e6)])
def test_big_configs_one_step(name, expected, tmp_path):
    "The paper-scale configs build, have the published sizes (within 2 %) and take one training step at batch 1."
    torch.manual_seed(0)
    net = build_unet(name)
    assert abs(count_params(net) / expected - 1) < 0.02
    den = Denoiser(net, get_schedule('edm'), parameterization='edm')
    res = net.img_resolution
    data = ImageDataset(torch.randint(0, 256, (2, 3, res, res), dtype=torch.uint8), labels=torch.tensor([3, 5]),
                        num_classes=1000 if net.num_classes else 10, name='rand')
    cfg = TrainConfig(batch_size=1, max_steps=1, ckpt_every=-1, sample_every=-1, log_every=1)
    before = net.conv_out.weight.detach().clone()
    tr = Trainer(den, teacher_loss('edm'), cfg, tmp_path, meta={}).fit(data, progress=False)
    assert tr.step == 1 and torch.isfinite(torch.tensor(tr.history[0]['loss']))
    assert not torch.equal(before, net.conv_out.weight)


@pytest.mark.parametrize('flags, want', [({'avx2', 'fma'}, 'fp32'), ({'avx512f', 'avx512_bf16'}, 'bf16'),
                                         ({'amx_tile', 'amx_bf16'}, 'bf16')])
def test_cpu_defaults_follow_the_cpu(ds, tmp_path, monkeypatch, capsys, flags, want):
    "amp='auto' on a CPU: bf16 autocast only where bf16 is native; NCHW for training; threads capped at the usable cores; the choice printed once and written into metrics.jsonl; explicit settings win."
    import sferd_nb.train as T, sferd_nb.unet as U
    threads = torch.get_num_threads()
    monkeypatch.setattr(U, '_cpu_flags', lambda: flags)
    monkeypatch.setattr(U, 'cpu_cores', lambda: 1)                      # a 1-core quota: torch must not use more threads
    monkeypatch.setattr(T, '_ANNOUNCED', set())
    try:
        torch.set_num_threads(2)
        tr = small_trainer(tmp_path / 'a')
        assert tr.settings == dict(device='cpu', amp=want, channels_last=False, threads=1)
        assert (tr.amp is not None) == (want == 'bf16') and torch.get_num_threads() == 1
        tr.fit(ds, max_steps=2, progress=False)
        recs = [json.loads(l) for l in (tmp_path / 'a' / 'metrics.jsonl').read_text().splitlines()]
        assert [r['settings'] for r in recs] == [tr.settings] * 2
        small_trainer(tmp_path / 'b')                                    # same settings again: not printed twice
        out = capsys.readouterr().out
        assert out.count('sferd_nb: training on CPU, 1 threads') == 1 and ('bf16 autocast' in out) == (want == 'bf16'), out
        cfg = TrainConfig(lr=1e-3, batch_size=8, max_steps=1, amp='none' if want == 'bf16' else 'bf16', channels_last=True)
        forced = small_trainer(tmp_path / 'c', cfg=cfg)                  # explicit settings are taken as given
        assert forced.settings['amp'] == ('fp32' if want == 'bf16' else 'bf16') and forced.channels_last
    finally:
        torch.set_num_threads(threads)


def test_cleanup_distributed_meets_at_a_barrier_only_on_a_normal_gloo_exit(monkeypatch):
    """`cleanup_distributed` (the end of the CLI's runs and of the DDP test workers): with gloo on a normal exit a barrier and
    a pause before destroy, so that torch 2.3's gloo teardown does not hang (benchmarks/gloo_teardown.py); with
    `barrier=False` (the CLI while an exception propagates: other ranks may never come) and with NCCL, destroy only; a
    barrier that fails (a rank is gone) is passed over and the group still destroyed. Played with a recording stand-in
    for torch.distributed."""
    import torch.distributed as dist
    from sferd_nb import train as T
    calls, backend = [], ['gloo']
    def barrier(*a, **kw):
        calls.append(('barrier', a, kw))
        if backend[0] == 'broken': raise RuntimeError('Connection closed by peer')
    monkeypatch.setattr(dist, 'is_initialized', lambda: True)
    monkeypatch.setattr(dist, 'get_backend', lambda *a: 'gloo' if backend[0] == 'broken' else backend[0])
    monkeypatch.setattr(dist, 'barrier', barrier)
    monkeypatch.setattr(dist, 'destroy_process_group', lambda *a: calls.append('destroy'))
    monkeypatch.setattr(T.time, 'sleep', lambda s: calls.append(f'sleep {s}'))
    for b, kw, want in [('gloo', {}, [('barrier', (), {}), 'sleep 0.1', 'destroy']), ('gloo', dict(barrier=False), ['destroy']),
                        ('nccl', {}, ['destroy']), ('broken', {}, [('barrier', (), {}), 'destroy'])]:
        backend[0] = b; calls.clear()
        T.cleanup_distributed(**kw)
        assert calls == want, (b, kw, calls)


def test_distributed_leaves_with_a_barrier_only_on_a_normal_exit(monkeypatch):
    """`with distributed(device):` (the CLI's runs) calls `cleanup_distributed()` once after a normal exit or a `return`,
    and `cleanup_distributed(barrier=False)` once while an exception propagates (the other ranks may never come)."""
    from sferd_nb import train as T
    seen = []
    monkeypatch.setattr(T, 'cleanup_distributed', lambda **kw: seen.append(kw))
    with T.distributed('cpu') as device: assert device == torch.device('cpu')
    def early():
        with T.distributed('cpu'): return 1
    assert early() == 1
    with pytest.raises(KeyboardInterrupt):
        with T.distributed('cpu'): raise KeyboardInterrupt
    assert seen == [{}, {}, dict(barrier=False)], seen


def test_the_cli_skips_the_barrier_while_an_exception_propagates(tmp_path, monkeypatch):
    "`sferd-train-teacher` failing inside its run (here: a checkpoint without --resume) leaves the process group without a barrier."
    from sferd_nb import train as T
    seen = []
    monkeypatch.setattr(T, 'cleanup_distributed', lambda **kw: seen.append(kw))
    (tmp_path / CKPT_NAME).write_bytes(b'')
    with pytest.raises(SystemExit, match='exists; pass --resume'): main_train_teacher(['--out', str(tmp_path), '--device', 'cpu'])
    assert seen == [dict(barrier=False)], seen                  # once, without the barrier (the normal exit: test above)
