"""Jupyter glue and the ``minigun-nb`` command: the headless runner for notebooks and scripts
(:mod:`.cli`; in a kernel with ``--output``: :mod:`.kernelrun`; ``--log-json``: :mod:`.logjson`),
``minigun-nb export`` (:mod:`.export`, the parameters cell as options: :mod:`.params`),
the ``%%minigun`` cell magic (:mod:`.magic`, its IPython-free rules in :mod:`.magicline`) and
how definition errors look in a notebook (:mod:`.tracebacks`)."""
