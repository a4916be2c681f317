"""Helpers the test suites share, importable as ``tests.support.<module>`` (pytest's
``pythonpath = ["."]``): conftest files are not importable under ``--import-mode=importlib``, so
a helper that several suites use lives here, and each suite's conftest imports its fixtures."""
