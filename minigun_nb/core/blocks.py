"""Blocks: ``parallel()``, ``sequential()``, the backend blocks and nested ``pipeline()``.

Each is a context manager whose body defines into the block; a body that raises is undone as
a whole (:mod:`minigun_nb.core.undo`). Inside ``with pipe.pipeline("x")`` the definition
methods of ``pipe`` act on ``x`` (:func:`minigun_nb.core.building.definition`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from .building import Definitions, definition
from .identity import call_site
from .options import check_option
from .tree import Block
from .undo import drop, snapshot, validate_after

if TYPE_CHECKING:
    from .pipeline import Pipeline


class Blocks(Definitions):
    """The block context managers of a pipeline."""

    @contextlib.contextmanager
    def _block(self, kind: str) -> Iterator[Pipeline]:
        self._check_unlocked()
        undo = snapshot(self)
        block = Block(kind)
        self._blocks[-1].children.append(block)
        self._blocks.append(block)
        failed = False
        try:
            yield cast("Pipeline", self)
        except Exception:
            failed = True
            raise
        finally:
            self._blocks.pop()
            if failed:
                undo()  # the block's statement failed: as if it had never run
            elif not block.children:
                self._blocks[-1].children.remove(block)

    @definition
    def parallel(self) -> contextlib.AbstractContextManager[Pipeline]:
        """Stages defined inside all consume from the stage before the block.

        Examples
        --------
        >>> import minigun_nb as mg
        >>> pipe = mg.Pipeline()
        >>> _ = pipe.producer(lambda: [1], name="gen")
        >>> with pipe.parallel():
        ...     _ = pipe.processor(lambda x: x, name="a")
        ...     _ = pipe.processor(lambda x: x, name="b")
        >>> sorted((e.source, e.target) for e in pipe.edges)
        [('gen', 'a'), ('gen', 'b')]
        """
        return self._block("par")

    @definition
    def sequential(self) -> contextlib.AbstractContextManager[Pipeline]:
        """Inside a ``parallel()`` block: the stages defined inside chain as one branch.

        Examples
        --------
        >>> import minigun_nb as mg
        >>> pipe = mg.Pipeline()
        >>> with pipe.parallel():
        ...     with pipe.sequential():
        ...         _ = pipe.processor(lambda x: x, name="a")
        ...         _ = pipe.processor(lambda x: x, name="b")
        >>> [(e.source, e.target) for e in pipe.edges]
        [('a', 'b')]
        """
        return self._block("seq")

    @contextlib.contextmanager
    def _options_block(self, backend: str, workers: int | None) -> Iterator[Pipeline]:
        ctx: dict[str, Any] = {"backend": backend}
        if workers is not None:
            check_option(f"pipeline {self.name!r}", "workers", workers)
            ctx["workers"] = workers
        undo = snapshot(self)
        self._contexts.append(ctx)
        try:
            yield cast("Pipeline", self)
        except Exception:
            undo()  # the block's statement failed: as if it had never run
            raise
        finally:
            self._contexts.remove(ctx)

    @definition
    def threads(self, workers: int | None = None) -> contextlib.AbstractContextManager[Pipeline]:
        """Stages defined inside run on ``workers`` threads (their own options win).

        Examples
        --------
        >>> import minigun_nb as mg
        >>> pipe = mg.Pipeline()
        >>> with pipe.threads(8):
        ...     f = pipe.processor(lambda x: x, name="f")
        >>> f.options["backend"], f.options["workers"]
        ('thread', 8)
        """
        return self._options_block("thread", workers)

    @definition
    def processes(self, workers: int | None = None) -> contextlib.AbstractContextManager[Pipeline]:
        """Stages defined inside run in a loky process pool of ``workers`` processes.

        Examples
        --------
        >>> import minigun_nb as mg
        >>> pipe = mg.Pipeline()
        >>> with pipe.processes(2):
        ...     f = pipe.processor(abs)
        >>> f.options["backend"]
        'process'
        """
        return self._options_block("process", workers)

    @definition
    def forks(self, workers: int | None = None) -> contextlib.AbstractContextManager[Pipeline]:
        """Stages defined inside run in copy-on-write forks, at most ``workers`` alive.

        Examples
        --------
        >>> import minigun_nb as mg
        >>> pipe = mg.Pipeline()
        >>> with pipe.forks(4):
        ...     f = pipe.processor(abs)
        >>> f.options["workers"]
        4
        """
        return self._options_block("fork", workers)

    @definition
    def tasks(self, workers: int | None = None) -> contextlib.AbstractContextManager[Pipeline]:
        """``async def`` stages defined inside run with ``workers`` coroutines in flight.

        Examples
        --------
        >>> import minigun_nb as mg
        >>> pipe = mg.Pipeline()
        >>> with pipe.tasks(100):
        ...     async def fetch(url):
        ...         return url
        ...     f = pipe.processor(fetch)
        >>> f.options["backend"], f.options["workers"]
        ('async', 100)
        """
        return self._options_block("async", workers)

    @definition
    @contextlib.contextmanager
    def pipeline(self, name: str, *, to: Any = None, from_: Any = None, **options: Any
                 ) -> Iterator[Pipeline]:
        """A nested pipeline: inside the block, ``@pipe.*`` and ``@sub.*`` both add to it.

        Examples
        --------
        >>> import minigun_nb as mg
        >>> pipe = mg.Pipeline("outer")
        >>> with pipe.pipeline("inner") as inner:
        ...     _ = pipe.processor(lambda x: x, name="f")
        >>> pipe["inner/f"].name
        'f'
        """
        from .pipeline import Pipeline

        self._check_unlocked()
        existing = self._find(name)
        if isinstance(existing, Pipeline):
            # a re-run cell reuses the nested pipeline (its stages get replaced); its routing
            # and options become exactly this call's, as a re-run stage's options do
            sub = existing
            undo = snapshot(sub)
            given = Pipeline(name, to=to, from_=from_, **options)  # checks them
            sub.to, sub.from_ = given.to, given.from_
            sub.options.clear()
            sub.options.update(given.options)
            validate_after(self, undo)
            self._last_replaced = None
        else:
            sub = self._add_pipeline(Pipeline(name, **options), to=to, from_=from_)
            sub.site = call_site()
            undo = partial(drop, self, sub)
        # Redirect this pipeline's decorators into the nested one for the block's duration.
        saved = self._redirect
        self._redirect = sub
        try:
            yield sub
        except Exception:
            # the block failed: leave the pipeline as it was before it (a pipeline it created
            # is removed again, an existing one gets its stages, routing and options back)
            undo()
            raise
        finally:
            self._redirect = saved
