"""Records: five years of filings kept provable, searchable and encrypted at rest (issue 20).

Phase 1, the parts that stand alone (no store, config, CLI or API wiring yet):

* ``storage``   the tiny segment storage interface and its directory backend
* ``crypto``    AES-GCM sealing with a rotating keyring (key id + nonce in every value)
* ``segment``   the immutable, compressed archive segment: writer and verifying reader
* ``extract``   search fields taken from a filing's payload by configurable paths
* ``index``     the SQLite search index beside the segments, keyset-paginated
* ``verify``    every segment re-hashed against the hashes the audit chain holds
* ``retention`` pure: live period, total retention and legal holds → live/archive/purge/held

The room imports only the leaves (``gateway.errors``, ``gateway.models``); the store will
import ``crypto`` for its payload columns, so nothing here may import the store.
"""
