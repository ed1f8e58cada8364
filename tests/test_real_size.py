"The real-size commands in their own processes: mtp_plan on the shipped 1.5B config and on bad input, a bf16 run end to end, and the GPU check script's CPU path."
import json, py_compile, subprocess, sys
from pathlib import Path
from conftest import TINY_RUN, offline_env, refused, run_cmd, run_main

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT/'bench'/'gpu_check.py'

def test_plan_tiny_config(tmp_path):
    "mtp_plan on a config.json alone: the breakdown, and a micro-batch per card that grows with the card."
    (tmp_path/'m').mkdir()
    (tmp_path/'m'/'config.json').write_text(json.dumps(dict(model_type='llama', vocab_size=3000, hidden_size=64, intermediate_size=256,
                                                            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)))
    r = run_cmd('mtp_plan', '--trunk', tmp_path/'m', '--seq_len', 128, '--device', 'cpu', cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    for row in ('| weights |', '| gradients |', '| optimizer |', '| activations |', '| kv cache |', '| **total** |'):
        assert row in r.stdout, r.stdout
    cards = [int(l.split('|')[3].strip(' +')) for l in r.stdout.splitlines() if l.startswith('| ') and ' GB |' in l]
    assert len(cards) == 3 and 0 < cards[0] <= cards[1] <= cards[2], r.stdout

def test_plan_refuses_bad_input(tmp_path):
    refused(run_cmd('mtp_plan', '--trunk', tmp_path/'nothing', cwd=tmp_path), 'mtp_plan', 'cannot read a model config')
    refused(run_main('mtp_plan', '--batch_size', 0, cwd=tmp_path), 'mtp_plan', '--batch_size must be a whole number >= 1')
    refused(run_main('mtp_plan', '--trunk', ROOT/'configs'/'deepseek-r1-distill-qwen-1.5b', '--dtype', 'int4', cwd=tmp_path),
            'mtp_plan', '--dtype must be one of')

def test_plan_without_a_trunk_plans_the_shipped_one(tmp_path):
    r = run_cmd('mtp_plan', '--seq_len', 64, '--device', 'cpu', cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith('llama, ') and '| **total** |' in r.stdout, r.stdout[:500]

def test_bf16_run_end_to_end(tmp_path, trunk):
    "A bfloat16, chunked, checkpointed run trains, writes its folder, and its final model loads; float16 is refused."
    flags = [f'--{k}={v}' for k, v in TINY_RUN.items()]
    r = run_cmd('mtp_train', '--trunk', trunk, *flags, '--dtype', 'bfloat16', '--loss_chunk', 16, '--checkpoint_trunk',
                '--run_dir', tmp_path/'run', cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((tmp_path/'run'/'summary.json').read_text())
    assert summary['steps'] == 2 and summary['n_heads'] == 3, summary
    refused(run_cmd('mtp_train', '--trunk', trunk, '--dtype', 'float16', '--run_dir', tmp_path/'r16', cwd=tmp_path),
            'mtp_train', 'use --dtype bfloat16')

def test_gpu_check_script_cpu_path(tmp_path):
    "The GPU check compiles, refuses to run without CUDA unless --smoke, and its --smoke run goes through every part."
    py_compile.compile(str(SCRIPT), doraise=True)
    run = lambda *a: subprocess.run([sys.executable, str(SCRIPT), *a], capture_output=True, text=True, cwd=ROOT,
                                    env=offline_env(tmp_path), timeout=600)
    r = run()
    assert r.returncode == 1 and 'no CUDA device here' in r.stderr, r.stderr[-2000:]
    r = run('--smoke', '--steps', '3', '--freeze_steps', '1', '--seq_len', '32', '--new_tokens', '8')
    assert r.returncode == 0, r.stderr[-3000:]
    assert '| tokens identical to HF generate | True (8/8 agree' in r.stdout, r.stdout
    assert int(r.stdout.split('| micro-batch (planned for the card) | ')[1].split(' ')[0]) >= 1, r.stdout
