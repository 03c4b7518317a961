"""The ``dq-stores`` command: schema upgrades, import, export, listing, copying and retention.

Every command opens the store named by ``--url`` / ``--schema`` / ``--results-url``, else by
``DQ_STORES_URL`` / ``DQ_STORES_SCHEMA`` / ``DQ_STORES_RESULTS_URL`` (``dq_stores.config``), and
names it. The work itself lives in ``dq_stores.transfer`` and the Store API; these modules parse
options, print, and turn every error into one line on stderr (``dq-stores: error: ...``, non-zero
exit, no traceback unless ``--debug``). Every URL or message printed goes through
``dq_stores.secrets.redact``. ``app`` holds the group and what the commands share; each other
module is one command (or group).
"""

from dq_stores.cli import copying as copying
from dq_stores.cli import db as db
from dq_stores.cli import docs as docs
from dq_stores.cli import exporting as exporting
from dq_stores.cli import importing as importing
from dq_stores.cli import listing as listing
from dq_stores.cli import retention as retention
from dq_stores.cli.app import CliError as CliError
from dq_stores.cli.app import Settings as Settings
from dq_stores.cli.app import cli as cli
from dq_stores.cli.app import describe_error as describe_error
from dq_stores.cli.app import main as main

__all__ = ["CliError", "Settings", "cli", "describe_error", "main"]
