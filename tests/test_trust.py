"""Issue 13's findings, each reproduced: nothing of the user's is lost, no wrong number looks right, every user error is
one line with a non-zero exit. Runs the installed console scripts as a user would."""
import json, subprocess

import pytest
import torch

from sferd_nb.diffusion import Denoiser, get_schedule
from sferd_nb.io import export_denoiser
from sferd_nb.unet import build_unet

from conftest import BIN, SCRIPT_ENV as ENV, one_line_error, run_script as run
TEACHER_ARGS = ['--model-channels', '16', '--num-blocks', '1', '--sample-steps', '2', '--no-progress', '--warmup', '1',
                '--batch-size', '8']


def test_demo_never_deletes_a_folder_it_did_not_make(tmp_path):
    runs = tmp_path / 'runs'; runs.mkdir(); (runs / 'NOTES.txt').write_text('notes')
    r = run('sferd-demo', '--quick', '--teacher', tmp_path / 'nope', '--out', runs)
    one_line_error(r, 'sferd-demo', 'does not exist')
    r = run('sferd-demo', '--quick', '--out', runs, '--no-progress', '--methods', 'pd')
    one_line_error(r, 'sferd-demo', 'not made by sferd-demo')
    assert (runs / 'NOTES.txt').read_text() == 'notes'
    r = run('sferd-demo', '--quick', '--out', '.', '--no-progress', cwd=runs)
    one_line_error(r, 'sferd-demo', 'not made by sferd-demo')
    assert sorted(p.name for p in runs.iterdir()) == ['NOTES.txt']


def test_train_teacher_never_overwrites_an_export(tmp_path, teacher):
    files = sorted(p.name for p in teacher.iterdir())                # the session's shared teacher: nothing may be added
    before = (teacher / 'model.safetensors').read_bytes(), (teacher / 'config.json').read_text()
    r = run('sferd-train-teacher', '--out', teacher, '--config', 'tiny', '--max-steps', '1', *TEACHER_ARGS)
    one_line_error(r, 'sferd-train-teacher', 'not made by sferd-train-teacher')
    assert ((teacher / 'model.safetensors').read_bytes(), (teacher / 'config.json').read_text()) == before
    assert sorted(p.name for p in teacher.iterdir()) == files


def test_diverged_training_exports_nothing_and_eval_refuses_nan(tmp_path, teacher):
    out = tmp_path / 'div'
    r = run('sferd-train-teacher', '--out', out, '--lr', '1e6', '--max-steps', '3', '--ckpt-every', '-1', *TEACHER_ARGS)
    one_line_error(r, 'sferd-train-teacher', 'non-finite')
    assert not (out / 'model.safetensors').exists()
    nan = Denoiser(build_unet('tiny', model_channels=16, num_blocks=1, attn_resolutions=(8,)), get_schedule('edm'), parameterization='edm')
    with torch.no_grad(): nan.net.out[-1].bias.fill_(float('nan')) if hasattr(nan.net, 'out') else next(nan.parameters()).fill_(float('nan'))
    with pytest.raises(FloatingPointError, match='non-finite'): export_denoiser(nan, tmp_path / 'nan')


def test_resume_refuses_a_changed_run(tmp_path, teacher):
    out = tmp_path / 'pd'
    base = ['--teacher', teacher, '--out', out, '--teacher-steps', '2', '--max-steps', '1', '--batch-size', '4', '--no-progress']
    assert run('sferd-distill', *base).returncode == 0
    one_line_error(run('sferd-distill', *base, '--resume', '--attention-guidance'), 'sferd-distill', 'attention_guidance')
    other = export_denoiser(Denoiser(build_unet('tiny', model_channels=16, num_blocks=1, attn_resolutions=(8,)),
                                     get_schedule('edm'), parameterization='edm'), tmp_path / 'other', config=dict(data='cifar10-subset'))
    base2 = [a if a != teacher else other for a in base]
    one_line_error(run('sferd-distill', *base2, '--resume'), 'sferd-distill', 'teacher')
    t = tmp_path / 't'
    assert run('sferd-train-teacher', '--out', t, '--max-steps', '2', '--ckpt-every', '1', *TEACHER_ARGS).returncode == 0
    import shutil
    from sferd_nb.io import load_denoiser                                       # a checkpoint under any name is still one
    shutil.copy(t / 'ckpt.pt', tmp_path / 'ckpt.pt.bak'); assert load_denoiser(tmp_path / 'ckpt.pt.bak') is not None
    one_line_error(run('sferd-train-teacher', '--out', t, '--max-steps', '3', '--resume', '--lr', '5e-4', *TEACHER_ARGS),
                   'sferd-train-teacher', "'lr'")


def test_torn_metrics_line_does_not_break_resume(tmp_path):
    t = tmp_path / 't'
    assert run('sferd-train-teacher', '--out', t, '--max-steps', '2', '--ckpt-every', '1', '--log-every', '1', *TEACHER_ARGS).returncode == 0
    with open(t / 'metrics.jsonl', 'a') as f: f.write('{"step": 3, "lo')
    r = run('sferd-train-teacher', '--out', t, '--max-steps', '3', '--resume', *TEACHER_ARGS)
    assert r.returncode == 0, r.stderr[-1500:]
    assert [json.loads(l)['step'] for l in (t / 'metrics.jsonl').read_text().splitlines()] == [1, 2, 3]


def _corrupt_npz(tmp_path):
    from sferd_nb.data import data_dir, SUBSET_FILE
    d = tmp_path / 'data'; d.mkdir()
    b = bytearray((data_dir() / SUBSET_FILE).read_bytes()); b[len(b) // 2: len(b) // 2 + 64] = bytes(64)
    (d / SUBSET_FILE).write_bytes(bytes(b))
    return d


BAD = [  # command, arguments, what the one line says
    ('sferd-train-teacher', ['--batch-size', '0'], '--batch-size must be >= 1'),
    ('sferd-train-teacher', ['--model-channels', '0'], '--model-channels must be >= 1'),
    ('sferd-train-teacher', ['--data', 'cifar10:/nonexistent'], ''),
    ('sferd-distill', ['--teacher', '{teacher}', '--batch-size', '0'], '--batch-size must be >= 1'),
    ('sferd-distill', ['--teacher', '{teacher}', '--teacher-steps', '6'], '--teacher-steps / --student-steps'),
    ('sferd-distill', ['--teacher', '{nope}'], 'does not exist'),
    ('sferd-analyze', ['--checkpoint', '{nope}'], 'does not exist'),
    ('sferd-analyze', ['--checkpoint', '{badjson}'], 'config.json is not valid JSON'),
    ('sferd-eval', ['--checkpoint', '{teacher}', '--num-samples', '0'], '--num-samples must be >= 1'),
    ('sferd-eval', ['--checkpoint', '{mismatch}'], 'do not fit its config.json'),
    ('sferd-data', ['--data', 'imagenet64:/nonexistent'], ''),
    ('sferd-demo', ['--quick', '--teacher', '{nope}'], 'does not exist'),
    ('sferd-distill', ['--teacher', '{teacher}', '--device', 'gpu0'], 'not a torch device'),
    # the review of 2026-12-05 (a CLI audit): each of these used to pass silently, run long first, or end in a traceback
    ('sferd-train-teacher', ['--dropout', '1.5'], '--dropout must be in [0, 1)'),
    ('sferd-train-teacher', ['--dropout', 'nan'], "'nan' is not a finite number"),
    ('sferd-train-teacher', ['--ema-halflife-kimg', '-1'], '--ema-halflife-kimg must be > 0'),
    ('sferd-distill', ['--teacher', '{teacher}', '--method', 'gdd', '--gamma', 'nan'], "'nan' is not a finite number"),
    ('sferd-distill', ['--teacher', '{teacher}', '--method', 'sferd-pd', '--latent-steps', '-5'], '--latent-steps must be >= 1'),
    ('sferd-distill', ['--teacher', '{teacher}/config.json'], 'is not a model file'),
    ('sferd-distill', ['--teacher', '{teacher}', '--device', 'meta'], 'runs on cpu, cuda or mps'),
    ('sferd-eval', ['--checkpoint', '{teacher}', '--num-samples', '1'], '--num-samples must be >= 2'),
    ('sferd-eval', ['--checkpoint', '{teacher}', '--denoise-images', '-1'], '--denoise-images must be >= 0'),
    ('sferd-demo', ['--quick', '--methods', 'pd,pd'], 'given more than once'),
    ('sferd-data', ['--device', 'nonsense'], 'not a torch device'),
]


@pytest.mark.parametrize('cmd,args,says', BAD, ids=[f'{c}-{i}' for i, (c, _, _) in enumerate(BAD)])
def test_bad_input_is_one_line_and_keeps_the_out_folder(tmp_path, teacher, cmd, args, says):
    out = tmp_path / 'out'; out.mkdir(); (out / 'SENTINEL').write_text('mine')
    (out / 'sferd_run.json').write_text(json.dumps(dict(command=cmd)))           # an earlier run of the same command
    badjson = tmp_path / 'badjson'; export_denoiser(Denoiser(build_unet('tiny', model_channels=16, num_blocks=1), get_schedule('edm'), parameterization='edm'), badjson)
    (badjson / 'config.json').write_text('{"unet": ')
    mismatch = tmp_path / 'mismatch'; export_denoiser(Denoiser(build_unet('tiny', model_channels=16, num_blocks=1), get_schedule('edm'), parameterization='edm'), mismatch)
    cfg = json.loads((mismatch / 'config.json').read_text()); cfg['unet']['model_channels'] = 32
    (mismatch / 'config.json').write_text(json.dumps(cfg))
    subs = dict(teacher=teacher, nope=tmp_path / 'nope', badjson=badjson, mismatch=mismatch)
    args = [a.format(**{k: str(v) for k, v in subs.items()}) for a in args]
    r = run(cmd, *args, '--out', out, *(['--no-progress'] if cmd in ('sferd-distill', 'sferd-demo') else []))
    one_line_error(r, cmd, says)
    assert (out / 'SENTINEL').read_text() == 'mine'


def test_corrupt_subset_is_a_one_line_error(tmp_path):
    d = _corrupt_npz(tmp_path)
    r = subprocess.run([str(BIN / 'sferd-data'), '--out', str(tmp_path / 'o')], capture_output=True, text=True,
                       env=dict(ENV, SFERD_NB_DATA=str(d)), timeout=300)
    one_line_error(r, 'sferd-data')


# ---- the review of 2026-12-05: folders that are not a command's own, and runs that must not mix ----
def test_a_checkpoint_folder_without_a_mark_is_not_the_demos_or_distills(tmp_path, teacher):
    "A folder with a ckpt.pt but no sferd_run.json used to count as every command's own; the demo then cleared it."
    mine = tmp_path / 'myexp'; (mine / 'pd').mkdir(parents=True)
    (mine / 'ckpt.pt').write_bytes(b'x'); (mine / 'report.md').write_text('notes'); (mine / 'pd' / 'important.txt').write_text('x')
    one_line_error(run('sferd-demo', '--quick', '--methods', 'cd', '--extractor', 'standin', '--no-progress', '--out', mine),
                   'sferd-demo', 'not made by sferd-demo')
    one_line_error(run('sferd-distill', '--teacher', teacher, '--out', mine, '--no-progress'), 'sferd-distill', 'not made by')
    assert sorted(str(p.relative_to(mine)) for p in mine.rglob('*')) == ['ckpt.pt', 'pd', 'pd/important.txt', 'report.md']


def test_train_teacher_never_overwrites_a_finished_teacher_of_its_own(tmp_path):
    done = tmp_path / 'done'
    export_denoiser(Denoiser(build_unet('tiny', model_channels=16, num_blocks=1), get_schedule('edm'), parameterization='edm'), done)
    (done / 'sferd_run.json').write_text(json.dumps(dict(command='sferd-train-teacher')))   # its own run, ckpt.pt removed
    before = (done / 'model.safetensors').read_bytes()
    one_line_error(run('sferd-train-teacher', '--out', done, '--config', 'tiny', '--max-steps', '1', *TEACHER_ARGS),
                   'sferd-train-teacher', 'finished teacher')
    assert (done / 'model.safetensors').read_bytes() == before


def test_distill_runs_of_other_methods_or_steps_never_mix(tmp_path, teacher):
    out = tmp_path / 'pd'
    base = ['--teacher', teacher, '--out', out, '--max-steps', '1', '--batch-size', '4', '--no-progress']
    assert run('sferd-distill', *base, '--teacher-steps', '2').returncode == 0
    one_line_error(run('sferd-distill', *base, '--method', 'cd', '--resume'), 'sferd-distill', 'holds another distillation')
    one_line_error(run('sferd-distill', *base, '--method', 'cd'), 'sferd-distill', 'holds another distillation')
    one_line_error(run('sferd-distill', *base, '--teacher-steps', '4', '--resume'), 'sferd-distill', 'holds another distillation')
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ['stage0_1steps']
    one_line_error(run('sferd-distill', *[a if a != out else tmp_path / 'typo' for a in base], '--resume'),
                   'sferd-distill', 'holds no run')
    assert not (tmp_path / 'typo').exists()
    rel = ['--teacher', teacher.name] + base[2:]                               # the same teacher by a relative path resumes
    r = run('sferd-distill', *rel, '--teacher-steps', '2', '--resume', cwd=teacher.parent)
    assert r.returncode == 0, r.stderr[-1500:]
    assert json.loads((out / 'stage0_1steps' / 'config.json').read_text())['teacher'] == str(teacher)   # as first given
    other = tmp_path / 'rel'                                                   # started by a relative path, resumed by the absolute one
    assert run('sferd-distill', *rel[:2], '--out', other, *rel[4:], '--teacher-steps', '2', cwd=teacher.parent).returncode == 0
    r = run('sferd-distill', '--teacher', teacher, '--out', other, *rel[4:], '--teacher-steps', '2', '--resume')
    assert r.returncode == 0, r.stderr[-1500:]


def test_eval_checks_its_out_folder_before_sampling(tmp_path, teacher):
    user = tmp_path / 'user'; user.mkdir(); (user / 'thesis.tex').write_text('x')
    r = run('sferd-eval', '--checkpoint', teacher, '--out', user, '--num-samples', '100000', '--seeds', '0', '--extractor', 'standin')
    one_line_error(r, 'sferd-eval', 'not made by sferd-eval')
    assert 'extractor:' not in r.stdout                                        # it stopped before the first sample
    assert [p.name for p in user.iterdir()] == ['thesis.tex']
