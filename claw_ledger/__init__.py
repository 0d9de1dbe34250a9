"""claw-ledger application layer: the CLI, local services, settings and the demo.

``__version__`` is the one place the version is written: pyproject.toml reads it
(``tool.setuptools.dynamic``), and ``claw-ledger --version`` prints it without
loading ``importlib.metadata``.
"""

__version__ = "0.2.0"

__all__ = ["__version__"]
