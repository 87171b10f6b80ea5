"""Keeping passwords given inline in URLs (``https://user:password@host/``) out of what is shown or saved.

Requests uses such a URL as given; logs, error messages, saved configs and checkpoints show
``user:***@`` instead. Credentials can also stay out of the URL altogether: requests reads them
from ``~/.netrc`` (or the file named by the ``NETRC`` environment variable).
"""

from __future__ import annotations

import re

MASK = "***"
# scheme://user:password@ -- the password runs to the last "@" before the path, as urllib.parse reads it.
_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s/?#@:]*):[^\s/?#]*@", re.IGNORECASE)


def mask_credentials(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***`` (the user name is kept)."""
    return _USERINFO.sub(rf"\1:{MASK}@", text)
