"""Keeping credentials out of text: error messages and the SDKs' log records.

:func:`redact` masks known secret values and anything shaped like a credential
(signatures, account keys, tokens, passwords in URLs); :mod:`errors` runs every
message it builds through it. :func:`guard_sdk_logs` installs, once per
process, a log-record factory that does the same to the records of the SDKs
underneath, whose debug logs carry signed URLs and headers.
"""

from __future__ import annotations

import logging
import re
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["guard_sdk_logs", "redact"]

# Values that must never reach a message: signatures, keys, tokens, passwords.
_SECRET_PATTERNS = [
    re.compile(r"(?i)((?:sig|signature|x-amz-signature|x-amz-security-token|"
               r"x-amz-credential|x-ps-signature)=)[^&\s'\"]+"),
    # A name may be quoted (a dict's repr, JSON: 'signing_key': '...').
    re.compile(r"(?i)((?:accountkey|sharedaccesssignature|password|secret|signature|"
               r"secret_access_key|aws_secret_access_key|client_secret|"
               r"session_token|aws_session_token|account_key|sas_token|signing_key)"
               r"['\"]?\s*[=:]\s*['\"]?)"
               r"[^;&\s'\",}]+"),
    re.compile(r"(?i)(authorization\s*[=:]\s*['\"]?)[^'\"\n]+"),
    re.compile(r"(//[^/:@\s]+:)[^@/\s]+(@)"),
]


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Return ``text`` with known secret values and credential-shaped fields masked."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + "***" + (m.group(2) if m.re.groups > 1 else ""),
                           text)
    return text


_SDK_LOGGERS = ("botocore", "aiobotocore", "boto3", "s3transfer", "s3fs", "adlfs", "azure",
                "urllib3", "aiohttp", "fsspec")
# The credential values of each live owner (an adapter); an entry goes with its owner.
_live_secrets: weakref.WeakKeyDictionary[Any, tuple[str, ...]] = weakref.WeakKeyDictionary()
_factory_lock = threading.Lock()
_installed = False

_Factory = Callable[..., logging.LogRecord]


def _redacting_factory(previous: _Factory) -> _Factory:
    """Wrap the record factory so SDK records are masked as they are created, on any
    logger of those SDKs, including ones created after this was installed."""

    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if record.name.split(".")[0] in _SDK_LOGGERS:
            secrets = [value for values in list(_live_secrets.values()) for value in values]
            message = record.getMessage()
            cleaned = redact(message, secrets)
            if cleaned != message:
                record.msg, record.args = cleaned, None
        return record

    return make


def guard_sdk_logs(owner: Any, secrets: Iterable[str]) -> None:
    """Mask ``secrets`` in the SDKs' log records for as long as ``owner`` lives,
    installing the masking once per process. Costs nothing unless those SDK
    loggers are enabled."""
    global _installed
    values = tuple(secrets)
    if values:
        _live_secrets[owner] = values
    else:
        _live_secrets.pop(owner, None)
    with _factory_lock:
        if not _installed:
            logging.setLogRecordFactory(_redacting_factory(logging.getLogRecordFactory()))
            _installed = True
