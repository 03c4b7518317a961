"""Moved to ``dq_stores.writer`` (it imports no Dagster); this module keeps old imports working."""

from dq_stores import writer as _writer
from dq_stores.writer import *  # noqa: F403 - the whole public API of the moved module, by its __all__

__all__ = _writer.__all__
