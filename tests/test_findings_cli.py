"`mtp_findings` end to end on the tiny trunk, in its own process: the runs, the aggregate over seeds, the paired differences, the files, resuming; the recipe studies (lr, length, clip, steps) with the best LR planned after the grid; and its bad input."
import json, statistics
import pytest
from mtp_nb.findings import FINDINGS_FILES, STUDIES
from mtp_nb.recipe import LR_GRID, RECIPE_STUDIES, lr_arm
from conftest import refused, run_cmd, run_main

ARGS = ('--study', 'accumulation', '--seeds', '0,1', '--n_train', 16, '--n_eval', 16, '--epochs', 1, '--n_heads', 3)

@pytest.fixture(scope='module')
def study(trunk, tmp_path_factory):
    "The accumulation study at two seeds, of runs a step or four long."
    tmp = tmp_path_factory.mktemp('findings')
    r = run_cmd('mtp_findings', '--out_dir', 'f', '--trunk', trunk, *ARGS, cwd=tmp, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return tmp, r

def test_study_aggregates_every_run(study):
    tmp, r = study
    for pattern in FINDINGS_FILES.values(): assert (tmp/'f'/pattern.format('accumulation')).stat().st_size > 0, pattern
    data = json.loads((tmp/'f'/'accumulation.json').read_text())
    runs = {(x['arm'], x['seed']): x for x in data['runs']}
    assert sorted(runs) == sorted((a, s) for a in STUDIES['accumulation'][1] for s in (0, 1))
    assert runs['no-accumulation', 0]['steps'] == 4 * runs['experiment', 0]['steps'] == 4       # batch 4 against batch 16
    assert runs['sum-of-means', 0]['grad_norm'] > 2 * runs['experiment', 0]['grad_norm']          # 4 micro-batches summed
    for a in data['aggregate']:
        seeds = [runs[a['arm'], s] for s in (0, 1)]
        assert a['n_seeds'] == 2
        for k in range(3):
            accs = [x['accuracy'][k] for x in seeds]
            assert a['accuracy'][0][k] == pytest.approx(sum(accs) / 2) and a['accuracy'][1][k] == pytest.approx(statistics.stdev(accs))
        cvs = [x['grad_norm_cv'] for x in seeds]
        assert a['grad_norm_cv'] == pytest.approx([sum(cvs) / 2, statistics.stdev(cvs)])
        curves = [x['curve_far'] for x in seeds]
        assert a['curve_far'][0] == pytest.approx([sum(c) / 2 for c in zip(*curves)])
    md = (tmp/'f'/'accumulation.md').read_text()
    diffs = [runs['no-accumulation', s]['consistency'] - runs['experiment', s]['consistency'] for s in (0, 1)]
    row = next(l for l in md.splitlines() if l.startswith('| no-accumulation | ') and ' pt' in l)
    assert f"{statistics.fmean(diffs) * 100:+.1f} ± {statistics.stdev(diffs) * 100:.1f} pt" in row.split(' | ')[-1], row
    assert 'mtp_findings --study accumulation --out_dir f --seeds 0,1' in md
    assert r.stdout.count('] experiment-seed') == 2 and '[8/8] sum-of-means-seed1' in r.stdout   # one line per run as it starts

def test_study_resumes_what_is_missing(study, trunk):
    tmp, _ = study
    final = tmp/'f'/'mean-of-means-seed1'/'final'/'mtp_heads.safetensors'
    before, kept = final.stat().st_mtime_ns, json.loads((tmp/'f'/'measures'/'experiment-seed0.json').read_text())
    (tmp/'f'/'measures'/'mean-of-means-seed1.json').unlink()
    r = run_cmd('mtp_findings', '--out_dir', 'f', '--trunk', trunk, *ARGS, cwd=tmp, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert '[6/8] mean-of-means-seed1' in r.stdout and 'experiment-seed0' not in r.stdout.split('###')[0]
    assert final.stat().st_mtime_ns == before                                    # a finished run is measured again, not retrained
    assert json.loads((tmp/'f'/'measures'/'experiment-seed0.json').read_text()) == kept

def test_bad_input_is_one_line(tmp_path):
    for i, (args, message) in enumerate(((['--study', 'warmup'], '--study takes names from all, recipe, accumulation, freeze, scale, heads, lr, length, clip, steps'),
                          (['--seeds', 'x'], '--seeds must be whole numbers separated by commas'),
                          (['--epochs', 0], '--epochs must be a whole number >= 1, got 0'),
                          (['--n_train', 0], '--n_train must be a whole number >= 1, got 0'),
                          (['--study', 'lr', '--prompts', 0], '--prompts must be a whole number >= 1, got 0'),
                          (['--n_heads', 1], '--n_heads must be a whole number >= 2, got 1'))):   # the first through its real script, the rest in this process
        refused((run_cmd if i == 0 else run_main)('mtp_findings', *args, cwd=tmp_path), 'mtp_findings', message)

RECIPE = ('--study', 'recipe', '--seeds', '0', '--n_train', 16, '--n_eval', 16, '--epochs', 1, '--n_heads', 3, '--prompts', 2)

def test_recipe_studies(trunk, tmp_path):
    "The four recipe studies, one seed, runs of 1 to 8 steps: every arm measured with its tokens per pass, the best LR's arms after the grid."
    r = run_cmd('mtp_findings', '--out_dir', 'f', '--trunk', trunk, *RECIPE, cwd=tmp_path, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    best = r.stdout.split('the best LR of the lr study: ')[1].split()[0]
    assert best in [lr_arm(lr) for lr in LR_GRID], best
    grid = [json.loads((tmp_path/'f'/'measures'/f'{lr_arm(lr)}-seed0.json').read_text()) for lr in LR_GRID]
    assert best == lr_arm(LR_GRID[max(range(4), key=lambda i: sum(grid[i]['accuracy'][1:]))])        # the far heads' best
    assert r.stdout.index('the best LR') < r.stdout.index(f'{best}-trunk-0-seed0')                   # planned once it is known
    for name, (question, base, arms, _) in RECIPE_STUDIES.items():
        data = json.loads((tmp_path/'f'/f'{name}.json').read_text())
        runs = {x['arm']: x for x in data['runs']}
        assert list(runs) == list(dict.fromkeys(a.format(best=best) for a in arms)) and data['question'] == question
        for x in runs.values(): assert 1 <= x['tokens_per_pass'] <= 3 and len(x['curve_step']) == len(x['curve_far'])
        md = (tmp_path/'f'/f'{name}.md').read_text()
        assert f'| arm − {base} |' in md and (tmp_path/'f'/f'{name}.png').stat().st_size > 0
    steps = {a: x['steps'] for a, x in ((x['arm'], x) for n in ('length', 'steps') for x in json.loads((tmp_path/'f'/f'{n}.json').read_text())['runs'])}
    assert (steps['lr-1e-4-1ep'], steps['lr-1e-4'], steps['lr-1e-4-8ep']) == (1, 3, 8)                # 16 examples, batch 16
    assert steps['equal-steps'] == steps['no-accumulation'] == 4 * steps['experiment'] == 4
    clip = {x['arm']: x for x in json.loads((tmp_path/'f'/'clip.json').read_text())['runs']}
    for arm, limit in (('experiment', 1.0), ('clip-10', 10.0), ('clip-none', 0.0)):                 # clipped: the share of logged norms over the clip
        assert json.loads((tmp_path/'f'/f'{arm}-seed0'/'config.json').read_text())['grad_clip'] == limit
        norms = [json.loads(l)['grad_norm'] for l in (tmp_path/'f'/f'{arm}-seed0'/'metrics.jsonl').read_text().splitlines() if '"train"' in l]
        assert clip[arm]['clipped'] == pytest.approx(sum(0 < limit < n for n in norms) / len(norms)) and clip[arm]['grad_norm'] > 0
    cfg = json.loads((tmp_path/'f'/'lr-2e-3-8ep-seed0'/'config.json').read_text()) if best == 'lr-2e-3' else None
    if cfg: assert (cfg['lr'], cfg['epochs']) == (2e-3, 8)
