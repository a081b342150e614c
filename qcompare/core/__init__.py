"""The contracts and small facts every other folder builds on: specs and their keys, the
method registry, errors, efforts, presets, the Method and Runtime contracts, the result-column
table, the state folder, locks and disk space. Imports nothing of qcompare but the catalogue."""
