"""The ledger's schema: ``NNNN_name.sql`` files, package data applied in order by
:mod:`storage.migrate` (found with :mod:`importlib.resources`, so an installed
wheel can migrate)."""
