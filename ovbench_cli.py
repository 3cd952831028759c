"""The ``ovbench`` console script: parses arguments before loading the ML stack.

``import ovbench`` applies the stack shims and registers ovbench's modules,
which imports torch, mmengine and mmseg (seconds). ``ovbench --help`` and
argument errors need none of that, so this entry point imports
:mod:`ovbench.cli` with that work deferred (``ovbench/__init__`` checks
:data:`DEFER_LOAD`), and :func:`ovbench.cli.main` loads the stack right before
the chosen command runs. It lives outside the ``ovbench`` package because
importing any ``ovbench.*`` module runs the package ``__init__`` first.
"""
from __future__ import annotations

from typing import List, Optional

#: Read by ``ovbench/__init__``: True only while this module imports the package.
DEFER_LOAD = False


def main(argv: Optional[List[str]] = None) -> int:
    global DEFER_LOAD
    DEFER_LOAD = True
    try:
        from ovbench import cli
    finally:
        DEFER_LOAD = False
    return cli.main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
