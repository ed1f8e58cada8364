"""Sharded training (`--sharding fsdp`, FSDP2 over gloo) in processes, on the tiny trunk: 2 sharded processes equal 1
unsharded one (frozen, then trained trunk; 2 micro-batches per process per step), a killed sharded run resumed equal to
the uninterrupted one, `final/` in the usual format, and the refusals of a sharded checkpoint elsewhere."""
import json, os, signal, subprocess, time
from pathlib import Path
import pytest
import torch
from safetensors.torch import load_file
from conftest import BIN, offline_env, refused

# 24 examples in steps of 4: 12 optimizer steps; the trunk frozen for 3, then trained; checkpoints at 4, 6, 8, 12
RUN = ['--n_train', '24', '--n_eval', '8', '--max_tokens', '96', '--epochs', '2', '--batch_size', '4', '--lr', '1e-3',
       '--trunk_lr', '1e-3', '--freeze_steps', '3', '--lr_warmup_steps', '1', '--trunk_ramp_steps', '1', '--log_every', '1',
       '--ckpt_every', '4', '--cpu']
TORCHRUN = [str(BIN/'torchrun'), '--standalone', '--nproc_per_node', '2', '-m', 'mtp_nb.train']
SHARDED = ['--sharding', 'fsdp', '--micro_batch_size', '1']   # 2 rows per process per step: 2 micro-batches, accumulated

def command(*args, sharded:bool)->list[str]: return [*(TORCHRUN if sharded else [str(BIN/'mtp_train')]), *map(str, args)]

def mtp_train(tmp:Path, *args, sharded:bool=False):
    return subprocess.run(command(*args, sharded=sharded), capture_output=True, text=True, env=offline_env(tmp), cwd=tmp, timeout=600)

def final_weights(run_dir:Path)->dict:
    return {**load_file(run_dir/'final'/'mtp_heads.safetensors'), **load_file(run_dir/'final'/'trunk_layers.safetensors')}

def train_losses(run_dir:Path)->list:
    return [(r['step'], r['loss']) for r in map(json.loads, (run_dir/'metrics.jsonl').read_text().splitlines()) if r['kind'] == 'train']

@pytest.fixture(scope='module')
def plain_run(trunk, tmp_path_factory):
    "One process, unsharded, one micro-batch of 4 rows per step: the reference."
    tmp = tmp_path_factory.mktemp('plain')
    r = mtp_train(tmp, '--trunk', trunk, *RUN, '--micro_batch_size', '4', '--run_dir', tmp/'run')
    assert r.returncode == 0, r.stderr[-3000:]
    return tmp/'run'

@pytest.fixture(scope='module')
def sharded_run(trunk, tmp_path_factory):
    tmp = tmp_path_factory.mktemp('sharded')
    r = mtp_train(tmp, '--trunk', trunk, *RUN, *SHARDED, '--run_dir', tmp/'run', sharded=True)
    assert r.returncode == 0, r.stderr[-3000:]
    return tmp/'run'

def test_two_sharded_processes_equal_one_unsharded(plain_run, sharded_run):
    summary = json.loads((sharded_run/'summary.json').read_text())
    assert (summary['processes'], summary['sharding'], summary['steps']) == (2, 'fsdp', 12)
    ckpt = sharded_run/'checkpoints'/'step-000012'
    assert sorted(p.name for p in ckpt.iterdir()) == ['rng.pt', 'sharded', 'state.json']
    assert sorted(p.name for p in (ckpt/'sharded').glob('*.distcp')) == ['__0_0.distcp', '__1_0.distcp']   # one file of shards each
    want, got = final_weights(plain_run), final_weights(sharded_run)
    assert want.keys() == got.keys() and any(k.startswith('trunk.layers.') for k in got)
    earlier = load_file(plain_run/'checkpoints'/'step-000008'/'model'/'mtp_heads.safetensors')
    assert any(not torch.equal(earlier[k], want[k]) for k in earlier)       # the heads still moved in the last 4 steps
    for name in want: torch.testing.assert_close(got[name], want[name], msg=name)
    for (s1, l1), (s2, l2) in zip(train_losses(plain_run), train_losses(sharded_run), strict=True):
        assert s1 == s2 and l1 == pytest.approx(l2, rel=1e-5)

def test_final_loads_in_one_process(sharded_run, trunk):
    from mtp_nb.heads import MTPModel
    model = MTPModel.from_pretrained(sharded_run/'final', cache_dir=None)
    weights = final_weights(sharded_run)
    assert torch.equal(dict(model.named_parameters())['heads.1.mlp.down_proj.weight'], weights['1.mlp.down_proj.weight'])

def process_tree(pid:int)->list[int]:
    "`pid` and every process below it, from /proc (torchrun starts each worker in a session of its own: no killpg reaches it)."
    children = {}
    for stat in Path('/proc').glob('[0-9]*/stat'):
        try: ppid = int(stat.read_text().rsplit(')', 1)[1].split()[1])
        except (OSError, IndexError, ValueError): continue     # gone meanwhile
        children.setdefault(ppid, []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo: tree.append(todo.pop()); todo += children.get(tree[-1], [])
    return tree

def alive(pid:int)->bool:
    "A process still running: neither gone nor a zombie."
    try: return Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[0] != 'Z'
    except (OSError, IndexError): return False

def test_killed_sharded_run_resumes_equal(trunk, sharded_run, tmp_path):
    run_dir = tmp_path/'run'
    with open(tmp_path/'killed.log', 'w') as log:
        p = subprocess.Popen(command('--trunk', trunk, *RUN, *SHARDED, '--run_dir', run_dir, sharded=True), stdout=log, stderr=log,
                             env=offline_env(tmp_path), cwd=tmp_path)
        while not (run_dir/'checkpoints'/'step-000004').is_dir():
            assert p.poll() is None, (tmp_path/'killed.log').read_text()[-3000:]
            time.sleep(0.002)
        tree = process_tree(p.pid)               # torchrun and both workers: mid-epoch, the first checkpoint is at step 4 of 6
        for pid in reversed(tree): os.kill(pid, signal.SIGKILL)
        p.wait()
        assert len(tree) >= 3, tree
        while any(map(alive, tree)): time.sleep(0.01)
    assert not (run_dir/'final').exists() and not (run_dir/'checkpoints'/'step-000012').exists()
    r = mtp_train(tmp_path, '--resume', run_dir, sharded=True)
    assert r.returncode == 0, r.stderr[-3000:]
    want, got = final_weights(sharded_run), final_weights(run_dir)
    assert want.keys() == got.keys()
    for name in want: assert torch.equal(got[name], want[name]), name
    assert train_losses(run_dir) == train_losses(sharded_run)   # the metrics read as if the run had never stopped

def test_sharded_checkpoint_is_refused_by_one_process(sharded_run, tmp_path):
    import shutil
    run_dir = tmp_path/'run'
    shutil.copytree(sharded_run, run_dir)
    refused(mtp_train(tmp_path, '--resume', run_dir), 'mtp_train',
            f'holds the shards of a run on 2 processes: resume it sharded, torchrun --nproc_per_node 2 -m mtp_nb.train --resume {run_dir}')

def test_one_process_sharding_warns_and_trains(plain_run, trunk, tmp_path):
    r = mtp_train(tmp_path, '--trunk', trunk, *RUN, '--micro_batch_size', '4', '--sharding', 'fsdp', '--run_dir', tmp_path/'run')
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'mtp_train: warning: --sharding fsdp with one process shards nothing: launch it with torchrun' in r.stderr
    want, got = final_weights(plain_run), final_weights(tmp_path/'run')
    for name in want: assert torch.equal(got[name], want[name]), name

def test_uneven_steps_and_evaluation_batches(trunk, tmp_path):
    "21 examples in steps of 4: the last step's one row leaves a process idle; 9 held-out rows in batches of 2 leave one a batch short."
    uneven = ['--n_train', '21', '--n_eval', '9', '--eval_batch_size', '2', '--epochs', '1']
    plain = mtp_train(tmp_path, '--trunk', trunk, *RUN, *uneven, '--micro_batch_size', '4', '--run_dir', tmp_path/'plain')
    assert plain.returncode == 0, plain.stderr[-3000:]
    sharded = mtp_train(tmp_path, '--trunk', trunk, *RUN, *uneven, *SHARDED, '--run_dir', tmp_path/'sharded', sharded=True)
    assert sharded.returncode == 0, sharded.stderr[-3000:]
    want, got = final_weights(tmp_path/'plain'), final_weights(tmp_path/'sharded')
    for name in want: torch.testing.assert_close(got[name], want[name], msg=name)
    evals = lambda d: [(r['label'], r['n_tokens']) for r in map(json.loads, (d/'metrics.jsonl').read_text().splitlines()) if r['kind'] == 'eval']
    assert evals(tmp_path/'sharded') == evals(tmp_path/'plain')
