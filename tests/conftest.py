"Shared by the process tests: the console scripts' folder, an offline environment, and one tiny pretrained trunk."
import os, sys
from pathlib import Path
import pytest

BIN = Path(sys.executable).parent
# a few pretraining steps: these tests need a trunk of the right kind, not a good one
TINY = dict(n_pretrain=600, n_eval=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            epochs=0.25)

def offline_env(tmp:Path)->dict:
    "Offline, one thread per process (deterministic and kind to a shared machine), never the real default trunk."
    return {'PATH': f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", 'HOME': str(tmp), 'HF_HUB_OFFLINE': '1',
            'HF_DATASETS_OFFLINE': '1', 'MTP_NB_CACHE': str(tmp/'no-default-trunk-here'), 'OMP_NUM_THREADS': '1'}

@pytest.fixture(scope='session')
def trunk(tmp_path_factory)->str:
    "A tiny pretrained LLaMA (`TINY`), built once per test session (seconds); its folder."
    from mtp_nb.trunk import TrunkRecipe, default_trunk_dir, load_trunk
    cache, recipe = tmp_path_factory.getbasetemp()/'tiny-trunk', TrunkRecipe(**TINY)
    load_trunk(cache_dir=cache, recipe=recipe)
    return str(default_trunk_dir(cache, recipe))
