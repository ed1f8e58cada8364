"Packaging for mtp_nb: everything is read from settings.ini (nbdev 2), no pkg_resources needed."
from configparser import ConfigParser
import setuptools

cfg = ConfigParser(delimiters=['='])
cfg.read('settings.ini', encoding='utf-8')
cfg = cfg['DEFAULT']

licenses = {'apache2': ('Apache Software License 2.0', 'OSI Approved :: Apache Software License')}
statuses = ['1 - Planning', '2 - Pre-Alpha', '3 - Alpha', '4 - Beta', '5 - Production/Stable', '6 - Mature', '7 - Inactive']
lic = licenses[cfg['license']]
py_versions = ['3.10', '3.11', '3.12']
min_python = cfg['min_python']

requirements = cfg.get('requirements', '').split()
dev_requirements = cfg.get('dev_requirements', '').split()
gpu_requirements = cfg.get('gpu_requirements', '').split()  # CUDA-only speed-ups: never needed by a test
console_scripts = cfg.get('console_scripts', '').split()

with open('README.md', encoding='utf-8') as f: long_description = f.read()

setuptools.setup(
    name=cfg['lib_name'],
    version=cfg['version'],
    license=lic[0],
    classifiers=[
        'Development Status :: ' + statuses[int(cfg['status'])],
        'Intended Audience :: ' + cfg['audience'],
        'License :: ' + lic[1],
        'Natural Language :: ' + cfg['language'],
    ] + ['Programming Language :: Python :: ' + v for v in py_versions[py_versions.index(min_python):]],
    url=cfg['git_url'],
    packages=setuptools.find_packages(include=[cfg['lib_name'], cfg['lib_name'] + '.*']),
    include_package_data=True,
    package_data={cfg['lib_name']: ['embedded_trunk/*']},  # the shipped default trunk (05_pretrain): weights, tokenizer, report
    install_requires=requirements,
    extras_require={'dev': dev_requirements, 'gpu': gpu_requirements},
    python_requires='>=' + min_python,
    long_description=long_description,
    long_description_content_type='text/markdown',
    zip_safe=False,
    entry_points={'console_scripts': console_scripts, 'nbdev': [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"]},
    description=cfg['description'],
    author=cfg['author'],
    author_email=cfg['author_email'],
    keywords=cfg['keywords'],
)
