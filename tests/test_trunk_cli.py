"The `mtp_trunk` command end to end, in its own process, on a tiny recipe (the real one takes minutes)."
import json
from pathlib import Path
import pytest
from mtp_nb.pretrain import format_report, shipped_report, shipped_trunk_dir
from conftest import refused, run_cmd, run_main

TINY = dict(n_pretrain=600, n_eval=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, vocab_size=600)

def test_builds_caches_and_reports(tmp_path):
    r = run_cmd('mtp_trunk', '--cache_dir', tmp_path/'cache', '--recipe', json.dumps(TINY), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert '| tiny LLaMA trunk |' in r.stdout and '| bigram table (same data) |' in r.stdout
    (folder,) = [p for p in (tmp_path/'cache').iterdir() if p.is_dir()]   # beside it: the build's lock file
    assert (folder/'model.safetensors').exists() and (folder/'tokenizer.json').exists()
    report = json.loads((folder/'trunk_report.json').read_text())
    assert 0 < report['model']['accuracy'] <= 1 and report['recipe']['hidden_size'] == 32
    assert f"trunk: cache/{folder.name}" in r.stdout                          # the path as typed, from where it ran
    stamp = (folder/'model.safetensors').stat().st_mtime
    r = run_cmd('mtp_trunk', '--cache_dir', tmp_path/'cache', '--recipe', json.dumps(TINY), cwd=tmp_path)   # loaded, not rebuilt
    assert r.returncode == 0 and (folder/'model.safetensors').stat().st_mtime == stamp

def test_shows_the_shipped_trunk_without_building(tmp_path):
    "With no flags: the trunk shipped inside the package, loaded and reported; nothing built, no cache folder made."
    r = run_cmd('mtp_trunk', cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert '(shipped with mtp_nb)' in r.stdout and shipped_trunk_dir().name in r.stdout
    assert format_report(shipped_report()) in r.stdout
    assert 'building' not in r.stdout + r.stderr and not (tmp_path/'no-default-trunk-here').exists()

def test_ship_only_with_a_rebuild_of_the_default(tmp_path):
    for args in (['--ship'], ['--ship', '--rebuild', '--recipe', json.dumps(TINY)]):
        refused(run_main('mtp_trunk', *args, cwd=tmp_path), 'mtp_trunk', '--ship replaces the shipped trunk: use it with --rebuild and no --recipe')

def test_environment_variable_picks_the_cache(tmp_path):
    "With no --cache_dir, $MTP_NB_CACHE (set by the offline environment of the tests) is the cache."
    r = run_cmd('mtp_trunk', '--recipe', json.dumps(TINY), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert len([p for p in (tmp_path/'no-default-trunk-here').iterdir() if p.is_dir()]) == 1

@pytest.mark.parametrize('recipe, message', [
    ('{"hidden": 3}', "unknown recipe fields ['hidden']"),
    ('{"hidden_size": -8}', 'recipe hidden_size must be a whole number >= 1, got -8'),
    ('{"lr": NaN}', 'recipe lr must be a finite number > 0, got nan'),
    ('{"hidden_size": 30}', 'recipe hidden_size 30 must be a multiple of num_attention_heads 4'),
    ('{"num_hidden_layers": 1}', 'the trunk keeps all layers but the last, so it needs two'),
    ('[1, 2]', 'must be a JSON object of TrunkRecipe fields'),
    ('{hidden', 'neither a JSON object nor a JSON file'),
])
def test_bad_recipes_are_one_line_before_any_build(tmp_path, recipe, message):
    refused(run_main('mtp_trunk', '--cache_dir', tmp_path/'cache', '--recipe', recipe, cwd=tmp_path), 'mtp_trunk', message)   # in this process: test_a_file_as_the_cache goes through the script
    assert not (tmp_path/'cache').exists()

def test_a_file_as_the_cache(tmp_path):
    (tmp_path/'a-file').write_text('')
    refused(run_cmd('mtp_trunk', '--cache_dir', tmp_path/'a-file', '--recipe', json.dumps(TINY), cwd=tmp_path),
            'mtp_trunk', 'cannot make the trunk cache folder')
