"""The whole contract through ``adapter.aio``, on every backend of the table.

Each class is the async twin of a backend's entry point (``tests/test_<backend>.py``):
the same tests, with every adapter driven through its async view on an event loop of
the test's own (``tests/async_view.py``). Tests marked ``@sync_only`` (the fsspec route,
pandas, Dask, construction) run on the sync entry points only.
"""

from __future__ import annotations

from tests.contract import Contract
from tests.contract.browser import BrowserTests


class TestLocalAioContract(Contract):
    case = "local"
    through = "aio"


class TestLocalPortableAioContract(Contract):
    case = "local-portable"
    through = "aio"


class TestMemoryAioContract(Contract):
    case = "memory"
    through = "aio"


class TestS3AioContract(Contract):
    case = "s3"
    through = "aio"


class TestMinioAioContract(Contract):
    case = "minio"
    through = "aio"


class TestAzureAioContract(Contract):
    case = "azure"
    through = "aio"


class TestLocalSignedAioContract(BrowserTests):
    """The browser tests on the local store with signed URLs (tests/test_local_signed.py
    runs its URL and secrecy tests too; through aio they call the same blocking signer
    in a thread, as the plain local backend's twin already shows)."""

    case = "local-signed"
    through = "aio"


class TestS3ObstoreAioContract(Contract):
    case = "s3-obstore"
    through = "aio"


class TestMinioObstoreAioContract(Contract):
    case = "minio-obstore"
    through = "aio"


class TestAzureObstoreAioContract(Contract):
    case = "azure-obstore"
    through = "aio"
