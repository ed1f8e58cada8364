"`mtp_eval` and `mtp_sweep` end to end, each in its own process, on the tiny trunk; and their bad input."
import json
from pathlib import Path
import pytest
from mtp_nb.config import MTPConfig
from mtp_nb.consistency import EVAL_FILES
from mtp_nb.sweep import SWEEP_FILES
from mtp_nb.train import train
from conftest import TINY_RUN, refused, run_cmd, run_main


@pytest.fixture(scope='module')
def finished(trunk, tmp_path_factory):
    "One finished tiny run on the tiny trunk."
    tmp = tmp_path_factory.mktemp('cli')
    summary = train(MTPConfig(trunk=trunk, run_dir=str(tmp/'run'), **TINY_RUN))
    return tmp, summary

def test_mtp_eval_writes_numbers_and_plots(finished):
    tmp, summary = finished
    r = run_cmd('mtp_eval', 'run', '--batch_size', 4, cwd=tmp)
    assert r.returncode == 0, r.stderr[-2000:]
    assert '| 1 | t+1 |' in r.stdout and '| 1 & 2 |' in r.stdout and 'right when agree' in r.stdout
    assert r.stdout.startswith('Heads 1 and 2 make the same guess for') and 'into run' in r.stdout
    for name in EVAL_FILES.values(): assert (tmp/'run'/name).stat().st_size > 0, name
    report = json.loads((tmp/'run'/'eval.json').read_text())
    final = list(summary['evals'].values())[-1]
    assert [h['top1'] for h in report['heads']] == pytest.approx(final['accuracy'], abs=1e-6)   # same numbers as training's eval
    assert len(report['untrained']) == len(report['ngram']) == 3
    assert {p['kind'] for p in report['consistency']['pairs']} == {'all', 'digit', 'operator', 'word', 'marker', 'other'}
    assert (tmp/'run'/'eval.md').read_text().startswith('# Evaluation of run')

def test_mtp_eval_refuses_what_is_not_a_finished_run(finished, trunk):
    tmp, _ = finished
    refused(run_cmd('mtp_eval', 'nowhere', cwd=tmp),   # through its real script; the rest in this process
            'mtp_eval', 'load_run nowhere is nothing (no such path), not a run folder')
    refused(run_main('mtp_eval', trunk, cwd=tmp), 'mtp_eval', 'is a model folder (an HF config.json and weights), not a run folder')
    refused(run_main('mtp_eval', 'run/final', cwd=tmp), 'mtp_eval', 'is a heads folder (written by MTPModel.save_pretrained), not a run folder')
    refused(run_main('mtp_eval', 'run', '--batch_size', 0, cwd=tmp), 'mtp_eval', '--batch_size must be a whole number >= 1, got 0')
    refused(run_main('mtp_eval', cwd=tmp), 'mtp_eval', 'the following arguments are required: run_dir')

def test_mtp_sweep_one_run_per_scale(finished, trunk):
    tmp, _ = finished
    (tmp/'tiny.json').write_text(json.dumps(dict(trunk=trunk, **TINY_RUN)))
    r = run_cmd('mtp_sweep', '--config', 'tiny.json', '--scales', '0,1', '--out_dir', 'sweep', cwd=tmp)
    assert r.returncode == 0, r.stderr[-2000:]
    out = tmp/'sweep'
    configs = {s: json.loads((out/f'scale-{s}'/'config.json').read_text()) for s in ('0', '1')}
    assert configs['0']['trunk_grad_scales'] == [1.0, 0.0, 0.0] and configs['1']['trunk_grad_scales'] == [1.0, 1.0, 1.0]
    assert {k for k in configs['0'] if configs['0'][k] != configs['1'][k]} == {'trunk_grad_scales', 'run_dir'}
    md = (out/SWEEP_FILES['markdown']).read_text()
    assert "mtp_sweep --config tiny.json --scales 0,1 --out_dir sweep" in md
    assert '| s (heads 2..n) | head 1 (t+1) | head 2 (t+2) | head 3 (t+3) |' in md and md in r.stdout
    rows = json.loads((out/SWEEP_FILES['json']).read_text())
    assert [row['scale'] for row in rows] == [0.0, 1.0] and (out/SWEEP_FILES['plot']).stat().st_size > 0

@pytest.mark.parametrize('args, message', [
    (['--scales', '0,nan'], '--scales must be a finite number >= 0, got nan'),
    (['--scales', '0,0'], '--scales lists a scale twice: 0,0'),
    (['--scales', 'a'], '--scales must be numbers separated by commas'),
    (['--n_heads', '0'], '--n_heads must be a whole number >= 1, got 0'),
    (['--config', 'nope.yaml'], 'no config file at nope.yaml'),
])
def test_mtp_sweep_bad_input_before_any_run(tmp_path, args, message):
    run = run_cmd if args == ['--scales', '0,nan'] else run_main   # one through its real script, the rest in this process
    refused(run('mtp_sweep', *args, '--out_dir', 'sweep', cwd=tmp_path), 'mtp_sweep', message)
    assert not (tmp_path/'sweep').exists()
