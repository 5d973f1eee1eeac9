from configparser import ConfigParser
import os, shutil, setuptools, shlex
from setuptools.command.build_py import build_py

# note: all settings are in settings.ini; edit there, not here
config = ConfigParser(delimiters=['='])
config.read('settings.ini', encoding='utf-8')
cfg = config['DEFAULT']

cfg_keys = 'version description keywords author author_email'.split()
expected = cfg_keys + "lib_name user branch license status min_python audience language".split()
for o in expected: assert o in cfg, "missing expected setting: {}".format(o)
setup_cfg = {o:cfg[o] for o in cfg_keys}

licenses = {
    'apache2': ('Apache Software License 2.0','OSI Approved :: Apache Software License'),
    'mit': ('MIT License', 'OSI Approved :: MIT License'),
}
statuses = [ '1 - Planning', '2 - Pre-Alpha', '3 - Alpha',
    '4 - Beta', '5 - Production/Stable', '6 - Mature', '7 - Inactive' ]
py_versions = '3.10 3.11 3.12 3.13'.split()

requirements = shlex.split(cfg.get('requirements', ''))
if cfg.get('pip_requirements'): requirements += shlex.split(cfg.get('pip_requirements', ''))
min_python = cfg['min_python']
lic = licenses.get(cfg['license'].lower(), (cfg['license'], None))
dev_requirements = (cfg.get('dev_requirements') or '').split()
fid_requirements = (cfg.get('fid_requirements') or '').split()
docs_requirements = (cfg.get('docs_requirements') or '').split()
timm_requirements = (cfg.get('timm_requirements') or '').split()

ASSETS = ('README.md', 'cifar10_subset.npz', 'classifier', 'teachers')   # data/ as the course ships it (~26 MB)
COURSE = ('results', 'images')                                          # nbs/ folders shipped as _assets/course/ (~2 MB)

class build_py_with_assets(build_py):
    "Also copy the course assets of the repository's data/ into the package as sferd_nb/_assets/ (found by data_dir()), and the course runs' results and figures as _assets/course/."
    def run(self):
        super().run()
        if getattr(self, 'editable_mode', False): return      # an editable install reads the checkout's data/
        src = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data')
        dst = os.path.join(self.build_lib, cfg['lib_name'], '_assets')
        if os.path.isdir(dst): shutil.rmtree(dst)
        os.makedirs(dst)
        for name in ASSETS:
            s = os.path.join(src, name)
            if not os.path.exists(s): raise SystemExit(f'setup.py: {s} is missing; build from a checkout or an sdist')
            if os.path.isdir(s): shutil.copytree(s, os.path.join(dst, name), ignore=shutil.ignore_patterns('.*', '__pycache__'))
            else: shutil.copy2(s, dst)
        nbs = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'nbs')   # the course runs' committed results and figures
        for name in COURSE:                                                     # (found by data.course_dir() outside a checkout)
            s = os.path.join(nbs, name)
            if not os.path.isdir(s): raise SystemExit(f'setup.py: {s} is missing; build from a checkout or an sdist')
            shutil.copytree(s, os.path.join(dst, 'course', name), ignore=shutil.ignore_patterns('.*'))

package_data = dict()
pkg_data = cfg.get('package_data', None)
if pkg_data:
    package_data[cfg['lib_name']] =  pkg_data.split() # split as multiple files might be listed
# Add package data to setup_cfg for setuptools.setup(..., **setup_cfg)
setup_cfg['package_data'] = package_data

setuptools.setup(
    name = cfg['lib_name'],
    license = lic[0],
    classifiers = [
        'Development Status :: ' + statuses[int(cfg['status'])],
        'Intended Audience :: ' + cfg['audience'].title(),
        'Natural Language :: ' + cfg['language'].title(),
    ] + ['Programming Language :: Python :: '+o for o in py_versions[py_versions.index(min_python):]] + (['License :: ' + lic[1] ] if lic[1] else []),
    url = cfg['git_url'],
    packages = setuptools.find_packages(include=[cfg['lib_name'], cfg['lib_name'] + '.*']),
    include_package_data = True,
    install_requires = requirements,
    extras_require={ 'dev': dev_requirements, 'fid': fid_requirements, 'docs': docs_requirements, 'timm': timm_requirements },
    cmdclass = {'build_py': build_py_with_assets},
    dependency_links = cfg.get('dep_links','').split(),
    python_requires  = '>=' + cfg['min_python'],
    long_description = open('README.md', encoding='utf-8').read(),
    long_description_content_type = 'text/markdown',
    zip_safe = False,
    entry_points = {
        'console_scripts': cfg.get('console_scripts','').split(),
        'nbdev': [f'{cfg.get("lib_path")}={cfg.get("lib_path")}._modidx:d']
    },
    **setup_cfg)
