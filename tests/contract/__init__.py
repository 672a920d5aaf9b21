"""The contract of DESIGN.md, written once and run unchanged on every backend.

Modelled on fsspec's ``tests/abstract``: the tests are methods of mixin classes, one
module per capability, and a backend runs them by subclassing the mixins in its own
test module.

=================  ==========================================================
module             what its mixin checks
=================  ==========================================================
``objects``        upload, download, overwrite, copy, delete, exists; keys
``metadata``       size, time, etag, content type, user metadata
``listing``        order, string prefixes, limits, pages, prefix-scoped adapters
``urls``           presigned and public URLs
``lifecycle``      context manager, ``test_connection``, pickling, forking, logs
``batch``          the ``*_files`` batch operations
``transfers``      progress of large transfers, bounded memory
``interop``        ``open``, fsspec URLs, pandas, pyarrow, polars, Dask
``integrity``      checksums; failed writes keep the previous version
``concurrency``    threads sharing one adapter
``faults``         network faults through a proxy (``needs("network")``)
``soak``           eight threads of mixed calls under random faults (``needs("network")``)
``security``       hostile keys and prefixes, secrets in reprs, errors and logs
``browser``        object headers, hyphenated metadata, presign options, POST, CORS
=================  ==========================================================

Running it.  Each backend's entry point is its own test module, which also holds
what only that backend has: ``tests/test_s3.py`` has ``class TestS3Contract(Contract):
case = "s3"``, and ``pytest tests/test_s3.py`` runs the whole contract on S3 plus its
specific tests.  A plain ``pytest`` runs every contract test once per entry point.
The mixin modules here are not collected by themselves (their names do not start
with ``test_``, their classes not with ``Test``).

Capabilities, not names.  A test that only means something on some backends says
so with ``@needs("network")`` (fields of ``tests.conftest.Capabilities``); an entry
point whose backend lacks it does not get the test.  A test whose expectation
depends on the backend reads the capability from its ``backend`` fixture (e.g.
``backend.discards_failed_uploads``).  No test compares a backend's name.

Sync and async.  Every backend also has an entry point whose adapters are driven
through ``adapter.aio`` (``through = "aio"``, in ``tests/test_async_contract.py``): the
same tests, each call awaited on an event loop (``tests/async_view.py``).  Tests whose
calls never reach ``aio`` (the fsspec route, pandas, Dask, construction) say so with
``@sync_only("why")`` and run on the sync entry points only.

Adding a backend, or a variant of one (the local backend with extended attributes
disabled, another engine behind S3...), is two small steps:

1. an entry in ``BACKENDS`` (``tests/conftest.py``, or a ``tests/cases_*.py`` module
   listed in ``CASE_MODULES``): ``"local-portable": Case(start=..., directories=True,
   presign_methods=frozenset({"GET"}))``, where ``start(request, tmp_path)`` returns a
   ``Backend`` whose ``make(prefix)`` builds adapters on a fresh store;
2. a class in that backend's test module, and its async twin in
   ``tests/test_async_contract.py``::

       class TestLocalPortableContract(Contract):
           case = "local-portable"

       class TestLocalPortableAioContract(Contract):
           case = "local-portable"
           through = "aio"

The parametrized ``backend``/``storage``/``shared_backend``/``faulty`` fixtures of
``tests/conftest.py`` pick the new entry up by themselves for plain test functions
elsewhere.  A new capability is a field of ``Capabilities`` with the default most
backends have, set on the entries that differ.
"""

from __future__ import annotations

from .base import ContractBase, needs, sync_only
from .batch import BatchTests
from .browser import BrowserTests
from .concurrency import ConcurrencyTests
from .faults import FaultTests
from .integrity import IntegrityTests
from .interop import InteropTests
from .lifecycle import LifecycleTests
from .listing import ListingTests
from .metadata import MetadataTests
from .objects import ObjectTests
from .security import SecurityTests
from .soak import SoakTests
from .transfers import TransferTests
from .urls import UrlTests

__all__ = ["Contract", "ContractBase", "needs", "sync_only"]


class Contract(ObjectTests, MetadataTests, ListingTests, UrlTests, LifecycleTests, BatchTests,
               TransferTests, InteropTests, IntegrityTests, ConcurrencyTests, FaultTests,
               SecurityTests, SoakTests, BrowserTests):
    """Every contract mixin: what a backend's entry-point class subclasses (setting
    ``case``).  A backend may also pick single mixins, as fsspec's users do."""
