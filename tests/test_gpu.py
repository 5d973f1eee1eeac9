"""The GPU suite (`make test-gpu`, issue 14): every path on CUDA in bf16 — teacher training, PD / CD steps (plain and
attention-guided), `sferd-distill` of each registered method, sampling, evaluation, the demo, and resume on CUDA equal
to an uninterrupted CUDA run. Skipped where no CUDA GPU is visible (CI)."""
import json, os

import pytest
import torch

from sferd_nb.cli import main_demo, main_distill, main_eval, main_train_teacher
from sferd_nb.diffusion import Denoiser, get_schedule
from sferd_nb.distill import METHODS, distill, load_method_modules, student_sample
from sferd_nb.io import load_denoiser, load_student
from sferd_nb.samplers import prior_sample, sample
from sferd_nb.train import TrainConfig, Trainer, teacher_loss
from sferd_nb.unet import build_unet

pytestmark = pytest.mark.gpu
CUDA = torch.device(os.environ.get('SFERD_GPU_TEST_DEVICE', 'cuda'))   # 'cpu': a dry run of the suite's code paths off the GPU
DEV = str(CUDA)
load_method_modules()                                  # sferd-pd, sferd-cd, gdd: registered by notebooks 09 and 12


from conftest import small_dataset as _ds


def _teacher_dir(tmp_path):
    from conftest import export_tiny_teacher
    return export_tiny_teacher(tmp_path / 'teacher', model_channels=32, attn_resolutions=None)


def test_teacher_training_steps_bf16(tmp_path):
    den = Denoiser(build_unet('tiny', model_channels=32, num_blocks=1), get_schedule('edm'), parameterization='edm').to(CUDA)
    tr = Trainer(den, teacher_loss('edm'), TrainConfig(batch_size=16, max_steps=6, log_every=2, ckpt_every=3), tmp_path / 'run')
    assert tr.amp == torch.bfloat16 and tr.channels_last and tr.lazy_checks
    assert any(g.get('fused') for g in tr.opt.param_groups) or tr.opt.defaults.get('fused')
    tr.fit(_ds(), progress=False)
    assert tr.step == 6 and all(torch.isfinite(torch.tensor(r['loss'])) for r in tr.history)
    assert next(tr.model.parameters()).device.type == 'cuda'


def test_resume_on_cuda_equals_uninterrupted(tmp_path):
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    def run(out, steps, resume=False):
        torch.manual_seed(1)
        d = Denoiser(build_unet('tiny', model_channels=16, num_blocks=1, dropout=0.1), get_schedule('edm'), parameterization='edm').to(CUDA)
        t = Trainer(d, teacher_loss('edm'), TrainConfig(batch_size=8, max_steps=4, log_every=1, ckpt_every=2), out)
        if resume: t.resume()
        return t.fit(_ds(), max_steps=steps, progress=False)
    a = run(tmp_path / 'a', 4)
    run(tmp_path / 'b', 2)
    b = run(tmp_path / 'b', 4, resume=True)
    for (k, v), w in zip(a.model.state_dict().items(), b.model.state_dict().values()): assert torch.equal(v, w), k
    for v, w in zip(a.ema.state_dict().values(), b.ema.state_dict().values()): assert torch.equal(v, w)


@pytest.mark.parametrize('method,guided', [('pd', False), ('pd', True), ('cd', False), ('cd', True)])
def test_distill_steps_on_cuda(tmp_path, method, guided):
    from sferd_nb.guidance import guided_teacher_wrapper
    teacher = load_denoiser(_teacher_dir(tmp_path), CUDA)
    kw = dict(teacher_steps=2, student_steps=1) if method == 'pd' else dict(student_steps=1, N=6)
    dirs = distill(teacher, _ds(), tmp_path / 'run', method=method, max_steps=3, batch_size=8, progress=False,
                   teacher_wrapper=guided_teacher_wrapper() if guided else None, log_every=1, **kw)
    den, rec = load_student(dirs[-1], CUDA)
    x = student_sample(den, prior_sample(den.schedule, (4, 3, 32, 32), device=CUDA), rec['steps'], rec)
    assert x.device.type == 'cuda' and torch.isfinite(x).all()
    log = [json.loads(l) for l in (dirs[-1] / 'metrics.jsonl').read_text().splitlines()]
    assert log[-1]['step'] == 3 and all(map(lambda r: r['loss'] == r['loss'], log))


@pytest.mark.parametrize('method', [m for m, v in METHODS.items() if v.make_student])
def test_cli_distill_each_method_on_cuda(tmp_path, method):
    t = _teacher_dir(tmp_path)
    dirs = main_distill(['--method', method, '--teacher', str(t), '--out', str(tmp_path / method), '--teacher-steps', '2',
                         '--max-steps', '2', '--batch-size', '8', '--N', '6', '--no-progress', '--device', DEV])
    assert (dirs[-1] / 'model.safetensors').exists()
    rows = main_eval(['--checkpoint', str(dirs[-1]), '--num-samples', '16', '--seeds', '0', '--extractor', 'standin', '--score-degenerate',
                      '--denoise-images', '8', '--device', DEV])
    assert rows[0]['fid'][0] > 0


def test_train_teacher_cli_and_sampling_on_cuda(tmp_path):
    out = main_train_teacher(['--out', str(tmp_path / 't'), '--max-steps', '3', '--batch-size', '16', '--model-channels', '16',
                              '--sample-steps', '2', '--no-progress', '--warmup', '1', '--device', DEV])
    den = load_denoiser(out, CUDA)
    x = sample(den, prior_sample(den.schedule, (4, 3, 32, 32), device=CUDA), 4, sampler='heun')
    assert x.is_cuda and torch.isfinite(x).all()


def test_demo_quick_on_cuda_names_the_gpu(tmp_path):
    t = _teacher_dir(tmp_path)
    rows = main_demo(['--quick', '--teacher', str(t), '--out', str(tmp_path / 'demo'), '--no-progress', '--device', DEV,
                      '--extractor', 'standin'])
    assert [r['name'] for r in rows][0] == 'teacher'
    assert torch.cuda.get_device_name(0) in (tmp_path / 'demo' / 'report.md').read_text()


def test_sgp_student_on_cuda(tmp_path):
    "PD + the semantic gradient predictor (notebook 08) on CUDA: both SGP phases, export with its latent sampler, generation."
    from sferd_nb.semantic import SGPStudent
    from sferd_nb.metrics import generate
    t = _teacher_dir(tmp_path)
    dirs = main_distill(['--method', 'pd', '--semantic', '--latent-dim', '16', '--latent-steps', '4', '--teacher', str(t),
                         '--out', str(tmp_path / 'sgp'), '--teacher-steps', '2', '--max-steps', '4', '--batch-size', '8',
                         '--no-progress', '--device', DEV])
    den, rec = load_student(dirs[-1], CUDA)
    assert isinstance(den, SGPStudent) and next(den.parameters()).device.type == CUDA.type
    x = generate(den, 4, rec['steps'], recipe=rec, seed=0)
    assert x.shape == (4, 3, 32, 32)


@pytest.mark.parametrize('disc', ['projected', 'resnet', 'teacher'])
def test_gdd_with_r1_on_cuda(tmp_path, disc):
    "GDD (notebook 12) on CUDA with R1 at every step: R1's double backward through each discriminator (the teacher D has attention)."
    teacher = load_denoiser(_teacher_dir(tmp_path), CUDA)
    dirs = distill(teacher, _ds(), tmp_path / 'gdd', method='gdd', disc=disc, r1_every=1, max_steps=2, batch_size=8,
                   progress=False, sample_every=-1, log_every=1)
    log = [json.loads(l) for l in (dirs[-1] / 'metrics.jsonl').read_text().splitlines()]
    assert log[-1]['step'] == 2 and all(r['loss'] == r['loss'] and r['d_loss'] == r['d_loss'] for r in log)
    den, rec = load_student(dirs[-1], CUDA)
    x = student_sample(den, prior_sample(den.schedule, (4, 3, 32, 32), device=CUDA), 1, rec)
    assert torch.isfinite(x).all()


def test_noise_drawn_with_a_generator_on_the_gpu():
    "consistency_step (multistep CD / GDD sampling) and predict_trajectory (Eq. 8) take a generator on the model's device."
    from sferd_nb.analysis import predict_trajectory
    from sferd_nb.distill import consistency_step
    from sferd_nb.samplers import GaussianDenoiser
    den = GaussianDenoiser(get_schedule('edm'), torch.zeros(3, 8, 8, device=CUDA), 0.5)
    x = torch.randn(2, 3, 8, 8, device=CUDA)
    pred = den(x, 2.0)
    a, b = (consistency_step(den, x, 2.0, 1.0, pred, generator=torch.Generator(CUDA).manual_seed(0)) for _ in range(2))
    assert a.device == x.device and torch.equal(a, b) and not torch.equal(a, pred.x0)
    a, b = (predict_trajectory(den, x, steps=3, generator=torch.Generator(CUDA).manual_seed(0), resolutions=()) for _ in range(2))
    assert a.eps.device == x.device and torch.equal(a.eps, b.eps) and torch.isfinite(a.eps_hat).all()
