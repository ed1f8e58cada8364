"Shared by the process tests: the console scripts' folder, an offline environment, one tiny pretrained trunk, and the checks of a refusal."
import contextlib, io, os, re, subprocess, sys
from importlib.metadata import entry_points
from pathlib import Path
from types import SimpleNamespace
import pytest

# offline in this process too: `run_main` runs commands here, and huggingface_hub reads these once, at import
os.environ.update(HF_HUB_OFFLINE='1', HF_DATASETS_OFFLINE='1')
BIN = Path(sys.executable).parent
# a tiny run on the tiny trunk: 3 heads, 2 optimizer steps of 8 examples, the trunk trained from the second
TINY_RUN = dict(n_heads=3, n_train=16, n_eval=8, max_tokens=128, epochs=1, batch_size=8, micro_batch_size=8,
                lr=3e-3, trunk_lr=1e-3, freeze_steps=1, lr_warmup_steps=1, trunk_ramp_steps=1, log_every=1)

def offline_env(tmp:Path)->dict:
    "Offline, one thread per process (deterministic and kind to a shared machine), a trunk cache of the test's own."
    return {'PATH': f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", 'HOME': str(tmp), 'HF_HUB_OFFLINE': '1',
            'HF_DATASETS_OFFLINE': '1', 'MTP_NB_CACHE': str(tmp/'no-default-trunk-here'), 'OMP_NUM_THREADS': '1',
            'MPLBACKEND': 'Agg'}

def run_cmd(command:str, *args, cwd:Path, timeout:int=600, text:bool=True):
    "Run a console command of the project in its own process, offline, in `cwd`."
    return subprocess.run([str(BIN/command), *map(str, args)], capture_output=True, text=text, env=offline_env(cwd), cwd=cwd,
                          timeout=timeout)

def run_main(command:str, *args, cwd:Path):
    """Run a console command's entry point (the function its script calls) in this process, offline, in `cwd`: what
    `run_cmd` returns (returncode, stdout, stderr), without a new interpreter importing torch for every bad input.
    Each command is also refused once through its real script with `run_cmd`."""
    (main,) = [ep.load() for ep in entry_points(group='console_scripts', name=command)]
    out, err, env, here = io.StringIO(), io.StringIO(), dict(os.environ), os.getcwd()
    try:
        os.environ.update({k: v for k, v in offline_env(Path(cwd)).items() if k != 'PATH'}); os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try: main(list(map(str, args))); code = 0
            except SystemExit as e: code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        os.chdir(here); os.environ.clear(); os.environ.update(env)
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())

def refused(r, prog:str, message:str)->str:
    "Exit status 2 and one line on stderr naming the fix, `prog: error: ...`; no traceback. Returns the line."
    err = r.stderr if isinstance(r.stderr, str) else r.stderr.decode()
    lines = [l for l in err.strip().splitlines()
             if not l.startswith(f'{prog}: warning:') and not re.search(r'\d+%\|', l)]   # warnings and progress bars aside
    assert r.returncode == 2, (r.returncode, err[-3000:])
    assert len(lines) == 1 and lines[0].startswith(f'{prog}: error: ') and message in lines[0], err[-3000:]
    assert 'Traceback' not in err
    return lines[0]

@pytest.fixture(scope='session')
def trunk(tmp_path_factory)->str:
    "The tiny pretrained LLaMA every test uses (`TINY_RECIPE`), built once per test session (seconds); its folder."
    from mtp_nb.pretrain import TINY_RECIPE, ensure_default_trunk
    return str(ensure_default_trunk(tmp_path_factory.getbasetemp()/'tiny-trunk', TINY_RECIPE))
