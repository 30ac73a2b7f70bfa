"""``records verify``: every segment re-hashed and compared with the hashes the audit chain
holds (phase 2 reads them from the chain's ``records.segment_written`` rows; here the caller
hands them in).

A segment is *missing* (expected, not stored), *extra* (stored, never entered in the chain:
a mover killed between its put and its audit row, or a planted file), *altered* (its bytes
hash to something else; the damaged record is named when it can be found) or *unreadable*
(the storage failed). ``deep`` also opens every record (with the keyring, for an encrypted
segment), which proves the keys still open what they sealed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from gateway.records import crypto, errors, segment, storage


@dataclass(frozen=True, kw_only=True)
class Problem:
    segment: str
    #: missing | extra | altered | unreadable
    kind: str
    message: str
    #: the damaged record's id, when located
    record: str | None = None


@dataclass(kw_only=True)
class Report:
    #: segments that hashed to what the chain holds
    ok: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    #: records opened (``deep``)
    records: int = 0

    @property
    def passed(self) -> bool:
        return not self.problems

    def of(self, kind: str) -> list[str]:
        return [p.segment for p in self.problems if p.kind == kind]


def verify(
    store: storage.SegmentStorage,
    expected: Iterable[tuple[str, str]],
    *,
    keyring: crypto.Keyring | None = None,
    deep: bool = False,
) -> Report:
    """Compare the segments of ``store`` with ``expected`` (name, sha256) pairs."""
    report = Report()
    want: dict[str, str] = {}
    for name, sha in expected:
        if name in want and want[name] != sha:
            report.problems.append(
                Problem(
                    segment=name,
                    kind="altered",
                    message=f"segment {name}: the chain holds two hashes for it",
                )
            )
        want[name] = sha
    stored = set(store.list())
    for name in sorted(set(want) - stored):
        report.problems.append(
            Problem(
                segment=name,
                kind="missing",
                message=f"segment {name}: entered in the audit chain, not in the archive",
            )
        )
    for name in sorted(stored):
        if name not in want:
            report.problems.append(
                Problem(
                    segment=name,
                    kind="extra",
                    message=f"segment {name}: in the archive, never entered in the audit chain",
                )
            )
            continue
        _check(store, name, want[name], keyring, deep, report)
    return report


def _check(
    store: storage.SegmentStorage,
    name: str,
    sha: str,
    keyring: crypto.Keyring | None,
    deep: bool,
    report: Report,
) -> None:
    try:
        data = store.get(name)
    except (errors.StorageError, errors.SegmentMissing) as exc:
        report.problems.append(Problem(segment=name, kind="unreadable", message=exc.message))
        return
    got = hashlib.sha256(data).hexdigest()
    if got != sha:
        damage = segment.locate_damage(name, data, sha, got)
        report.problems.append(
            Problem(segment=name, kind="altered", message=damage.message, record=damage.record)
        )
        return
    if deep:
        try:
            seg = segment.Segment(name, data, keyring=keyring, expected_sha256=sha)
            for _ in seg:
                report.records += 1
        except errors.SegmentDamaged as exc:
            report.problems.append(
                Problem(segment=name, kind="altered", message=exc.message, record=exc.record)
            )
            return
        except errors.SealError as exc:
            report.problems.append(Problem(segment=name, kind="unreadable", message=exc.message))
            return
    report.ok.append(name)
