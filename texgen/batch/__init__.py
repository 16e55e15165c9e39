"""`texgen batch`: texture whole asset folders, resumably, in-process, on servers or on Ray.

sources.py decides which meshes, prompts and options; ledger.py records every asset's state in
SQLite in DST; executors.py runs the texturing; runner.py is the loop; report.py is what people
see (progress bar, summary, ``--status``, DST/index.html). Importing this package is cheap: the
runner (and torch with it) loads on first use, so ``texgen batch --status`` stays fast.
"""

from __future__ import annotations

from .._lazy import lazy_attributes

_LAZY = {"run_batch": "texgen.batch.runner", "BatchSource": "texgen.batch.sources",
         "Asset": "texgen.batch.sources", "plan_assets": "texgen.batch.sources"}


__getattr__ = lazy_attributes(__name__, _LAZY)
__all__ = sorted(_LAZY)
