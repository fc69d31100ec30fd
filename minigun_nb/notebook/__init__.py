"""Jupyter glue and the ``minigun-nb`` command: the headless runner for scripts (:mod:`.cli`),
the ``%%minigun`` cell magic (:mod:`.magic`, its IPython-free rules in :mod:`.magicline`) and
how definition errors look in a notebook (:mod:`.tracebacks`)."""
