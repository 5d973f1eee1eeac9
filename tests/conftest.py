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
