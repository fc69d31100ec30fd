"""What calling a stage function means, below the runtime and the executors.

Stdlib only, importing nothing of minigun_nb outside itself, so a worker process (loky, fork,
Dask) that runs a chunk loads this layer and nothing else of the package:

- :mod:`.output`: how a function emits (``mg.to``, the ``output`` parameter).
- :mod:`.calling`: binding resources, retries and their backoff, timeouts, error text.
- :mod:`.reprs`: short, safe reprs of user objects.
- :mod:`.sampling`: which chunks have their items timed one by one.
- :mod:`.outcome`: a chunk's :class:`~.outcome.Outcome` (the cross-process contract), the job a
  worker runs, error encoding.
- :mod:`.wire`: pickles with out-of-band buffers and their one framing.
- :mod:`.runner`: the per-item step and the chunk runner of a worker.
- :mod:`.timeouts`: a per-item timeout inside a worker (SIGALRM, backed by a watchdog).
- :mod:`.worker`: a worker process's side: the jobs it holds, a chunk task, a fork child.
- :mod:`.frames`: the caller-frame walk (finding the user's code behind a call).
"""
