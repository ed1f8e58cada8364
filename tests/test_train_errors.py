"""Bad input to `mtp_train` (each run in its own process): exit status 2, one line on stderr naming the flag or file and
the fix, no traceback, and nothing written or overwritten. One test per class of input; a freeze longer than the run
and rows with holes only warn."""
import json, shutil
from pathlib import Path
import pytest
from conftest import refused, run_cmd, run_main

# 24 examples in steps of 4, one epoch: a 6-step run that takes seconds (part of it from a config file)
SMALL = "n_train: 24\nn_eval: 8\nmax_tokens: 96\nepochs: 1\nbatch_size: 4\nlr: 1e-3\n"
FLAGS = ['--ckpt_every', '4', '--cpu']

def mtp_train(tmp:Path, *args): return run_cmd('mtp_train', *args, cwd=tmp)
def refuse(tmp:Path, *args): return run_main('mtp_train', *args, cwd=tmp)   # bad input in this process: test_existing_run_folder_is_not_overwritten goes through the script

def snapshot(folder:Path)->dict:
    "Every file under `folder` with its size and modification time."
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob('*'))}


@pytest.fixture(scope='module')
def finished(trunk, tmp_path_factory):
    "A finished run whose freeze (default 200 steps) outlasts its 6 steps: it warns and trains the heads only."
    tmp = tmp_path_factory.mktemp('finished')
    (tmp/'small.yaml').write_text(SMALL + 'epochs: 5\n')
    r = mtp_train(tmp, '--config', tmp/'small.yaml', '--epochs', '1', '--trunk', trunk, *FLAGS, '--run_dir', tmp/'run')
    assert r.returncode == 0, r.stderr[-3000:]
    return tmp/'run', r

def test_freeze_longer_than_the_run_warns_in_one_line(finished):
    run_dir, r = finished
    cfg = json.loads((run_dir/'config.json').read_text())
    assert (cfg['n_train'], cfg['lr'], cfg['epochs'], cfg['ckpt_every']) == (24, 1e-3, 1, 4)   # file, then flags
    warning = [l for l in r.stderr.splitlines() if l.startswith('mtp_train: warning:')]
    assert len(warning) == 1 and "the trunk's freeze (--freeze_steps 200) lasts the whole run (6 steps)" in warning[0]
    assert not (run_dir/'final'/'trunk_layers.safetensors').exists()          # the trunk never trained

@pytest.mark.parametrize('args, message', [   # one of each kind; every field's range is tested in 12_config
    (['--lr', 'nan'], '--lr must be a finite number > 0, got nan'),
    (['--grad_clip', 'inf'], '--grad_clip must be a finite number >= 0, got inf: 0 clips nothing'),
    (['--grad_clip=-1'], '--grad_clip must be a finite number >= 0, got -1'),
    (['--lr', '0'], 'a learning rate of 0 trains nothing'),
    (['--lr=-1e-4'], '--lr must be a finite number > 0, got -0.0001'),
    (['--batch_size', '-4'], '--batch_size must be a whole number >= 1, got -4'),
    (['--eval_fraction', '1'], '--eval_fraction must be a finite number in (0, 1)'),
    (['--n_heads', 'four'], "argument --n_heads/--n-heads: invalid int value: 'four' (see mtp_train --help)"),
    (['--lr_max', '1'], 'unrecognized arguments: --lr_max 1'),
    (['--head_type', 'eagle'], "--head_type must be one of layer, medusa, sequential, got 'eagle'"),
    (['--head_type', 'medusa', '--medusa_blocks', '0'], '--medusa_blocks must be a whole number >= 1, got 0'),
])
def test_numbers_out_of_range_or_not_finite(tmp_path, args, message):
    refused(refuse(tmp_path, *args, '--run_dir', tmp_path/'run'), 'mtp_train', message)
    assert not (tmp_path/'run').exists()

@pytest.mark.parametrize('args, message', [
    (['--trunk_grad_scales', '1,0.1'], 'trunk_grad_scales has 2 entries, need one per head (n_heads=4)'),
    (['--loss_weights', '1,nan,1,1'], 'loss_weights must be finite and >= 0, got nan for head 2'),
    (['--loss_weights', '0', '0', '0', '0'], 'loss_weights are all 0: no head would learn'),
    (['--columns', '{"q": "question"}'], "--columns must map their column names to 'prompt', 'reasoning', 'answer'"),
    (['--run_dir', ' '], "--run_dir must be a non-empty text, got ' '"),
])
def test_per_head_lists_and_mappings(tmp_path, args, message):
    run_dir = [] if '--run_dir' in args else ['--run_dir', tmp_path/'run']
    refused(refuse(tmp_path, *args, *run_dir), 'mtp_train', message)
    assert not (tmp_path/'run').exists()

def test_config_files(tmp_path):
    (tmp_path/'broken.yaml').write_text('lr: [1e-4\n')
    (tmp_path/'list.json').write_text('[1, 2]')
    (tmp_path/'old.yaml').write_text('warmup_steps: 10\n')
    (tmp_path/'typo.yaml').write_text('lr_max: 1\n')
    (tmp_path/'text.yaml').write_text('n_heads: four\n')
    (tmp_path/'model').mkdir(); (tmp_path/'model'/'config.json').write_text('{"model_type": "llama"}')
    cases = [('nope.yaml', 'no config file at nope.yaml'), ('broken.yaml', 'broken.yaml is not valid YAML'),
             ('list.json', 'must hold a mapping of config fields'), ('old.yaml', 'warmup_steps is now freeze_steps'),
             ('typo.yaml', "unknown config fields ['lr_max']"), ('text.yaml', "n_heads: cannot read 'four' as int"),
             ('model/config.json', 'is an HF model config, not a run config: pass its folder as --trunk'),
             ('model', 'is a folder, not a config file')]
    for name, message in cases:
        refused(refuse(tmp_path, '--config', name, '--run_dir', tmp_path/'run'), 'mtp_train', message)   # as typed in the folder
    assert not (tmp_path/'run').exists()

def test_data_files_that_do_not_parse_or_fit(trunk, tmp_path):
    (tmp_path/'garbage.jsonl').write_text('{"prompt": "Q?"}\nnot json\n')
    (tmp_path/'empty.jsonl').write_text('')
    (tmp_path/'set.txt').write_text('hello')
    rows = [{'question': f'Q{i}?', 'body': 'word ' * (3 + i)} for i in range(3)]
    (tmp_path/'set.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    (tmp_path/'holes.jsonl').write_text(''.join(json.dumps({'text': t}) + '\n' for t in ('', None, '  ')))
    cases = [(['--data', 'garbage.jsonl'], 'cannot read garbage.jsonl [train]: JSON parse error'),
             (['--data', 'empty.jsonl'], 'empty.jsonl is empty: no rows to read'),
             (['--data', 'set.txt'], 'a local data file must end in .json, .jsonl, .parquet, .csv'),
             (['--data', 'set.jsonl'], "needs columns prompt, reasoning, answer; or messages (chat)"),
             (['--data', 'set.jsonl', '--text_column', 'body', '--max_tokens', '2'], "no rows left after the filter 'within max_tokens'"),
             (['--data', 'holes.jsonl'], "every one of its 3 rows is unusable (first: row 0: column 'text' is empty)"),
             (['--data', trunk], 'is a model folder (an HF config.json and weights), not a data set')]
    for args, message in cases:
        refused(refuse(tmp_path, '--trunk', trunk, *args, '--run_dir', tmp_path/'run'), 'mtp_train', message)
    assert not (tmp_path/'run').exists()

def test_rows_with_holes_are_dropped_with_one_counted_warning(trunk, tmp_path):
    good = [{'text': f"Q{i}? <think> {i} + {i} = {2 * i} </think> The answer is {2 * i}."} for i in range(20)]
    rows = good[:5] + [{'text': None}] + good[5:] + [{'text': ''}]
    (tmp_path/'set.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    r = mtp_train(tmp_path, '--trunk', trunk, '--data', 'set.jsonl', '--eval_fraction', '0.25', '--n_train', '0',
                  '--n_eval', '0', '--batch_size', '8', '--epochs', '1', '--cpu', '--run_dir', tmp_path/'run')
    assert r.returncode == 0, r.stderr[-3000:]
    warnings = [l for l in r.stderr.splitlines() if 'dropped' in l]
    assert warnings == ["mtp_train: warning: set.jsonl [train]: dropped 2 of 22 malformed rows "
                        "(first: row 5: column 'text' is missing (null))"]
    assert json.loads((tmp_path/'run'/'summary.json').read_text())['n_train'] == 15

def test_folders_of_the_wrong_kind(trunk, finished, tmp_path):
    run_dir, _ = finished
    (tmp_path/'notes').mkdir(); (tmp_path/'notes'/'x.txt').write_text('mine')
    cases = [(['--trunk', '/no/such/model'], '--trunk /no/such/model: no model folder at /no/such/model'),
             (['--trunk', 'nobody/no-such-model'], "could not load a causal LM's tokenizer from nobody/no-such-model"),
             (['--trunk', run_dir], 'is a run folder (written by mtp_train), not a model folder: pass the trunk it was trained on'),
             (['--trunk', run_dir/'final'], 'is a heads folder (written by MTPModel.save_pretrained), not a model folder'),
             (['--resume', trunk], 'is a model folder (an HF config.json and weights), not a run folder (written by mtp_train)'),
             (['--resume', run_dir/'final'], 'is a heads folder (written by MTPModel.save_pretrained), not a run folder'),
             (['--resume', tmp_path/'nowhere'], 'is nothing (no such path), not a run folder'),
             (['--trunk', trunk, '--run_dir', trunk], 'is a model folder (an HF config.json and weights); a run needs a new or empty folder'),
             (['--trunk', trunk, '--run_dir', tmp_path/'notes', '--overwrite'], '--overwrite only replaces a run folder'),
             (['--resume', run_dir, '--overwrite'], '--resume and --overwrite contradict each other'),
             (['--resume', run_dir, '--lr', '1e-3'], '--resume continues a run with its saved config: drop --lr'),
             (['--resume', run_dir, '--head_type', 'medusa'], '--resume continues a run with its saved config: drop --head_type')]
    before = snapshot(run_dir)
    for args, message in cases: refused(refuse(tmp_path, *args), 'mtp_train', message)
    assert snapshot(run_dir) == before
    assert sorted(p.name for p in (tmp_path/'notes').iterdir()) == ['x.txt']

def test_existing_run_folder_is_not_overwritten(finished):
    run_dir, _ = finished
    before = snapshot(run_dir)
    refused(mtp_train(run_dir.parent, '--run_dir', run_dir), 'mtp_train', f'run folder {run_dir} already exists: pass --resume')
    assert snapshot(run_dir) == before

def test_corrupt_checkpoint_is_refused(finished, tmp_path):
    run_dir = tmp_path/'run'
    shutil.copytree(finished[0], run_dir)
    for damage in ('optimizer.pt', 'model/mtp_heads.safetensors', 'state.json'):
        (run_dir/'checkpoints'/'step-000006'/damage).write_bytes(b'truncated')
        before = snapshot(run_dir)
        refused(refuse(tmp_path, '--resume', run_dir), 'mtp_train', 'step-000006 is corrupt or does not fit this run')
        assert snapshot(run_dir) == before
