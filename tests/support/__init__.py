"""Helpers shared by the test suite, loaded as pytest plugins by the root `conftest.py` (fixtures) or imported
as `support.<module>` (values and classes): `pyproject.toml` puts `tests/` on the path in every import mode."""
