"""The filesystem backend: canonical JSON files a person can browse, diff and put in git.

Layout (``<root>`` is the folder of the ``file://`` URL; ``<kind>`` is ``contracts``,
``job_definitions`` or ``action_profiles``)::

    <root>/<tenant>/<environment>/
        <kind>/
            <id>/
                <version>.json              current revision of (id, version)
                .history/<version>/<n>.json revision n = 1, 2, ... (the last equals the current file)
            .index.json                     index of this folder (a cache, rebuilt when missing)
            .lock                           flock target and crash marker ("1" during a write)
            .journal                        records of the latest puts (Linux; emptied at checkpoints)
        job_runs/
            <job_id>.json                   the job run record
            .index.json
            .lock
            .journal

Every ``.json`` artifact file holds exactly the bytes ``canonical_json`` gives (sorted keys, UTC
timestamps), so a diff shows what changed and ``sha256`` of the file is the content hash. Files
and folders starting with a dot are the store's own: ids can never start with a dot, so they
cannot collide with an artifact. For git, commit the artifact files and ``.history/``; ignore the
rest::

    .index.json
    .lock
    .journal
    .*.tmp
    .*.deleted

**Revisions and etags.** A put of changed content writes the current file and the next history
file; an identical put writes nothing. A revision's stamp is the time it was recorded in
nanoseconds, strictly increasing per folder, and is also the mtime of its history file (of the run
file for job runs), so it survives a lost index. Etags are ``<revision>-<stamp hex>-<sha256[:12]>``:
unique per revision (delete and re-create included) and the same in every process.

**Durable writes and caches.** One write per put is durable, and it is the commit point: on
Linux, one record appended to the folder's ``.journal`` and synced with ``fdatasync`` (the document, its
path and stamp, see ``journal``); elsewhere, the document itself (a job run file, or a versioned
artifact's history revision) written to a hidden temp file in the same folder, fsynced, moved
into place with ``os.replace`` and the folder fsynced. With the journal, the document file is
written without fsync (a new one renamed into place, an existing one rewritten in place) and a
checkpoint (``syncfs``, then the journal emptied) makes the files durable once the journal passes
1 MiB, before any write that is not a single put (deletes, ``put_many``) and in every repair. The
index and a versioned artifact's current file (a copy of its last history revision) are caches,
rewritten in place under the exclusive lock without fsync when the lock's marker can tell a
restart (Linux boot id, ``fsio.BOOT_ID``; elsewhere they are written atomically and synced, as
the documents are). A rename over an existing, unsynced file would make ext4 flush it at once
(``auto_da_alloc``): the in-place rewrites are what keep a put at the cost of one append and one
``fdatasync``. Readers of the store hold the lock, so they never see a half-written file; a crash
that leaves one is repaired (below). A delete renames the artifact away (one atomic step) before
anything else.

**Concurrency.** POSIX only (``fcntl.flock``: a local filesystem, or NFS with working locks).
One lock per ``<tenant>/<environment>/<kind>`` folder (``.lock``): writers hold it exclusively for
the whole read-check-write-index critical section, readers hold it shared, so ``if_match`` and
``create_only`` hold between processes (waits are bounded by ``lock_timeout``). A writer sets the
lock file's marker before its first change and clears it after its last (or marks the index as
cached in this boot); a writer killed in between leaves the mark, and so does a restart after an
unsynced index write (the marker names another boot), and the next process to take the lock
repairs the folder before doing anything else: the journal's records written back to the files
they name (a file the crash left torn, missing or old gets the committed bytes; a record torn by
the crash was never acknowledged and is dropped), the index rebuilt, and a current file that is
torn, missing or still the previous revision restored from the history revision. Until that
repair, a file rewritten in place by the writer that died may be torn: the marker says so. A
record replayed after a crash wins over a hand edit made to its file since the last checkpoint. A write that fails with an ``OSError`` undoes its own changes before
raising ``BackendUnavailableError``, so retrying it (with the same ``if_match``) is safe.

**Index.** ``.index.json`` holds, per artifact, the ``ArtifactIndex`` / ``RunIndex`` fields,
revision, stamp and content hash: listings, filters, cursors and latest lookups read the index
(cached in memory by file identity) and then only the files of the page. The files are the truth:
the index is rebuilt from them when it is missing, corrupt, marked dirty, or found stale (an
artifact file whose sha256 differs from its index entry, e.g. after a hand edit or a
``git pull``; a hand-edited file becomes a new revision). The latest lookup of one id also lists
that id's folder, so a version added or removed behind the index's back counts at once; for
listings and filters, delete ``.index.json`` after changing files outside the store. A rebuild
keeps the etags of versioned artifacts exactly; for job runs it keeps them while the old index is
readable, otherwise it restarts their revision numbers (a stale etag then fails ``if_match``, which
is safe) and takes the time a run without timestamps was first recorded from the file's mtime.
Copying the tree (``git clone``) resets mtimes, so etags change there too.

The package: ``index`` (the per-folder index), ``journal`` (the records of single puts), ``txn``
(a critical section's writes and their undo), ``base`` (root, cache, locking, repair), ``versioned`` and ``runs`` (the stores), this
module (opening). Path confinement, atomic writes and the lock are in ``dq_stores.fsio``. It does
not store result payloads (that is ``dq_stores.results``).
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import unquote, urlsplit

from dq_stores.errors import InvalidArtifactError, StoreNotFoundError
from dq_stores.filesystem._common import DEFAULT_LOCK_TIMEOUT
from dq_stores.filesystem.runs import STORE_FILE, FilesystemJobRunStore
from dq_stores.filesystem.versioned import (
    FilesystemActionProfileStore,
    FilesystemContractStore,
    FilesystemJobDefinitionStore,
)
from dq_stores.secrets import redact
from dq_stores.stores import Backend, Stores

__all__ = [
    "DEFAULT_LOCK_TIMEOUT",
    "STORE_FILE",
    "FilesystemActionProfileStore",
    "FilesystemContractStore",
    "FilesystemJobDefinitionStore",
    "FilesystemJobRunStore",
    "open_filesystem_backend",
    "open_filesystem_stores",
    "root_from_url",
]


# -- opening ------------------------------------------------------------------------------------


def root_from_url(url: str) -> str:
    """The folder of a ``file://`` URL: ``file:///abs/path`` is absolute, ``file://rel/path``
    is relative to the working directory. Percent-escapes are decoded.
    """
    parts = urlsplit(url)
    if parts.scheme != "file":
        raise InvalidArtifactError(f"not a file:// URL: {url!r}", field="url")
    if parts.query or parts.fragment:
        raise InvalidArtifactError("file:// store URLs take no query or fragment", field="url")
    path = unquote(parts.netloc + parts.path)
    if not path or "\x00" in path:
        raise InvalidArtifactError("file:// store URL needs a folder, e.g. file:///var/lib/dq", field="url")
    return path


def open_filesystem_backend(
    url: str,
    *,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    create: bool = True,
    **options: Any,
) -> Backend:
    """The four filesystem stores under the folder of ``url`` (created on the first write): the
    metadata backend ``open_stores`` uses for ``file://`` URLs. The default results location is
    the folder ``.results`` under the root (a dot-folder: never taken for a tenant).
    ``lock_timeout`` (seconds) bounds the wait for a folder lock held by another writer.
    """
    from dq_stores.results.files import FilePayloadStore

    if options:
        name = sorted(options)[0]
        raise InvalidArtifactError(f"unknown option {name!r} for file:// stores", field=name)
    if isinstance(lock_timeout, bool) or not isinstance(lock_timeout, int | float) or lock_timeout <= 0:
        raise InvalidArtifactError("lock_timeout must be a positive number of seconds", field="lock_timeout")
    root = root_from_url(url)
    if os.path.exists(root) and not os.path.isdir(root):
        raise InvalidArtifactError(f"the store root {root!r} is not a folder", field="url")
    if not create and not os.path.isdir(root):
        raise StoreNotFoundError(f"no store at {redact(url)}: {root} does not exist")
    default = FilePayloadStore(os.path.join(root, ".results"))
    job_runs = FilesystemJobRunStore(root, lock_timeout=lock_timeout)
    return Backend(
        contracts=FilesystemContractStore(root, lock_timeout=lock_timeout),
        job_definitions=FilesystemJobDefinitionStore(root, lock_timeout=lock_timeout),
        action_profiles=FilesystemActionProfileStore(root, lock_timeout=lock_timeout),
        job_runs=job_runs,
        url=redact(url),
        close=job_runs.close,
        default_results=lambda: default,
    )


def open_filesystem_stores(url: str, **options: Any) -> Stores:
    """``open_stores`` for a ``file://`` URL, ignoring the environment (kept for existing callers)."""
    from dq_stores.stores import open_stores

    root_from_url(url)  # a file:// URL, or InvalidArtifactError
    return open_stores(url, use_env=False, **options)
