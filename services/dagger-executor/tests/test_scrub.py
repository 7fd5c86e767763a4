"""Scrubbing secrets, including their base64 and hex encodings (docs/delivery.md, "Secrets in output")."""

import base64

from aiop.dagger_executor.domain.scrub import MASK, Scrubber

SECRET = "hunter2-very-secret"


def test_plain_value_is_masked() -> None:
    assert Scrubber([SECRET])(f"password={SECRET}!") == f"password={MASK}!"


def test_base64_and_hex_forms_are_masked() -> None:
    scrub = Scrubber([SECRET])
    raw = SECRET.encode()
    for form in (
        base64.b64encode(raw).decode(),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode(),
        raw.hex(),
        raw.hex().upper(),
    ):
        out = scrub(f"leak: {form}\n")
        assert form not in out
        assert out == f"leak: {MASK}\n"


def test_longer_secret_containing_a_shorter_one_is_masked_whole() -> None:
    scrub = Scrubber(["abc", "abcdef"])
    assert scrub("x abcdef y abc") == f"x {MASK} y {MASK}"


def test_no_secrets_and_empty_values_leave_text_alone() -> None:
    assert Scrubber()("nothing to hide") == "nothing to hide"
    assert Scrubber([""])("nothing to hide") == "nothing to hide"


def test_regex_metacharacters_in_secrets_are_literal() -> None:
    assert Scrubber(["a.b*c"])("a.b*c axbbc") == f"{MASK} axbbc"
