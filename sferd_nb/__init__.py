__version__ = "0.1.0"
"""sferd_nb: distilling diffusion models with SFERD (AAAI 2024) — the course's library.

The front door is `sferd_nb.load(path) -> Model` (`.sample(n)`, `.recipe`, `.nfe`) and `sferd_nb.distill(...)`; the curated
top-level API is below; every name lives in the module of the notebook that teaches it, and is imported
from there on first use (so `import sferd_nb` stays light).
"""

_API = {
    # data (00)
    'get_dataset': 'data', 'save_image_grid': 'data',
    # schedules, denoisers (01), samplers (02), networks (03)
    'get_schedule': 'diffusion', 'Denoiser': 'diffusion', 'Prediction': 'diffusion', 'q_sample': 'diffusion',
    'sample': 'samplers', 'time_grid': 'samplers', 'prior_sample': 'samplers', 'ddim_update': 'samplers',
    'build_unet': 'unet',
    # training (04), saving and loading (04b)
    'Trainer': 'train', 'TrainConfig': 'train', 'teacher_loss': 'train',
    'load_denoiser': 'io', 'export_denoiser': 'io', 'load_student': 'io',
    # distillation (05), guidance (07), evaluation (10)
    'load': 'distill', 'Model': 'distill', 'distill': 'distill', 'METHODS': 'distill', 'register_method': 'distill', 'student_sample': 'distill',
    'AttentionGuidedTeacher': 'guidance',
    'load_extractor': 'metrics', 'evaluate': 'metrics', 'denoising_l2': 'metrics',
}
__all__ = list(_API)

def __getattr__(name):
    if name in _API:
        import importlib
        return getattr(importlib.import_module(f'{__name__}.{_API[name]}'), name)
    raise AttributeError(f"module 'sferd_nb' has no attribute {name!r}")

def __dir__(): return sorted(list(globals()) + __all__)
