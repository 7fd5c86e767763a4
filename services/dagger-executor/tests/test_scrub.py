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


def stream_through(scrub: Scrubber, pieces: list[str]) -> str:
    stream = scrub.stream()
    return "".join(stream.feed(piece) for piece in pieces) + stream.end()


def test_a_stream_split_anywhere_is_scrubbed_as_one_text() -> None:
    scrub = Scrubber([SECRET, "abc"])
    raw = SECRET.encode()
    text = (
        f"x {SECRET} y {base64.b64encode(raw).decode()} z {raw.hex()}\n"
        f"abcab{SECRET[:5]} {SECRET}{SECRET}abc"
    )
    whole = scrub(text)
    assert SECRET not in whole
    for i in range(len(text) + 1):
        assert stream_through(scrub, [text[:i], text[i:]]) == whole, i
    for i in range(0, len(text) + 1, 3):
        for j in range(i, len(text) + 1, 2):
            assert stream_through(scrub, [text[:i], text[i:j], text[j:]]) == whole, (i, j)
    assert stream_through(scrub, list(text)) == whole  # one character per write


def test_a_stream_holds_back_only_what_may_begin_a_secret() -> None:
    stream = Scrubber([SECRET]).stream()
    assert stream.feed("plain line\n") == "plain line\n"  # let out at once
    assert stream.feed("token: hunt") == "token: "  # "hunt" may begin the secret
    assert stream.feed("er2-very-secret and more\n") == f"{MASK} and more\n"
    assert stream.feed("hunted") == "hunted"  # no form goes on like this
    assert stream.feed("hunter") == ""
    assert stream.end() == "hunter"  # the end: a part of a secret is not the secret


def test_a_stream_without_secrets_holds_nothing_back() -> None:
    stream = Scrubber().stream()
    assert stream.feed("half a li") == "half a li"
    assert stream.end() == ""
