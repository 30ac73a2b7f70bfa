"""The adapter conformance kit: one pytest suite that every adapter must pass.

An adapter author subclasses ``AdapterConformance`` in a test module, provides four
fixtures and one attribute, and gets the checks the dispatcher relies on, run against
their real adapter and a real test receiver::

    import pytest
    from adapters import testing

    class TestMyAdapterConformance(testing.AdapterConformance):
        bad_options = [({"url": "ftp://x"}, "url")]   # (options, text the error must name)

        @pytest.fixture
        def receiver(self, tmp_path) -> testing.Receiver:
            return MyReceiver(tmp_path)                  # what actually arrived, read back

        @pytest.fixture
        def adapter(self, receiver) -> MyAdapter:       # NOT opened: the kit opens it
            return MyAdapter(name="mine", options=MyAdapter.Options(url=receiver.url))

        @pytest.fixture
        def unreachable_adapter(self) -> MyAdapter:     # its receiver is down / absent
            return MyAdapter(name="mine", options=MyAdapter.Options(url="https://127.0.0.1:9"))

What is checked (each test's docstring says it again):

* ``send`` returns a ``Receipt``, the receiver holds the message under its delivery id,
  and it works without a prior ``open`` (a failed ``open`` at start-up is only logged);
* ``send`` is idempotent per delivery id: the same delivery sent twice leaves one logical
  message (copies may exist — a lost confirm — but under the same id, with the same body);
* every failure is a ``TransientError``, ``PermanentError`` or ``OutageError``: a receiver
  that is down gives ``TransientError`` or ``OutageError``, never a library exception;
* a send cancelled at any point (anyio ``move_on_after``) lets the cancellation through,
  leaves no partial message and no leftovers at the receiver, and the next send succeeds;
* ``close`` releases every connection (file descriptors and tasks back to where they were)
  and may be called twice;
* the ``Options`` model refuses unknown keys and each of ``bad_options``, naming the key;
* a message the transport cannot carry (a content type holding CR LF or NUL) raises
  ``MessageError`` — the message's own fault, never a ``TransientError`` that would count
  against the breaker — or, where the transport does not put that value in a header or
  name, arrives intact;
* ``check()`` returns a ``Health``: ok when the receiver is there and, unless the class sets
  ``check_probes_receiver = False``, not ok (without raising) when it is not.

The receiver fixture must be fresh per test (a new directory, queue, server): the kit
asserts on *everything* it holds. The tests are ``async``; pytest-asyncio runs them. This
module imports pytest, so import it from tests only.
"""

from __future__ import annotations

import abc
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import anyio
import anyio.lowlevel
import pytest
from pydantic import ValidationError

from gateway import errors, models

#: the errors an adapter may raise from ``send`` (``MessageError`` is a ``PermanentError``)
DELIVERY_ERRORS = (errors.TransientError, errors.PermanentError, errors.OutageError)

#: values no transport can carry in a header, property or file name
UNCARRIABLE = ("application/json\r\nX-Injected: 1", "application/json\x00")

#: how long the kit waits for tasks and descriptors to settle after ``close``
SETTLE_S = 3.0


@dataclass(frozen=True)
class Received:
    """One complete message as the receiver holds it."""

    #: the delivery id the receiver saw (file name stem, message id, Idempotency-Key)
    id: str
    #: the bytes that arrived
    body: bytes


class Receiver(abc.ABC):
    """The author's window on the real receiving end, so tests assert on real state."""

    @abc.abstractmethod
    async def received(self) -> list[Received]:
        """Every complete message the receiver holds now, duplicates included."""

    async def leftovers(self) -> list[str]:
        """Anything else lying at the receiver: temp files, partial uploads, aborted posts."""
        return []


def make_message(
    *, delivery_id: str | None = None, body: bytes | None = None, attempt: int = 1
) -> models.OutboundMessage:
    """An ``OutboundMessage`` like the dispatcher's, with a fresh delivery id by default."""
    delivery_id = delivery_id or f"dlv_{uuid.uuid4().hex}"
    return models.OutboundMessage(
        delivery_id=delivery_id,
        filing_id=f"fil_{delivery_id.removeprefix('dlv_')}",
        adapter="conformance",
        attempt=attempt,
        filing_type=models.FilingType.ISF,
        environment=models.Environment.CERT,
        reference="ISF-CONFORMANCE-1",
        filer_code="XYZ",
        content_type="application/json",
        body=body
        if body is not None
        else b'{"isf": "conformance", "id": "' + delivery_id.encode() + b'"}',
    )


def assert_delivery_error(exc: BaseException) -> None:
    """Fail unless ``exc`` is one of the three errors an adapter may raise."""
    assert isinstance(exc, DELIVERY_ERRORS), (
        f"{type(exc).__module__}.{type(exc).__name__} crossed out of the adapter: "
        f"translate it to TransientError, PermanentError or OutageError ({exc!r})"
    )
    assert str(exc), f"{type(exc).__name__} without a message"


def open_descriptors() -> int | None:
    """Open file descriptors of this process (Linux), or None where unknown."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


async def _settled(
    baseline_fds: int | None, baseline_tasks: set[int]
) -> tuple[int | None, list[anyio.TaskInfo]]:
    """Wait up to SETTLE_S for fds and tasks to come back to their baselines."""
    with anyio.move_on_after(SETTLE_S):
        while True:
            extra = [t for t in anyio.get_running_tasks() if t.id not in baseline_tasks]
            fds = open_descriptors()
            if not extra and (fds is None or baseline_fds is None or fds <= baseline_fds):
                break
            await anyio.sleep(0.05)
    extra = [t for t in anyio.get_running_tasks() if t.id not in baseline_tasks]
    return open_descriptors(), extra


class AdapterConformance:
    """Subclass as ``TestXxxConformance`` and provide the fixtures below."""

    #: (options, text the validation error must contain) pairs the Options model must refuse
    bad_options: ClassVar[Iterable[tuple[dict[str, Any], str]]] = ()
    #: False when ``check()`` does not probe the receiver (it only reports local state)
    check_probes_receiver: ClassVar[bool] = True
    #: body size for the cancellation test: big enough to be cancelled mid-transfer
    cancel_body_bytes: ClassVar[int] = 1 << 20
    #: delays (seconds) after which a send is cancelled
    cancel_after_s: ClassVar[tuple[float, ...]] = (0.0, 0.0005, 0.002, 0.01, 0.05)

    # --- fixtures the author provides -------------------------------------------------

    @pytest.fixture
    def receiver(self) -> Receiver:
        """A fresh ``Receiver`` on the real receiving end."""
        raise NotImplementedError("define a `receiver` fixture returning a testing.Receiver")

    @pytest.fixture
    def adapter(self) -> Any:
        """An adapter (not opened) that sends to ``receiver``."""
        raise NotImplementedError("define an `adapter` fixture (not opened)")

    @pytest.fixture
    def unreachable_adapter(self) -> Any:
        """An adapter (not opened) whose receiver is down or absent."""
        raise NotImplementedError("define an `unreachable_adapter` fixture (not opened)")

    # --- plumbing -----------------------------------------------------------------------

    @pytest.fixture
    async def opened(self, adapter: Any) -> AsyncIterator[Any]:
        await adapter.open()
        try:
            yield adapter
        finally:
            await adapter.close()

    @staticmethod
    async def _ids(receiver: Receiver) -> dict[str, list[bytes]]:
        out: dict[str, list[bytes]] = {}
        for item in await receiver.received():
            out.setdefault(item.id, []).append(item.body)
        return out

    # --- the checks ---------------------------------------------------------------------

    @pytest.mark.asyncio
    @pytest.mark.parametrize("content_type", UNCARRIABLE)
    async def test_an_uncarriable_message_is_a_message_fault(
        self, opened: Any, receiver: Receiver, content_type: str
    ) -> None:
        """A content type with CR LF or NUL: MessageError (nothing arrives), or intact."""
        message = make_message().model_copy(update={"content_type": content_type})
        try:
            await opened.send(message)
        except errors.MessageError:
            assert message.delivery_id not in await self._ids(receiver)
            return
        except Exception as exc:
            pytest.fail(f"{type(exc).__name__} for an uncarriable message, not MessageError")
        assert (await self._ids(receiver)).get(message.delivery_id) == [message.body]

    @pytest.mark.asyncio
    async def test_options_refuse_unknown_keys_by_name(self, adapter: Any) -> None:
        """The Options model round-trips its own config and names an unknown key."""
        model = type(adapter).Options
        good = adapter.options.model_dump(mode="json")
        assert model.model_validate(good) == adapter.options
        with pytest.raises(ValidationError) as info:
            model.model_validate({**good, "no_such_option": 1})
        assert "no_such_option" in str(info.value)

    @pytest.mark.asyncio
    async def test_options_refuse_bad_config_with_a_clear_message(self, adapter: Any) -> None:
        """Each of ``bad_options`` is refused, and the message names what is wrong."""
        cases = list(self.bad_options)
        assert cases, "list at least one (options, expected text) pair in bad_options"
        model = type(adapter).Options
        for options, expected in cases:
            with pytest.raises(ValidationError) as info:
                model.model_validate(options)
            assert expected in str(info.value), f"{expected!r} not in: {info.value}"

    @pytest.mark.asyncio
    async def test_send_delivers_one_message_under_its_delivery_id(
        self, adapter: Any, receiver: Receiver
    ) -> None:
        """Without a prior open(), send returns a Receipt and the receiver holds the message."""
        try:
            message = make_message()
            receipt = await adapter.send(message)
            assert isinstance(receipt, models.Receipt)
            assert await self._ids(receiver) == {message.delivery_id: [message.body]}
            assert await receiver.leftovers() == []
        finally:
            await adapter.close()

    @pytest.mark.asyncio
    async def test_send_is_idempotent_per_delivery_id(
        self, opened: Any, receiver: Receiver
    ) -> None:
        """The same delivery sent twice leaves one logical message: one id, one body."""
        first = make_message()
        again = make_message(delivery_id=first.delivery_id, body=first.body, attempt=2)
        await opened.send(first)
        await opened.send(again)
        held = await self._ids(receiver)
        assert set(held) == {first.delivery_id}
        assert set(held[first.delivery_id]) == {first.body}

    @pytest.mark.asyncio
    async def test_distinct_deliveries_stay_distinct(self, opened: Any, receiver: Receiver) -> None:
        """Three deliveries arrive as three messages, each with its own body."""
        messages = [make_message() for _ in range(3)]
        for message in messages:
            await opened.send(message)
        held = await self._ids(receiver)
        assert {k: set(v) for k, v in held.items()} == {m.delivery_id: {m.body} for m in messages}

    @pytest.mark.asyncio
    async def test_unreachable_receiver_is_transient_or_outage(
        self, unreachable_adapter: Any
    ) -> None:
        """A receiver that is down gives TransientError or OutageError, not a library error."""
        try:
            with contextlib.suppress(*DELIVERY_ERRORS):
                await unreachable_adapter.open()
            with pytest.raises(BaseException) as info:  # noqa: PT011 - checked just below
                await unreachable_adapter.send(make_message())
            assert_delivery_error(info.value)
            assert isinstance(info.value, errors.TransientError | errors.OutageError), (
                f"a receiver that is down should be retried or deferred, got {info.value!r}"
            )
        finally:
            await unreachable_adapter.close()

    @pytest.mark.asyncio
    async def test_check_reports_health(self, opened: Any, unreachable_adapter: Any) -> None:
        """check() says ok for a live receiver and, without raising, not ok for a dead one."""
        health = await opened.check()
        assert isinstance(health, models.Health)
        assert health.ok, health.detail
        try:
            with contextlib.suppress(*DELIVERY_ERRORS):
                await unreachable_adapter.open()
            down = await unreachable_adapter.check()
            assert isinstance(down, models.Health)
            if self.check_probes_receiver:
                assert not down.ok, down.detail
                assert down.detail
        finally:
            await unreachable_adapter.close()

    @pytest.mark.asyncio
    async def test_cancelled_send_leaves_nothing_half_sent(
        self, opened: Any, receiver: Receiver
    ) -> None:
        """A send cancelled at any point leaves no partial message; a resend then succeeds."""
        body = (b"X" * (self.cancel_body_bytes - 2)).join([b"[", b"]"])
        cancelled = []
        for i, delay in enumerate(self.cancel_after_s):
            message = make_message(body=body + str(i).encode())
            with anyio.move_on_after(delay) as scope:
                await opened.send(message)
            if delay == 0:
                assert scope.cancelled_caught, "send swallowed a cancellation"
            if scope.cancelled_caught:
                cancelled.append(message)
            held = await self._ids(receiver)
            for got in held.get(message.delivery_id, []):
                assert got == message.body, f"partial message after cancel at {delay}s"
            assert await receiver.leftovers() == [], f"leftovers after cancel at {delay}s"
        for message in cancelled:  # the dispatcher sends the same delivery again
            await opened.send(message.model_copy(update={"attempt": 2}))
        held = await self._ids(receiver)
        for message in cancelled:
            assert set(held[message.delivery_id]) == {message.body}
        assert await receiver.leftovers() == []

    @pytest.mark.asyncio
    async def test_close_releases_connections(self, adapter: Any, receiver: Receiver) -> None:
        """After open, send, check and close, descriptors and tasks are back; close twice is ok."""
        await anyio.lowlevel.checkpoint()
        baseline_fds = open_descriptors()
        baseline_tasks = {t.id for t in anyio.get_running_tasks()}
        await adapter.open()
        await adapter.send(make_message())
        await adapter.check()
        await adapter.close()
        await adapter.close()
        fds, extra = await _settled(baseline_fds, baseline_tasks)
        assert not extra, f"tasks left running after close: {[t.name for t in extra]}"
        if fds is not None and baseline_fds is not None:
            assert fds <= baseline_fds, f"{fds - baseline_fds} descriptors left open by close"
