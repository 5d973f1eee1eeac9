"Shared test set-up: pinned thread counts (parallel workers must not starve each other) and the `gpu` / `slow` markers."
import os

import pytest
import torch

torch.set_num_threads(max(1, int(os.environ.get('SFERD_TEST_THREADS', '1'))))


def pytest_configure(config):
    config.addinivalue_line('markers', 'gpu: needs a CUDA GPU (`make test-gpu`); skipped where none is visible')
    config.addinivalue_line('markers', 'slow: longer than a minute; run with `-m slow`')


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available() or os.environ.get('SFERD_GPU_TEST_DEVICE') == 'cpu': return   # 'cpu': the suite's dry run
    skip = pytest.mark.skip(reason='no CUDA GPU visible (the gpu suite runs with `make test-gpu` on a GPU machine)')
    for item in items:
        if 'gpu' in item.keywords: item.add_marker(skip)


@pytest.fixture(autouse=True, scope='session')
def _tests_own_cache(tmp_path_factory):
    "Derived data the tests make (ImageNet 64x64 copies, FID statistics) go to a temporary folder, not the user's ~/.cache."
    if os.environ.get('SFERD_CACHE'):
        yield; return
    os.environ['SFERD_CACHE'] = str(tmp_path_factory.mktemp('sferd_cache'))
    yield
    os.environ.pop('SFERD_CACHE', None)
