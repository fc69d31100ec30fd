"""Jupyter glue and the ``minigun-nb`` command. Today: the headless runner for scripts
(:mod:`.cli`); the ``%%minigun`` magic and the notebook export are not built yet."""
