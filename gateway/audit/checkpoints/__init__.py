"""Signed checkpoints of the audit trail, kept outside the database, one set per chain.

A hash chain cannot see its last rows cut off, so the gateway writes checkpoints: the
number of rows ever appended (the head row's seq) and the head hash, authenticated with
HMAC-SHA256. ``verify`` checks the chain against its checkpoints, so rows removed from
the tail (or a chain rewritten from some row on) are caught.

**Bound to their chain.** Several stores may share one checkpoint directory (the default
``var/audit-checkpoints`` is relative; CERT and production run from one directory; an
operator moves from SQLite to PostgreSQL or starts afresh with a new database). Each
chain's checkpoints would be false evidence against the others, so every checkpoint
names its chain and lives in the chain's own subdirectory,
``<dir>/chain-<first 16 hex of the id>/checkpoint-<seq>.json``. A chain's id is the hash
of its row 1 (what its first row chains to the genesis with; a later row's hash depends
on it, so no two chains share it). ``audit prune`` removes row 1, so it leaves a signed
*prune record* in the chain's subdirectory: the seq of the first row kept and the hash
it continues from, the same facts the ``audit.pruned`` row states; a pruned store is
recognised by its first row matching one. A chain pruned before prune records existed is
bound from its oldest row (its hash is then the id, until the next prune records it).
Each checkpoint also names its store (the URL without credentials), so ``verify`` can say
that another chain was once signed for the same database.

**Old checkpoints** (``version`` 1, from before checkpoints named their chain) sit at the
top of the directory. They are read for what they can still prove: one whose row is in
this chain with the same hash confirms it; one that does not match may be another chain's
or evidence of a cut or rewrite made before the upgrade. ``verify`` cannot tell which,
so it lists them in a warning instead of crying wolf (``audit_cli``). New ones are bound.

The key comes from ``EDIGW_AUDIT__HMAC_KEY`` (``[audit] hmac_key``); without one, a
random key is generated once into ``<checkpoint_dir>/hmac.key`` (mode 0600) with a
warning: keep it — or better, set the variable — since whoever holds the key can
sign a checkpoint.

The parts: ``signed`` (the documents and their MACs), ``keys`` (the directory and the
key), ``files`` (the directory on disk) and ``binding`` (a chain's id, its checkpoints).
Callers import from here.
"""

from gateway.audit.checkpoints.binding import ChainCheckpoints, TrailHead, chain_id, first_row
from gateway.audit.checkpoints.files import CheckpointDir
from gateway.audit.checkpoints.keys import default_dir, directory, load_key, store_label
from gateway.audit.checkpoints.signed import (
    KEEP,
    KEY_FILE,
    Checkpoint,
    PruneRecord,
    authenticate,
    prune_record,
)

__all__ = [
    "KEEP",
    "KEY_FILE",
    "ChainCheckpoints",
    "Checkpoint",
    "CheckpointDir",
    "PruneRecord",
    "TrailHead",
    "authenticate",
    "chain_id",
    "default_dir",
    "directory",
    "first_row",
    "load_key",
    "prune_record",
    "store_label",
]
