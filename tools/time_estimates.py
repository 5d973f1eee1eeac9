"""The time line of each lesson (`*Time: ~N minutes (reading + default run).*`, under "What you will learn"), computed
from the notebook instead of guessed (issue 34, item 6).

A learner's pace, stated once here: prose (markdown, equations included) at 150 words a minute, the code a lesson
shows (hidden cells and folded test cells left out) at 20 lines a minute, plus the notebook's default run (its cells
without `slow` / `gpu`, on 2 CPU cores: `nbdev_test --timing`, session 17 (08b, 10, 11, 12: wall time of `nbdev_test --path` alone, sessions 21-22; 06 and 09: session 26), one thread per notebook, ~5 s of start-up
added). The sum is rounded up to 5 minutes.

    python tools/time_estimates.py            # print the estimate and the stated time of every notebook
    python tools/time_estimates.py --write    # write the estimates into the notebooks (adds the line where missing)
    python tools/time_estimates.py --check    # exit 1 if a stated time is off the estimate (make test runs it via pytest)
"""
import argparse, json, math, re, sys
from pathlib import Path

NBS = Path(__file__).resolve().parents[1] / 'nbs'
WORDS_PER_MIN, CODE_LINES_PER_MIN = 150, 20
DEFAULT_RUN_S = {'00_data': 9, '00_runs': 8, '01_diffusion': 8, '02_samplers': 20, '03_unet': 7, '04_train': 22, '04b_io': 5,
                 '05_distill': 35, '06_analysis': 12, '07_guidance': 21, '08_semantic': 27, '08b_sgp': 38, '09_sferd': 28, '10_eval': 13,
                 '11_demo': 22, '12_gdd': 27, '13_cli': 10, 'index': 0}
LINE = re.compile(r'(\*Time: ~|\*\*Time:\*\* ~)(\d+)( minutes \(reading \+ default run)')   # '*Time: ~N ...*' or '**Time:** ~N ...'


def _src(c) -> str: return ''.join(c['source'])


def estimate(nb: dict, name: str) -> dict:
    "Words of prose, lines of shown code, seconds of default run, and the minutes they add up to (rounded up to 5)."
    words = code = 0
    for c in nb['cells']:
        s = _src(c)
        if c['cell_type'] == 'markdown': words += len(re.findall(r"[\w']+", LINE.sub('', s)))
        elif c['cell_type'] == 'code' and not re.match(r'#\|\s*hide', s) and '#| code-fold: true' not in s:
            code += sum(1 for l in s.splitlines() if l.strip() and not l.startswith('#|'))
    run = DEFAULT_RUN_S.get(name, 0)
    minutes = words / WORDS_PER_MIN + code / CODE_LINES_PER_MIN + run / 60
    return dict(words=words, code_lines=code, run_s=run, minutes=5 * math.ceil(minutes / 5))


def stated(nb: dict):
    "The minutes the notebook states, or None."
    for c in nb['cells']:
        m = LINE.search(_src(c))
        if m: return int(m.group(2))
    return None


def write(nb: dict, minutes: int) -> bool:
    "Set the time line to `minutes` (at the end of the 'What you will learn' list where it is missing); True if changed."
    text = f'*Time: ~{minutes} minutes (reading + default run).*'
    for c in nb['cells']:
        s = _src(c)
        if LINE.search(s):
            new = LINE.sub(lambda m: f'{m.group(1)}{minutes}{m.group(3)}', s, count=1)
            if new == s: return False
            c['source'] = new.splitlines(keepends=True); return True
    for c in nb['cells']:
        s = _src(c)
        if c['cell_type'] == 'markdown' and s.startswith('**What you will learn**'):
            m = re.search(r'((?:^- .*\n(?:  .*\n)*)+)', s + '\n', flags=re.M)         # the list of bullets
            if not m: break
            end = min(m.end(), len(s))
            new = s[:end].rstrip('\n') + f'\n\n{text}' + ('\n\n' + s[end:].lstrip('\n') if s[end:].strip() else '')
            c['source'] = new.splitlines(keepends=True); return True
    raise ValueError("no 'What you will learn' list to put the time line under")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--write', action='store_true'); ap.add_argument('--check', action='store_true')
    ap.add_argument('--nbs', type=Path, default=NBS)
    a = ap.parse_args(argv)
    bad = []
    for p in sorted(a.nbs.glob('*.ipynb')):
        nb = json.loads(p.read_text()); e = estimate(nb, p.stem); s = stated(nb)
        lines = sum(len(LINE.findall(_src(c))) for c in nb['cells'])
        if lines > 1: bad.append(f"{p.name}: {lines} time lines; keep one")
        print(f"{p.stem:14s} {e['words']:6d} words {e['code_lines']:5d} code lines {e['run_s']:4d} s run -> ~{e['minutes']:3d} min; stated {s}")
        if a.write and write(nb, e['minutes']):
            p.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')
        elif s != e['minutes']: bad.append(f"{p.name}: states {s} minutes, the estimate is {e['minutes']}")
    if a.check and bad:
        print('time lines off the estimate (python tools/time_estimates.py --write):\n  ' + '\n  '.join(bad), file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__': sys.exit(main())
