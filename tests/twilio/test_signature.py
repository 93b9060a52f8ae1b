"""`X-Twilio-Signature` checking against Twilio's own validator and its published vectors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from app.config import ConfigError, load_settings
from app.config_rules import parse_token_map
from app.twilio.signature import (
    TokenBook,
    compute_signature,
    is_valid,
    base_variants,
    url_variants,
)

# twilio/twilio-python tests/unit/test_request_validator.py
URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = [("CallSid", "CA1234567890ABCDE"), ("Digits", "1234"), ("From", "+14158675309"),
          ("To", "+18005551212"), ("Caller", "+14158675309")]
EXPECTED = "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def test_published_vector() -> None:
    assert compute_signature("12345", URL, PARAMS) == EXPECTED
    assert is_valid(URL, PARAMS, EXPECTED, ["12345"])


def test_published_vector_with_repeated_names() -> None:
    params = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]
    assert compute_signature("12345", URL, params) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="


@pytest.mark.parametrize(("url", "signature"), [
    (URL.replace(".com", ".com:1234"), EXPECTED),  # https: the port is dropped
    (URL.replace(".com", ".com:1234").replace("https", "http"), "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="),
    (URL, "kvajT1Ptam85bY51eRf/AJRuM3w="),  # signed with :443 added
    (URL.replace("https", "http"), "0ZXoZLH/DfblKGATFgpif+LLRf4="),  # signed with :80 added
])
def test_published_port_vectors(url: str, signature: str) -> None:
    assert is_valid(url, PARAMS, signature, ["12345"])
    assert RequestValidator("12345").validate(url, dict(PARAMS), signature)


def test_url_variants_keep_path_and_query_exactly() -> None:
    assert url_variants("https://h.test/a%2Fb/?x=%20y&z") == ("https://h.test/a%2Fb/?x=%20y&z",
                                                               "https://h.test:443/a%2Fb/?x=%20y&z")
    assert url_variants("http://h.test:8080/p") == ("http://h.test/p", "http://h.test:8080/p")


@pytest.mark.parametrize("bad", [None, "", "not base64", EXPECTED[:-1], EXPECTED.lower(), "RSOYDt4T1cUTdK1PDd93/VVr8B8=x"])
def test_wrong_or_missing_signature(bad: str | None) -> None:
    assert not is_valid(URL, PARAMS, bad, ["12345"])


def test_every_input_is_signed() -> None:
    assert not is_valid(URL + "&baz=3", PARAMS, EXPECTED, ["12345"])
    assert not is_valid(URL, [*PARAMS, ("Extra", "")], EXPECTED, ["12345"])
    assert not is_valid(URL, PARAMS[1:], EXPECTED, ["12345"])
    assert not is_valid(URL, PARAMS, EXPECTED, ["54321"])
    assert not is_valid(URL, PARAMS, EXPECTED, [])
    assert not is_valid("https://h.test:port/x", PARAMS, EXPECTED, ["12345"])


class _Multi(dict[str, list[str]]):
    """What RequestValidator reads repeated names from (`getall`, as multidict's)."""

    def getall(self, name: str) -> list[str]:
        return self[name]


_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


@settings(max_examples=200, deadline=None)
@given(
    params=st.lists(st.tuples(st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1,
                                      max_size=8), _text), max_size=8),
    token=st.text(min_size=1, max_size=40),
    path=st.text(st.sampled_from("abc/%20?=&"), max_size=20),
    https=st.booleans(),
    port=st.sampled_from(["", ":443", ":80", ":8443"]),
)
def test_same_as_twilio_validator(params: list[tuple[str, str]], token: str, path: str, https: bool,
                                  port: str) -> None:
    url = f"{'https' if https else 'http'}://svc.example{port}/{path}"
    grouped = _Multi()
    for name, value in params:
        grouped.setdefault(name, []).append(value)
    theirs = RequestValidator(token).compute_signature(url, grouped)
    assert compute_signature(token, url, params) == theirs
    assert is_valid(url, params, theirs, ["other", token])


def test_tokens_by_account_with_rotation() -> None:
    book = TokenBook.from_settings("main", "next-main",
                                   '{"AC1": "acct-one", "AC2": ["acct-two-old", "acct-two-new"]}')
    assert book.tokens_for(None) == ("main", "next-main")
    assert book.tokens_for("AC9") == ("main", "next-main")
    assert book.tokens_for("AC1") == ("acct-one",)
    assert book.tokens_for("AC2") == ("acct-two-old", "acct-two-new")
    signed_by_new = compute_signature("acct-two-new", URL, PARAMS)
    assert is_valid(URL, PARAMS, signed_by_new, book.tokens_for("AC2"))
    assert not is_valid(URL, PARAMS, signed_by_new, book.tokens_for("AC1"))
    assert TokenBook.from_settings("", "", "").configured is False


@pytest.mark.parametrize("text", ["[1]", "{", '{"AC1": 3}', '{"AC1": [1]}'])
def test_bad_token_map_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_token_map(text)
    with pytest.raises(ConfigError, match="TWILIO_AUTH_TOKENS"):
        load_settings({"APP_ENV": "test", "TWILIO_AUTH_TOKENS": text})


@pytest.mark.parametrize("base", ["https://h.test", "http://h.test", "https://h.test:8443", "http://h.test:80/prefix",
                                  "https://user@h.test/a/b", "http://[::1]:8000", "https://h.test/p%2F"])
@pytest.mark.parametrize("rest", ["/twilio/status", "/twilio/status?accountId=A1&x=%20y", "/a%2Fb/?q=:99", ""])
def test_variants_of_the_public_url_are_those_of_each_url(base: str, rest: str) -> None:
    variants = base_variants(base)
    assert variants is not None
    assert (variants[0] + rest, variants[1] + rest) == url_variants(base + rest)


@pytest.mark.parametrize("base", ["h.test", "/relative", "https://h.test:port", "https://h.test/?q=1"])
def test_a_base_that_is_not_plain_is_varied_per_url(base: str) -> None:
    assert base_variants(base) is None
