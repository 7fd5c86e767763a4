"""Sealing secrets to the executors' key (aiop.contracts.secrets): what the public key
seals, only the private key opens, and only under the name it was sealed for."""

import pytest

from aiop.contracts.secrets import (
    CannotOpen,
    NotAKey,
    generate_key_pair,
    key_id,
    load_private_key,
    load_public_key,
    open_sealed,
    seal,
)

VALUE = "hunter2-ünïcode-value".encode()
AD = b"default.API_TOKEN"


def test_what_the_public_key_seals_the_private_key_opens() -> None:
    private_pem, public_pem = generate_key_pair()
    private, public = load_private_key(private_pem), load_public_key(public_pem)
    sealed = seal(public, VALUE, AD)
    assert VALUE not in sealed
    assert VALUE.hex().encode() not in sealed
    assert open_sealed(private, sealed, AD) == VALUE
    assert seal(public, VALUE, AD) != sealed  # a fresh ephemeral key and nonce each time
    assert key_id(public) == key_id(private.public_key())


def test_another_name_another_key_or_an_altered_ciphertext_does_not_open() -> None:
    private_pem, public_pem = generate_key_pair()
    private, public = load_private_key(private_pem), load_public_key(public_pem)
    other = load_private_key(generate_key_pair()[0])
    sealed = seal(public, VALUE, AD)
    for key, data, ad in (
        (private, sealed, b"default.OTHER"),  # moved to another name
        (private, sealed, b"other.API_TOKEN"),  # or another project
        (other, sealed, AD),  # another executor key
        (private, sealed[:-1] + bytes([sealed[-1] ^ 1]), AD),  # altered
        (private, sealed[:40], AD),  # cut short
        (private, b"\x02" + sealed[1:], AD),  # an unknown version
    ):
        with pytest.raises(CannotOpen) as refused:
            open_sealed(key, data, ad)
        assert VALUE.decode() not in str(refused.value)


def test_the_public_key_file_cannot_be_the_private_key() -> None:
    private_pem, public_pem = generate_key_pair()
    with pytest.raises(NotAKey):
        load_public_key(private_pem)
    with pytest.raises(NotAKey):
        load_private_key(public_pem)
    with pytest.raises(NotAKey):
        load_public_key(b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
