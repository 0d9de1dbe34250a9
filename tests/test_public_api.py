"""The public API is small and explicit: every exported name resolves, and nothing else is."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize("package", ["ledger", "producers"])
def test_every_exported_name_resolves_and_is_listed_once(package: str) -> None:
    module = importlib.import_module(package)
    exports = module._EXPORTS
    assert sorted(exports) == sorted(module.__all__)
    assert len(set(module.__all__)) == len(module.__all__)
    for name in module.__all__:
        assert getattr(module, name) is not None
    with pytest.raises(AttributeError):
        _ = module.not_a_public_name
