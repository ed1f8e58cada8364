"The `mtp_trunk` command end to end, in its own process, on a tiny recipe (the real one takes minutes)."
import json, subprocess, sys
from pathlib import Path

TINY = dict(n_pretrain=600, n_eval=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, vocab_size=600)

def run(*args, env_cache=None):
    cmd = [str(Path(sys.executable).parent/'mtp_trunk'), *args]
    env = {'PATH': str(Path(sys.executable).parent), 'HOME': str(env_cache or Path.home()), 'HF_HUB_OFFLINE': '1'}
    if env_cache: env['MTP_NB_CACHE'] = str(env_cache/'cache')
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)

def test_builds_caches_and_reports(tmp_path):
    r = run('--cache_dir', str(tmp_path), '--recipe', json.dumps(TINY))
    assert r.returncode == 0, r.stderr[-2000:]
    assert '| tiny LLaMA trunk |' in r.stdout and '| bigram table (same data) |' in r.stdout
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]   # beside it: the build's lock file
    assert (folder/'model.safetensors').exists() and (folder/'tokenizer.json').exists()
    report = json.loads((folder/'trunk_report.json').read_text())
    assert 0 < report['model']['accuracy'] <= 1 and report['recipe']['hidden_size'] == 32
    stamp = (folder/'model.safetensors').stat().st_mtime
    r = run('--cache_dir', str(tmp_path), '--recipe', json.dumps(TINY))    # second call: loaded, not rebuilt
    assert r.returncode == 0 and (folder/'model.safetensors').stat().st_mtime == stamp

def test_environment_variable_picks_the_cache(tmp_path):
    r = run('--recipe', json.dumps(TINY), env_cache=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert len([p for p in (tmp_path/'cache').iterdir() if p.is_dir()]) == 1

def test_unknown_recipe_field_is_one_line(tmp_path):
    r = run('--cache_dir', str(tmp_path), '--recipe', '{"hidden": 3}')
    assert r.returncode != 0 and "unknown recipe fields ['hidden']" in r.stderr
    assert not any(tmp_path.iterdir())
