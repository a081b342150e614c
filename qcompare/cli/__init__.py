"""The same pipeline without a browser: `python -m qcompare ...`."""
