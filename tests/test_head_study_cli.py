"`mtp_head_study` end to end on the tiny trunk, in its own process: the runs, the aggregate over seeds, the files, resuming; and its bad input."
import json, statistics
from pathlib import Path
import pytest
from mtp_nb.head_study import STUDY_FILES
from conftest import refused, run_cmd, run_main

ARGS = ('--head_types', 'layer,medusa', '--recipes', 'tuned', '--seeds', '0,1', '--n_train', 16, '--n_eval', 16, '--n_prompts', 2,
        '--max_new_tokens', 8, '--n_heads', 3)

@pytest.fixture(scope='module')
def study(trunk, tmp_path_factory):
    "A two-design, two-seed study of 1-step runs."
    tmp = tmp_path_factory.mktemp('study')
    r = run_cmd('mtp_head_study', '--out_dir', 'study', '--trunk', trunk, *ARGS, cwd=tmp, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return tmp, r

def test_study_aggregates_every_run(study):
    tmp, r = study
    for name in STUDY_FILES.values(): assert (tmp/'study'/name).stat().st_size > 0, name
    data = json.loads((tmp/'study'/'study.json').read_text())
    runs = {(x['head_type'], x['seed']): x for x in data['runs']}
    assert sorted(runs) == [('layer', 0), ('layer', 1), ('medusa', 0), ('medusa', 1)]
    assert all(x['identical'] == x['prompts'] == 2 for x in runs.values())       # lossless for both designs
    assert runs['medusa', 0]['params'] < runs['layer', 0]['params']               # a ResBlock is smaller than a layer
    for a in data['aggregate']:
        seeds = [runs[a['head_type'], s] for s in (0, 1)]
        assert a['n_seeds'] == 2 and a['recipe'] == 'tuned'
        for k in range(3):
            accs = [x['accuracy'][k] for x in seeds]
            assert a['accuracy'][0][k] == pytest.approx(sum(accs) / 2) and a['accuracy'][1][k] == pytest.approx(statistics.stdev(accs))
        speeds = [x['speedup'] for x in seeds]
        assert a['speedup'] == pytest.approx([sum(speeds) / 2, statistics.stdev(speeds)])
    md = (tmp/'study'/'study.md').read_text()
    assert '| tuned | layer | 2 |' in md and '| tuned | medusa | 2 |' in md and 'mtp_head_study --out_dir study' in md
    assert r.stdout.count('tuned-') >= 4                                         # one line per run as it starts

def test_study_resumes_what_is_missing(study, trunk):
    tmp, _ = study
    final = tmp/'study'/'tuned-layer-seed1'/'final'/'mtp_heads.safetensors'
    before, kept = final.stat().st_mtime_ns, json.loads((tmp/'study'/'measures'/'tuned-medusa-seed0.json').read_text())
    (tmp/'study'/'measures'/'tuned-layer-seed1.json').unlink()
    r = run_cmd('mtp_head_study', '--out_dir', 'study', '--trunk', trunk, *ARGS, cwd=tmp, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert '[2/4] tuned-layer-seed1' in r.stdout and 'tuned-medusa-seed0' not in r.stdout.split('Head designs')[0]
    assert final.stat().st_mtime_ns == before                                    # a finished run is measured again, not retrained
    assert json.loads((tmp/'study'/'measures'/'tuned-medusa-seed0.json').read_text()) == kept

def test_bad_input_is_one_line(tmp_path):
    for i, (args, message) in enumerate(((['--head_types', 'layer,eagle'], '--head_types takes names from layer, medusa, sequential'),
                          (['--recipes', 'fast'], '--recipes takes names from experiment, tuned'),
                          (['--seeds', '0,a'], '--seeds must be whole numbers separated by commas'),
                          (['--n_train', 0], '--n_train must be a whole number >= 1, got 0'))):   # the first through its real script, the rest in this process
        refused((run_cmd if i == 0 else run_main)('mtp_head_study', *args, cwd=tmp_path), 'mtp_head_study', message)
