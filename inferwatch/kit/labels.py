"""Label values from outside data (model ids, versions, adapter names): one cleaner for all.

Prometheus accepts any UTF-8, but a value from a peer can be huge, hold control characters or
lone surrogates (which cannot be encoded, and would turn every scrape into HTTP 500). Every value
that did not come from our own code goes through `clean`.
"""

from __future__ import annotations

import re

MAX_LABEL_CHARS = 128
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def clean(value: object, limit: int = MAX_LABEL_CHARS) -> str:
    """Printable, encodable, at most `limit` characters (truncated ones end in `~`)."""
    text = value if isinstance(value, str) else str(value)
    text = text.encode("utf-8", "replace").decode("utf-8")  # lone surrogates -> "?"
    text = _CONTROL.sub("", text)
    return text if len(text) <= limit else text[: limit - 1] + "~"


# Model names and versions that clients send (feedback, samples): strict, so no cleaning is needed.
MODEL_NAME = re.compile(r"[A-Za-z0-9_.:/@+-]{1,128}")
MODEL_NAME_RULE = "1 to 128 characters of A-Z a-z 0-9 _ . : / @ + -"
