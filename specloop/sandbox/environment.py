"""The environment a sandboxed command sees: a few plain variables and what the caller passes.

Nothing is inherited from the caller's process, so API keys, tokens and ``.env`` values never
reach generated code. Even a caller that passes its whole ``os.environ`` loses every variable
whose name looks secret; the record lists the names it dropped (never their values). ``HOME`` is
always the sandbox's own, so ``~/.netrc``, ``~/.docker`` and the like stay out of reach.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH", re.IGNORECASE)
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


def clean_env(extra: Mapping[str, str] | None, *, home: str) -> tuple[dict[str, str], list[str]]:
    """The command's environment (``extra`` may set anything but ``HOME``) and the sorted names of
    the secret-looking variables left out."""
    env = {
        "PATH": os.environ.get("PATH", DEFAULT_PATH),
        "HOME": home,
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
    }
    dropped = sorted(name for name in (extra or {}) if SECRET_NAME.search(name))
    env.update({k: str(v) for k, v in (extra or {}).items() if not SECRET_NAME.search(k) and k != "HOME"})
    return env, dropped
