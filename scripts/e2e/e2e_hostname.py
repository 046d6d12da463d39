"""``[core] hostname_callable`` of the e2e deployment: each Celery worker reports its own name.

Both workers run on one machine, so the default (the FQDN) would be the same for both and the
``task_instance.hostname`` column could not tell which worker ran or resumed a task. Every process of the
deployment gets ``CPLUGIN_E2E_HOST`` (``w1``, ``w2``, ``scheduler``...) and inherits it into task processes.
"""

from __future__ import annotations

import os
import socket


def worker_hostname() -> str:
    return os.environ.get("CPLUGIN_E2E_HOST") or socket.getfqdn()
