"`mtp_eval` and `mtp_sweep` end to end, each in its own process, on a random tiny trunk saved as a folder."
import json, os, subprocess, sys
from pathlib import Path
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM
from mtp_nb.data import reasoning_dataset
from mtp_nb.trunk import train_tokenizer
from mtp_nb.train import MTPConfig, train
from mtp_nb.analysis import EVAL_FILES
from mtp_nb.widgets import SWEEP_FILES

TINY_RUN = dict(n_heads=3, n_train=16, n_eval=8, max_tokens=128, epochs=1, batch_size=8, micro_batch_size=8,
                lr=3e-3, trunk_lr=1e-3, warmup_steps=1, lr_warmup_steps=1, trunk_ramp_steps=1, log_every=1)


def run(command, *args, home):
    cmd = [str(Path(sys.executable).parent/command), *map(str, args)]
    env = {'PATH': str(Path(sys.executable).parent), 'HOME': str(home), 'HF_HUB_OFFLINE': '1', 'MPLBACKEND': 'Agg',
           **{k: os.environ[k] for k in ('PYTHONPATH',) if k in os.environ}}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    "A random tiny LLaMA trunk folder and one finished tiny run on it."
    tmp = tmp_path_factory.mktemp('cli')
    tok = train_tokenizer(reasoning_dataset(n_train=10, n_pretrain=300, n_eval=10, seed=5)['pretrain']['text'], vocab_size=600)
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                 num_attention_heads=2, num_key_value_heads=2, eos_token_id=tok.eos_token_id,
                                 pad_token_id=tok.pad_token_id, bos_token_id=None)).save_pretrained(tmp/'trunk')
    tok.save_pretrained(tmp/'trunk')
    summary = train(MTPConfig(trunk=str(tmp/'trunk'), run_dir=str(tmp/'run'), **TINY_RUN))
    return tmp, summary


def test_mtp_eval_writes_numbers_and_plots(tiny):
    tmp, summary = tiny
    r = run('mtp_eval', tmp/'run', '--batch_size', 4, home=tmp)
    assert r.returncode == 0, r.stderr[-2000:]
    assert '| 1 | t+1 |' in r.stdout and '| 1 & 2 |' in r.stdout and 'right when agree' in r.stdout
    for name in EVAL_FILES.values(): assert (tmp/'run'/name).stat().st_size > 0, name
    report = json.loads((tmp/'run'/'eval.json').read_text())
    final = list(summary['evals'].values())[-1]
    assert [h['top1'] for h in report['heads']] == pytest.approx(final['accuracy'], abs=1e-6)   # same numbers as training's eval
    assert len(report['untrained']) == len(report['ngram']) == 3
    assert {p['kind'] for p in report['consistency']['pairs']} == {'all', 'digit', 'operator', 'word', 'marker', 'other'}


def test_mtp_eval_refuses_a_folder_without_a_finished_run(tiny):
    tmp, _ = tiny
    r = run('mtp_eval', tmp/'nowhere', home=tmp)
    assert r.returncode == 2 and r.stderr.startswith('mtp_eval: error:') and 'has no final/ weights' in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_mtp_sweep_one_run_per_scale(tiny):
    tmp, _ = tiny
    (tmp/'tiny.json').write_text(json.dumps(dict(trunk=str(tmp/'trunk'), **TINY_RUN)))
    out = tmp/'sweep'
    r = run('mtp_sweep', '--config', tmp/'tiny.json', '--scales', '0,1', '--out_dir', out, home=tmp)
    assert r.returncode == 0, r.stderr[-2000:]
    configs = {s: json.loads((out/f'scale-{s}'/'config.json').read_text()) for s in ('0', '1')}
    assert configs['0']['trunk_grad_scales'] == [1.0, 0.0, 0.0] and configs['1']['trunk_grad_scales'] == [1.0, 1.0, 1.0]
    assert {k for k in configs['0'] if configs['0'][k] != configs['1'][k]} == {'trunk_grad_scales', 'run_dir'}
    md = (out/SWEEP_FILES['markdown']).read_text()
    assert f"mtp_sweep --config {tmp/'tiny.json'} --scales 0,1 --out_dir {out}" in md
    assert '| s (heads 2..n) | head 1 (t+1) | head 2 (t+2) | head 3 (t+3) |' in md and md in r.stdout
    rows = json.loads((out/SWEEP_FILES['json']).read_text())
    assert [row['scale'] for row in rows] == [0.0, 1.0] and (out/SWEEP_FILES['plot']).stat().st_size > 0
