"""SigV4 query-string signing of S3 object URLs, the signing step written out.

botocore's ``generate_presigned_url`` resolves the endpoint rules, serialises the
operation, emits events and then signs, for every URL: about 0.2 ms each, which a
page of thumbnails pays per image (Django's ``url()``). What varies between two
URLs of one bucket is only the key, the method and the time, so
:class:`QuerySigner` takes everything else (scheme, host, path prefix, signing
region) from one URL botocore presigned for a probe key, and signs each URL itself
by the SigV4 query-string rules (canonical request, string to sign, HMAC-SHA256 with
the signing key of the day). tests/test_s3.py checks that its URLs equal botocore's,
signature included, and the contract suite fetches them from Ceph RGW, which checks.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from datetime import UTC, datetime
from typing import Optional
from urllib.parse import parse_qs, quote, urlsplit

__all__ = ["PROBE", "QuerySigner"]

PROBE = "perceptra-probe"
"""The key of the URL the endpoint details are read from (no request is made for it)."""
_ALGORITHM = "AWS4-HMAC-SHA256"
_DEFAULT_PORTS = {"http": ":80", "https": ":443"}


class QuerySigner:
    """Signs GET/PUT/HEAD/DELETE URLs of one bucket with one static key pair."""

    def __init__(self, probe_url: str, access_key: str, secret_key: str,
                 token: Optional[str] = None) -> None:
        parts = urlsplit(probe_url)
        if not parts.path.endswith(f"/{PROBE}"):
            raise ValueError("the probe URL does not end with the probe key")
        scope = parse_qs(parts.query)["X-Amz-Credential"][0].split("/")
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._prefix = parts.path[:-len(PROBE)]
        # The Host header as botocore signs it: without the scheme's default port.
        self._host = parts.netloc.removesuffix(_DEFAULT_PORTS.get(parts.scheme, "\0"))
        self._region, self._service = scope[2], scope[3]
        self._access_key = access_key
        self._secret = secret_key.encode()
        self._token = token
        self._keys: dict[str, bytes] = {}
        self._lock = threading.Lock()

    @classmethod
    def for_bucket(cls, endpoint: Optional[str], bucket: str, region: str, access_key: str,
                   secret_key: str, token: Optional[str] = None) -> QuerySigner:
        """A signer for ``bucket`` without botocore: path-style on a custom ``endpoint``
        (as the s3 backend addresses one), AWS's virtual-hosted URL otherwise."""
        if endpoint:
            base = f"{endpoint.rstrip('/')}/{bucket}/"
        else:
            base = f"https://{bucket}.s3.{region}.amazonaws.com/"
        probe = (f"{base}{PROBE}?X-Amz-Credential=x%2F00000000%2F{region}%2Fs3%2F"
                 "aws4_request")
        return cls(probe, access_key, secret_key, token)

    def sign(self, name: str, method: str, expiration: int,
             now: Optional[datetime] = None,
             query: Optional[dict[str, str]] = None) -> tuple[str, datetime]:
        """The URL granting ``method`` on object ``name`` for ``expiration`` seconds from
        ``now`` (default: the current second), and its signing time; ``query`` adds
        parameters of the request itself (``uploadId``, ``uploads``), signed too."""
        moment = (now or datetime.now(UTC)).replace(microsecond=0)
        stamp = moment.strftime("%Y%m%dT%H%M%SZ")
        day = stamp[:8]
        scope = f"{day}/{self._region}/{self._service}/aws4_request"
        path = self._prefix + quote(name, safe="/~")
        params = {"X-Amz-Algorithm": _ALGORITHM,
                  "X-Amz-Credential": f"{self._access_key}/{scope}",
                  "X-Amz-Date": stamp, "X-Amz-Expires": str(expiration),
                  "X-Amz-SignedHeaders": "host"}
        if self._token:
            params["X-Amz-Security-Token"] = self._token
        params.update(query or {})
        encoded = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
                            for k, v in sorted(params.items()))
        canonical = f"{method}\n{path}\n{encoded}\nhost:{self._host}\n\nhost\nUNSIGNED-PAYLOAD"
        to_sign = (f"{_ALGORITHM}\n{stamp}\n{scope}\n"
                   f"{hashlib.sha256(canonical.encode()).hexdigest()}")
        signature = hmac.new(self._signing_key(day), to_sign.encode(),
                             hashlib.sha256).hexdigest()
        return f"{self._origin}{path}?{encoded}&X-Amz-Signature={signature}", moment

    def _signing_key(self, day: str) -> bytes:
        """The key of the day: four HMACs, computed once per day."""
        key = self._keys.get(day)
        if key is None:
            key = b"AWS4" + self._secret
            for part in (day, self._region, self._service, "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            with self._lock:
                self._keys = {day: key}
        return key
