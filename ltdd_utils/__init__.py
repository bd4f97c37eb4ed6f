"""ltdd_utils: the shared library of the ltdd-book (dataset distillation on imperfect data)."""
__version__ = "0.1.0"
