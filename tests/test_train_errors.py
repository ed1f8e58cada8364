"""Bad input to `mtp_train` (run in a subprocess): exit status 2, one line on stderr naming the fix, no traceback,
and nothing written or overwritten. A freeze longer than the run only warns."""
import json, shutil, subprocess
from pathlib import Path
import pytest
from conftest import BIN, offline_env

# 24 examples in steps of 4, one epoch: a 6-step run that takes seconds (part of it from a config file)
SMALL = "n_train: 24\nn_eval: 8\nmax_tokens: 96\nepochs: 1\nbatch_size: 4\nlr: 1e-3\n"
FLAGS = ['--ckpt_every', '4', '--cpu']

def mtp_train(tmp:Path, *args):
    return subprocess.run([str(BIN/'mtp_train'), *args], capture_output=True, text=True, env=offline_env(tmp), cwd=tmp, timeout=600)

def snapshot(folder:Path)->dict:
    "Every file under `folder` with its size and modification time."
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob('*'))}

def refused(r, message:str):
    "Exit status 2 and one line, the last on stderr, naming the fix; no traceback."
    last = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ''
    assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
    assert last.startswith('mtp_train: error: ') and message in last, r.stderr[-3000:]
    assert 'Traceback' not in r.stderr


@pytest.fixture(scope='module')
def finished(trunk, tmp_path_factory):
    "A finished run whose freeze (default 200 steps) outlasts its 6 steps: it warns and trains the heads only."
    tmp = tmp_path_factory.mktemp('finished')
    (tmp/'small.yaml').write_text(SMALL + 'epochs: 5\n')
    r = mtp_train(tmp, '--config', str(tmp/'small.yaml'), '--epochs', '1', '--trunk', trunk, *FLAGS, '--run_dir', str(tmp/'run'))
    assert r.returncode == 0, r.stderr[-3000:]
    return tmp/'run', r

def test_warmup_longer_than_the_run_warns(finished):
    run_dir, r = finished
    cfg = json.loads((run_dir/'config.json').read_text())
    assert (cfg['n_train'], cfg['lr'], cfg['epochs'], cfg['ckpt_every']) == (24, 1e-3, 1, 4)   # file, then flags
    assert "mtp_train: warning: the trunk's freeze (--warmup_steps 200) lasts the whole run (6 steps)" in r.stderr
    assert not (run_dir/'final'/'trunk_layers.safetensors').exists()          # the trunk never trained

@pytest.mark.parametrize('args, message', [
    (['--trunk', '/no/such/model'], '--trunk /no/such/model: no model folder at /no/such/model'),
    (['--trunk', 'nobody/no-such-model'], 'could not load a causal LM from nobody/no-such-model'),
    (['--n_heads', '0'], '--n_heads must be >= 1, got 0'),
    (['--trunk_grad_scales', '1,0.1'], 'trunk_grad_scales has 2 entries, need one per head (n_heads=4)'),
])
def test_bad_flags(trunk, tmp_path, args, message):
    r = mtp_train(tmp_path, *args, '--run_dir', str(tmp_path/'run'))
    refused(r, message)
    assert not (tmp_path/'run').exists()

def test_data_without_the_needed_columns_and_empty_data(trunk, tmp_path):
    rows = [{'question': f'Q{i}?', 'body': 'word ' * (3 + i)} for i in range(3)]
    (tmp_path/'set.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    r = mtp_train(tmp_path, '--trunk', trunk, '--data', str(tmp_path/'set.jsonl'), '--run_dir', str(tmp_path/'run'))
    refused(r, "needs columns ['prompt', 'reasoning', 'answer']")
    r = mtp_train(tmp_path, '--trunk', trunk, '--data', str(tmp_path/'set.jsonl'), '--text_column', 'body',
                  '--max_tokens', '2', '--run_dir', str(tmp_path/'run'))
    refused(r, 'no rows left of 3 with at most 2 tokens; raise max_tokens')
    assert not (tmp_path/'run').exists()

def test_existing_run_folder_is_not_overwritten(finished):
    run_dir, _ = finished
    before = snapshot(run_dir)
    refused(mtp_train(run_dir.parent, '--run_dir', str(run_dir)), f'run folder {run_dir} already exists: pass --resume')
    assert snapshot(run_dir) == before

def test_corrupt_checkpoint_is_refused(finished, tmp_path):
    run_dir = tmp_path/'run'
    shutil.copytree(finished[0], run_dir)
    (run_dir/'checkpoints'/'step-000006'/'optimizer.pt').write_bytes(b'truncated')
    before = snapshot(run_dir)
    refused(mtp_train(tmp_path, '--resume', str(run_dir)), 'step-000006 is corrupt or does not fit this run')
    assert snapshot(run_dir) == before
