"""The fetcher protocol: how the cache asks the identity provider for a user.

A fetcher is any callable ``fetcher(user_id, service_name)`` that returns
:class:`UserAttributes`, a mapping in the identity provider's wire format,
or ``None`` when the provider does not know the user. :func:`call_fetcher`
is the one place that calls fetchers: it checks what they return and turns
every failure into :class:`FetchError`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from .attributes import UserAttributes
from .exceptions import FetchError, InvalidAttributesError

__all__ = ["Fetcher", "call_fetcher"]

logger = logging.getLogger(__name__)


@runtime_checkable
class Fetcher(Protocol):
    """Produces a user's attributes for one service from the source of truth."""

    def __call__(
        self, user_id: str, service_name: str
    ) -> UserAttributes | Mapping[str, Any] | None:
        """Return the user's attributes, or ``None`` for an unknown user.

        Raises:
            FetchError: The attributes cannot be had right now. Any other
                exception is treated as a ``FetchError`` too.
        """


def call_fetcher(
    fetcher: Fetcher, user_id: str, service_name: str
) -> UserAttributes | None:
    """Ask ``fetcher`` for a user and check that the answer is about that user.

    Returns:
        The attributes, or ``None`` when the identity provider does not know
        the user.

    Raises:
        FetchError: The fetcher failed, or answered with something that is
            not valid attributes for ``user_id`` in ``service_name``.
    """
    try:
        result = fetcher(user_id, service_name)
    except FetchError:
        raise
    except Exception as exc:
        raise FetchError(f"fetcher raised {type(exc).__name__}") from exc

    if result is None:
        return None

    if isinstance(result, Mapping):
        result = _from_wire(result, service_name)

    if not isinstance(result, UserAttributes):
        raise FetchError(
            f"fetcher returned {type(result).__name__}, not UserAttributes"
        )

    if result.user_id != user_id:
        raise FetchError("fetcher returned attributes of another user")

    if result.service_name != service_name:
        raise FetchError("fetcher returned attributes of another service")

    return result


def _from_wire(data: Mapping[str, Any], service_name: str) -> UserAttributes:
    try:
        return UserAttributes.from_dict(data)
    except InvalidAttributesError as exc:
        raise FetchError(f"identity provider sent invalid attributes: {exc}") from exc
