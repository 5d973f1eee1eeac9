"""Issue 31's findings, each reproduced as a user or an adversary would: the demo deletes only what it made, runs into one
folder do not collide, wrong numbers do not pass evaluation, settings are honoured or refused, and errors are one line.
Runs the installed console scripts."""
import errno, json, signal, subprocess, time
from pathlib import Path

import pytest
import torch

from sferd_nb.runs import LOCK_NAME

from conftest import BIN, SCRIPT_ENV as ENV, one_line_error, run_script as run

QUICK = ['--quick', '--no-progress', '--device', 'cpu']


def _export(path, res=32, zero=False, param='edm'):
    "A tiny teacher export; `zero=True`: every weight 0, so the network outputs 0 ('x0': flat grey images; 'eps': x0 = x_t)."
    from conftest import export_tiny_teacher
    return export_tiny_teacher(path, img_resolution=res, zero=zero, param=param)


@pytest.fixture(scope='module')
def demo_run(tmp_path_factory, teacher):
    "One quick demo (PD only) into a folder; each test works on its own copy (`shutil.copytree` keeps the run mark)."
    out = tmp_path_factory.mktemp('demo') / 'demo'
    r = run('sferd-demo', *QUICK, '--methods', 'pd', '--teacher', teacher, '--out', out)
    assert r.returncode == 0, r.stderr[-1500:]
    return out


def _copy(demo_run, tmp_path) -> Path:
    import shutil
    out = tmp_path / 'demo'
    shutil.copytree(demo_run, out, symlinks=True, ignore=shutil.ignore_patterns(LOCK_NAME))
    return out


def _tree(d: Path) -> dict:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob('*')) if p.is_file() and p.name != LOCK_NAME}


# --- 1, 2: the demo deletes only what its own run mark says it made, after validating and loading ---------------------

def test_demo_rerun_keeps_the_users_folders_and_refuses_to_write_into_them(tmp_path, teacher, demo_run):
    out = _copy(demo_run, tmp_path)
    mark = json.loads((out / 'sferd_run.json').read_text())
    assert set(mark['made']) >= {'pd', 'report.md', 'results.json', 'samples_pd.png', 'samples_teacher.png'}, mark
    # the user's things inside the demo's folder: a copy of the teacher (used as --teacher), a sferd-distill run in cd_ag/
    (out / 'teacher').mkdir(); [(out / 'teacher' / f.name).write_bytes(f.read_bytes()) for f in teacher.iterdir()]
    (out / 'cd_ag').mkdir(); (out / 'cd_ag' / 'NOTES.txt').write_text('mine')
    before = _tree(out / 'teacher'), _tree(out / 'cd_ag')
    r = run('sferd-demo', *QUICK, '--methods', 'pd', '--teacher', out / 'teacher', '--out', out)
    assert r.returncode == 0, r.stderr[-1500:]
    assert (_tree(out / 'teacher'), _tree(out / 'cd_ag')) == before               # neither is touched
    # a row that would be written into the user's folder is refused, and nothing at all is removed
    report = (out / 'report.md').read_bytes()
    one_line_error(run('sferd-demo', *QUICK, '--methods', 'pd,cd+ag', '--teacher', teacher, '--out', out), 'sferd-demo',
                   'was not made by sferd-demo')
    assert (out / 'report.md').read_bytes() == report and (out / 'pd' / 'stage0_1steps' / 'model.safetensors').is_file()
    assert (_tree(out / 'teacher'), _tree(out / 'cd_ag')) == before


def test_demo_refuses_a_symlinked_method_folder_and_keeps_its_target(tmp_path, teacher, demo_run):
    out, elsewhere = _copy(demo_run, tmp_path), tmp_path / 'elsewhere'
    elsewhere.mkdir(); (elsewhere / 'keep.txt').write_text('keep')
    import shutil; shutil.rmtree(out / 'pd'); (out / 'pd').symlink_to(elsewhere)
    one_line_error(run('sferd-demo', *QUICK, '--methods', 'pd', '--teacher', teacher, '--out', out), 'sferd-demo', 'a symbolic link')
    assert (elsewhere / 'keep.txt').read_text() == 'keep' and (out / 'pd').is_symlink()


def test_demo_that_fails_on_a_setting_keeps_the_previous_report(tmp_path, teacher, demo_run):
    out = _copy(demo_run, tmp_path)
    before = _tree(out)
    one_line_error(run('sferd-demo', *QUICK, '--methods', 'pd', '--teacher', teacher, '--out', out, '--extractor', 'inception',
                       '--inception-weights', tmp_path / 'nope.pth'), 'sferd-demo', 'does not exist')
    after = _tree(out)
    assert {k: v for k, v in after.items() if k != 'sferd_run.json'} == {k: v for k, v in before.items() if k != 'sferd_run.json'}


# --- 3: wrong numbers do not pass ------------------------------------------------------------------------------------

def test_eval_refuses_a_model_of_another_resolution(tmp_path):
    t = _export(tmp_path / 'in64', res=64)
    one_line_error(run('sferd-eval', '--checkpoint', t, '--num-samples', '8', '--seeds', '0', '--extractor', 'standin',
                       '--out', tmp_path / 'ev'), 'sferd-eval', 'makes 64x64 images but cifar10-subset has 32x32')
    assert not (tmp_path / 'ev').exists()


@pytest.mark.parametrize('param, flag', [('x0', 'near-zero variance'), ('eps', 'equal to their inputs')])
def test_eval_flags_degenerate_samples_and_reports_no_number(tmp_path, param, flag):
    t = _export(tmp_path / param, zero=True, param=param)                 # flat grey images / a model that returns its input
    args = ['--checkpoint', t, '--steps', '2', '--num-samples', '16', '--seeds', '0', '--extractor', 'standin',
            '--denoise-images', '4']
    one_line_error(run('sferd-eval', *args, '--out', tmp_path / 'ev'), 'sferd-eval', flag)
    row = json.loads((tmp_path / 'ev' / 'eval.json').read_text())['rows'][0]
    assert flag in row['degenerate'] and row['fid_mean'] is None and row['fid'] is None
    r = run('sferd-eval', *args, '--out', tmp_path / 'ev2', '--score-degenerate')   # asked to score them anyway
    assert r.returncode == 0, r.stderr[-1000:]
    row = json.loads((tmp_path / 'ev2' / 'eval.json').read_text())['rows'][0]
    assert flag in row['degenerate'] and row['fid_mean'] > 0


def test_eval_of_a_real_model_is_not_flagged():
    import sferd_nb
    from sferd_nb.metrics import degenerate_flags
    t = sferd_nb.load('cifar10_uncond', 'cpu')
    for steps in (1, 2, 4):                                          # the course teacher, even where its samples are poor
        x = t.sample(64, steps, uint8=True)
        assert degenerate_flags(x, t.batch_inputs(0, 64)[0]) == [], steps
    assert degenerate_flags(x[:1].repeat(64, 1, 1, 1)) == ['collapsed']        # one 4-step image 64 times


# --- 4, 6: one job per folder; temporary files follow no link ---------------------------------------------------------

def test_two_runs_into_one_folder_the_second_is_refused(tmp_path, teacher):
    out = tmp_path / 'run'
    first = subprocess.Popen([str(BIN / 'sferd-distill'), '--teacher', str(teacher), '--out', str(out), '--max-steps', '400',
                              '--batch-size', '4', '--teacher-steps', '2', '--no-progress', '--device', 'cpu'],
                             env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):
            if (out / LOCK_NAME).exists(): break
            time.sleep(0.1)
        msg = one_line_error(run('sferd-distill', '--teacher', teacher, '--out', out, '--max-steps', '2', '--batch-size', '4',
                                 '--teacher-steps', '2', '--no-progress', '--device', 'cpu', '--seed', '1'),
                             'sferd-distill', 'is in use by sferd-distill')
        assert f'process {first.pid}' in msg
    finally:
        first.send_signal(signal.SIGKILL); first.wait()
    r = run('sferd-distill', '--teacher', teacher, '--out', out, '--max-steps', '2', '--batch-size', '4', '--teacher-steps', '2',
            '--no-progress', '--device', 'cpu', '--resume')                 # the killed run's lock is taken over
    assert r.returncode == 0, r.stderr[-1500:]


def test_eval_json_is_written_without_following_a_planted_link(tmp_path, teacher):
    out, outside = tmp_path / 'ev', tmp_path / 'outside.txt'
    out.mkdir(); outside.write_text('keep')
    (out / 'sferd_run.json').write_text(json.dumps(dict(command='sferd-eval')))
    for name in ('eval.json.tmp', '.eval.json.tmp'): (out / name).symlink_to(outside)
    r = run('sferd-eval', '--checkpoint', teacher, '--steps', '1', '--num-samples', '8', '--seeds', '0', '--extractor', 'standin',
            '--denoise-images', '0', '--out', out, '--score-degenerate')
    assert r.returncode == 0, r.stderr[-1000:]
    assert outside.read_text() == 'keep' and not (out / 'eval.json').is_symlink()


# --- 5, 7: the run's data and settings are recorded, honoured or refused ------------------------------------------------

def test_resume_with_another_data_set_is_refused(tmp_path, teacher):
    out = tmp_path / 'pd'
    args = ['--teacher', teacher, '--out', out, '--batch-size', '4', '--teacher-steps', '2', '--no-progress', '--device', 'cpu']
    assert run('sferd-distill', *args, '--max-steps', '2').returncode == 0
    cfg = json.loads((out / 'stage0_1steps' / 'config.json').read_text())
    assert cfg['data'] == 'cifar10-subset' and cfg['train']['lr'] == 5e-5      # the data and the lr used, recorded
    one_line_error(run('sferd-distill', *args, '--max-steps', '3', '--resume', '--data', f'cifar10:{tmp_path}/other'),
                   'sferd-distill', 'was distilled on --data cifar10-subset')


@pytest.mark.parametrize('cmd, args, msg', [
    ('sferd-distill', ['--teacher', '{teacher}', '--lr', '0'], 'setting lr (--lr) must be > 0, got 0.0'),
    ('sferd-distill', ['--teacher', '{teacher}', '--method', 'gdd', '--d-lr', '0'], 'setting d_lr (--d-lr) must be > 0'),
    ('sferd-distill', ['--teacher', '{teacher}', '--mu', '1'], 'only apply to other methods'),
    ('sferd-distill', ['--teacher', '{teacher}', '--method', 'cd', '--mu', '1'], 'must be in [0, 1)'),
    ('sferd-distill', ['--teacher', '{teacher}', '--w', '0.5'], 'add --attention-guidance or drop them'),
    ('sferd-eval', ['--checkpoint', '{teacher}', '--steps', ''], 'expected at least one integer'),
    ('sferd-eval', ['--checkpoint', '{teacher}', '--seeds', '0,0,0'], 'more than once'),
    ('sferd-eval', ['--checkpoint', '{teacher}', '--denoise-images', '100000'], 'test split has 1017 images'),
    ('sferd-demo', ['--methods', ''], 'name at least one method'),
])
def test_settings_are_honoured_or_refused_never_replaced(tmp_path, teacher, cmd, args, msg):
    args = [a.replace('{teacher}', str(teacher)) for a in args]
    r = run(cmd, *args, '--out', tmp_path / 'o')
    if 'expected at least one integer' in msg:                              # argparse's own usage error: exit status 2
        assert r.returncode == 2 and msg in r.stderr, r.stderr[-800:]
    else:
        one_line_error(r, cmd, msg)
    assert not (tmp_path / 'o').exists()                                    # refused before the output folder is made


# --- 8: one line for what the user or the machine must fix -------------------------------------------------------------

@pytest.mark.parametrize('cfg, msg', [(dict(type=[]), "'type' must be a string"),
                                      (dict(distill='pd'), "'distill' must be an object")])
def test_a_broken_config_json_is_one_line(tmp_path, teacher, cfg, msg):
    t = tmp_path / 'broken'; t.mkdir()
    (t / 'model.safetensors').write_bytes((teacher / 'model.safetensors').read_bytes())
    (t / 'config.json').write_text(json.dumps(dict(json.loads((teacher / 'config.json').read_text()), **cfg)))
    one_line_error(run('sferd-eval', '--checkpoint', t, '--num-samples', '8', '--out', tmp_path / 'ev'), 'sferd-eval', msg)


def test_a_full_disk_during_a_checkpoint_is_one_line_and_the_last_checkpoint_is_kept(tmp_path, teacher, monkeypatch):
    import sferd_nb.train as T
    from sferd_nb.cli import main_distill
    ck, saved, real_save = tmp_path / 'pd' / 'stage0_1steps' / 'ckpt.pt', [], torch.save
    def save_then_full(obj, f, *a, **k):                                    # the step-2 checkpoint is written, then the disk is full
        if saved: raise OSError(errno.ENOSPC, 'No space left on device', str(ck))
        real_save(obj, f, *a, **k); saved.append(1)
    monkeypatch.setattr(T.torch, 'save', save_then_full)
    with pytest.raises(SystemExit) as e:
        main_distill(['--teacher', str(teacher), '--out', str(tmp_path / 'pd'), '--batch-size', '4', '--teacher-steps', '2',
                      '--no-progress', '--device', 'cpu', '--ckpt-every', '2', '--max-steps', '4'])
    msg = str(e.value.code)
    assert msg.startswith('sferd-distill: error: No space left on device') and 'the last checkpoint is kept' in msg and '\n' not in msg
    assert torch.load(ck, weights_only=True)['step'] == 2                   # the last good checkpoint survives
    assert not [p for p in ck.parent.iterdir() if p.name.endswith('.tmp')]


# --- 9: a pip user outside a checkout -----------------------------------------------------------------------------------

def test_course_teachers_by_name_and_eval_writes_into_the_working_directory(tmp_path):
    r = run('sferd-eval', '--checkpoint', 'cifar10_uncond', '--steps', '1', '--num-samples', '8', '--seeds', '0',
            '--extractor', 'standin', '--denoise-images', '4', cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-1500:]
    assert (tmp_path / 'eval_cifar10_uncond' / 'eval.json').is_file()
    from sferd_nb.data import asset_path
    assert not (asset_path('teachers', 'cifar10_uncond') / 'eval').exists()
    one_line_error(run('sferd-eval', '--checkpoint', 'cifar10_nope', cwd=tmp_path), 'sferd-eval', 'cifar10_uncond, cifar10_cond')


def test_reference_statistics_show_progress(tmp_path):
    from sferd_nb.metrics import load_extractor, reference_stats
    import contextlib, io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        reference_stats(load_extractor('standin'), data='cifar10-subset', split='test', max_images=40, cache=False, progress=True)
    assert 'computing the reference statistics of 40 images of cifar10-subset[test]' in buf.getvalue()
