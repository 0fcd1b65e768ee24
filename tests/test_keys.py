"""Tests for :mod:`rbac_abac_cache.keys`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from rbac_abac_cache.exceptions import (
    AttributeCacheError,
    ConfigurationError,
    InvalidUserIdError,
)
from rbac_abac_cache.keys import (
    MAX_USER_ID_LENGTH,
    KeySpace,
    check_key_prefix,
    check_service_name,
    normalize_user_id,
)

FAMILIES: dict[str, Callable[[KeySpace, str], str]] = {
    "entry": KeySpace.entry,
    "lock": KeySpace.lock,
    "generation": KeySpace.generation,
    "rate_limit": KeySpace.rate_limit,
}

# Characters that matter to keys (separators, glob and hash-tag syntax, the
# escape character itself) are drawn often; the rest covers all of Unicode
# except control characters and surrogates.
_KEY_CHARACTERS = st.sampled_from(list(":{}*%?[] ~-_.\\/aA0é"))
_OTHER_CHARACTERS = st.characters(
    blacklist_categories=("Cc", "Cs"), blacklist_characters="\u2028\u2029"
)
user_ids = st.one_of(
    st.text(
        alphabet=st.one_of(_KEY_CHARACTERS, _OTHER_CHARACTERS),
        min_size=1,
        max_size=40,
    ),
    st.integers(),
).map(normalize_user_id)
_SERVICE_START = "abcxyzABZ019"
service_names = st.builds(
    str.__add__,
    st.sampled_from(_SERVICE_START),
    st.text(alphabet=_SERVICE_START + "_.-", max_size=8),
)


def keys_of(space: KeySpace, user_id: str) -> dict[str, str]:
    """Return every key of ``user_id`` in ``space``, by family name."""
    return {name: build(space, user_id) for name, build in FAMILIES.items()}


def hash_tag(key: str) -> str:
    """Return the Redis Cluster hash tag: text between first ``{`` and next ``}``."""
    start = key.index("{")
    end = key.index("}", start + 1)
    return key[start + 1 : end]


# normalize_user_id.


@pytest.mark.parametrize(
    ("given_id", "expected"),
    [
        ("alice", "alice"),
        (42, "42"),
        (0, "0"),
        ("007", "007"),
        ("x" * MAX_USER_ID_LENGTH, "x" * MAX_USER_ID_LENGTH),
    ],
)
def test_normalize_user_id_accepts_str_and_int(given_id: Any, expected: str) -> None:
    """Strings pass unchanged and ints become their decimal string."""
    assert normalize_user_id(given_id) == expected


@pytest.mark.parametrize(
    "given_id",
    [
        "user:1",
        "*",
        "{tag}",
        "100%",
        "first last",
        "Zoë",
        "用户",
        "Ωμέγα",
    ],
)
def test_normalize_user_id_accepts_unusual_but_printable_ids(given_id: str) -> None:
    """Ids with ``:``, ``*``, braces, ``%``, spaces or non-ASCII letters work."""
    assert normalize_user_id(given_id) == given_id


@pytest.mark.parametrize(
    "given_id",
    [
        "",
        None,
        "x" * (MAX_USER_ID_LENGTH + 1),
        10 ** (MAX_USER_ID_LENGTH + 1),
        "a\x00b",
        "a\nb",
        "a\rb",
        "a\tb",
        "a\x1bb",
        "a\x7fb",
        "a\x85b",
        "a\u2028b",
        "a\u2029b",
        "a\ud800b",
        "\udfff",
        4.0,
        b"42",
        ["42"],
        True,
        False,
        object(),
    ],
)
def test_normalize_user_id_rejects_bad_ids(given_id: Any) -> None:
    """Empty, None, too long, control characters, surrogates, other types: refused."""
    with pytest.raises(InvalidUserIdError):
        normalize_user_id(given_id)


def test_invalid_user_id_error_is_value_error_and_library_error() -> None:
    """InvalidUserIdError is both a ValueError and an AttributeCacheError."""
    with pytest.raises(ValueError, match="user_id") as caught:
        normalize_user_id("")

    assert isinstance(caught.value, AttributeCacheError)


def test_int_beyond_the_digit_limit_is_an_invalid_user_id() -> None:
    """An int too large to print is an InvalidUserIdError, not a ValueError."""
    with pytest.raises(InvalidUserIdError):
        normalize_user_id(10**5000)


# KeySpace: shape.


def test_keys_have_the_documented_shape() -> None:
    """Keys are ``prefix:{service:escaped id}:family``."""
    space = KeySpace("rbac_abac", "billing_api")

    assert space.entry("42") == "rbac_abac:{billing_api:42}:attrs"
    assert space.lock("42") == "rbac_abac:{billing_api:42}:lock"
    assert space.generation("42") == "rbac_abac:{billing_api:42}:gen"
    assert space.rate_limit("42") == "rbac_abac:{billing_api:42}:ratelimit"


def test_channel_is_shared_by_services_under_one_prefix() -> None:
    """Every service under one prefix announces on the same channel."""
    assert KeySpace("p", "a").channel == KeySpace("p", "b").channel == "p:invalidations"


@pytest.mark.parametrize("user_id", ["a:b", "a{b}", "a*", "a b", "a%3Ab", "ü"])
def test_special_characters_are_escaped_in_keys(user_id: str) -> None:
    """No ``:``, braces, ``*`` or space from the id reaches the key raw."""
    key = KeySpace("rbac_abac", "svc").entry(user_id)
    escaped = key[len("rbac_abac:{svc:") : -len("}:attrs")]

    assert not set(escaped) & set(":{}* ")


def test_escaped_looking_id_does_not_collide_with_its_original() -> None:
    """``a%3Ab`` and ``a:b`` are different users with different keys."""
    space = KeySpace("rbac_abac", "svc")

    assert space.entry("a%3Ab") != space.entry("a:b")


def test_int_and_str_ids_share_keys_once_normalised() -> None:
    """User 42 and user "42" are the same user and share keys."""
    space = KeySpace("rbac_abac", "svc")

    assert space.entry(normalize_user_id(42)) == space.entry("42")


# KeySpace: isolation, over generated ids and services.


@settings(max_examples=150, deadline=None)
@given(service_names, user_ids, service_names, user_ids)
def test_distinct_pairs_share_no_key(
    service_a: str, user_a: str, service_b: str, user_b: str
) -> None:
    """Two distinct (service, user) pairs have no key in common, in any family."""
    assume((service_a, user_a) != (service_b, user_b))

    keys_a = set(keys_of(KeySpace("rbac_abac", service_a), user_a).values())
    keys_b = set(keys_of(KeySpace("rbac_abac", service_b), user_b).values())

    assert not keys_a & keys_b


@settings(max_examples=150, deadline=None)
@given(service_names, user_ids, user_ids)
def test_no_id_reaches_another_key_family(
    service: str, user_a: str, user_b: str
) -> None:
    """No user id yields a key of another family (entry, lock, gen, ratelimit)."""
    space = KeySpace("rbac_abac", service)
    keys_a = keys_of(space, user_a)
    keys_b = keys_of(space, user_b)

    for family_a, key_a in keys_a.items():
        for family_b, key_b in keys_b.items():
            if family_a != family_b:
                assert key_a != key_b
        assert key_a != space.channel


@settings(max_examples=150, deadline=None)
@given(service_names, service_names, user_ids, user_ids)
def test_no_id_reaches_another_services_keys(
    service_a: str, service_b: str, user_a: str, user_b: str
) -> None:
    """No user id of one service yields any key of another service."""
    assume(service_a != service_b)

    keys_a = set(keys_of(KeySpace("rbac_abac", service_a), user_a).values())
    keys_b = set(keys_of(KeySpace("rbac_abac", service_b), user_b).values())

    assert not keys_a & keys_b


@settings(max_examples=150, deadline=None)
@given(service_names, user_ids)
def test_one_pair_shares_one_hash_tag(service: str, user_id: str) -> None:
    """Entry, lock, generation and rate-limit keys of a pair share a hash tag."""
    keys = keys_of(KeySpace("rbac_abac", service), user_id)

    tags = {hash_tag(key) for key in keys.values()}

    assert len(tags) == 1
    (tag,) = tags
    assert tag.startswith(f"{service}:")
    assert "{" not in tag
    assert "}" not in tag


@settings(max_examples=100, deadline=None)
@given(service_names, user_ids, user_ids)
def test_distinct_users_get_distinct_hash_tags(
    service: str, user_a: str, user_b: str
) -> None:
    """Different users of one service hash by different tags."""
    assume(user_a != user_b)
    space = KeySpace("rbac_abac", service)

    assert hash_tag(space.entry(user_a)) != hash_tag(space.entry(user_b))


def test_hash_tag_ignores_braces_in_the_id() -> None:
    """An id made of braces cannot move the hash tag to a part it controls."""
    space = KeySpace("rbac_abac", "svc")

    assert hash_tag(space.entry("}{evil}")) == hash_tag(space.lock("}{evil}"))
    assert "evil" in hash_tag(space.entry("}{evil}"))


# Settings validation.


@pytest.mark.parametrize(
    "prefix", ["", "has space", "a{b", "a}b", "a*b", "x" * 65, None, 7, "é"]
)
def test_bad_key_prefix_raises_naming_the_setting(prefix: Any) -> None:
    """A malformed key_prefix raises ConfigurationError naming key_prefix."""
    with pytest.raises(ConfigurationError, match="key_prefix"):
        KeySpace(prefix, "svc")


@pytest.mark.parametrize("prefix", ["rbac_abac", "app:rbac", "a.b-c_d", "x" * 64])
def test_good_key_prefix_is_accepted(prefix: str) -> None:
    """Letters, digits, ``_ . - :`` up to 64 characters make a valid prefix."""
    assert check_key_prefix(prefix) == prefix


@pytest.mark.parametrize(
    "service",
    ["", "billing api", "billing:api", "{billing}", "-billing", "_b", "x" * 129, None],
)
def test_bad_service_name_raises_naming_the_setting(service: Any) -> None:
    """A malformed service name raises ConfigurationError naming service_name."""
    with pytest.raises(ConfigurationError, match="service_name"):
        KeySpace("rbac_abac", service)


@pytest.mark.parametrize("service", ["billing_api", "inventory-api", "a", "v1.2"])
def test_good_service_name_is_accepted(service: str) -> None:
    """Letters, digits, ``_ . -`` starting with a letter or digit are valid."""
    assert check_service_name(service) == service


def test_service_name_error_names_the_given_setting() -> None:
    """check_service_name names the setting it was asked to check."""
    with pytest.raises(ConfigurationError, match="RBAC_ABAC_SERVICE_NAME"):
        check_service_name("bad name", setting="RBAC_ABAC_SERVICE_NAME")
