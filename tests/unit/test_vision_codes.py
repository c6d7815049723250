"""Signed anti-counterfeit codes: keys, signing, strict verification, QR rendering and finding in photos."""

from __future__ import annotations

import base64
import io
import json
import random
import string

import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from PIL import Image, ImageDraw, ImageFilter

from services.vision.core import codes
from services.vision.core.codes import (
    CROCKFORD,
    PREFIX,
    Claims,
    CodeCheck,
    FoundCode,
    SigningKey,
    SigningKeyError,
    find_codes,
    issue,
    key_id_of,
    new_serial,
    public_key_from_text,
    render_png,
    sign,
    verify_payload,
)

B64URL = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"  # in value order
ISSUED_AT = 1_767_225_600
KEY = SigningKey.from_text("00" * 32)  # a fixed key keeps payloads (and their QR codes) deterministic
OTHER = SigningKey.from_text("11" * 32)
TRUSTED = {KEY.key_id: KEY.public_key}


def _code(key: SigningKey = KEY, product: str = "SKU-12345", batch: str = "B2026-07",
          serial: str = "2FCGPEWZPEFN") -> codes.Code:
    return sign(key, Claims(product, batch, serial, key.key_id, ISSUED_AT))


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _seed(key: SigningKey) -> bytes:
    return key.private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                     serialization.NoEncryption())


# --- keys -----------------------------------------------------------------------------------------


def test_generated_key_round_trips_through_its_text():
    key = SigningKey.generate()
    text = key.to_text()
    assert len(text) == 43 and "=" not in text
    again = SigningKey.from_text(text)
    assert again.key_id == key.key_id
    assert again.to_text() == text
    assert len(key.key_id) == 16 and all(ch in "0123456789abcdef" for ch in key.key_id)
    assert key.key_id != SigningKey.generate().key_id


def test_every_accepted_key_text_gives_the_same_key():
    key = SigningKey.generate()
    seed = _seed(key)
    pem = key.private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    texts = [
        pem,
        seed.hex(),
        seed.hex().upper(),
        base64.b64encode(seed).decode(),  # padded standard base64
        base64.b64encode(seed).decode().rstrip("="),
        base64.urlsafe_b64encode(seed).decode(),  # padded base64url
        f"  {key.to_text()}\n",  # surrounding whitespace, as in an env file
    ]
    for text in texts:
        assert SigningKey.from_text(text).key_id == key.key_id


def test_key_repr_does_not_show_the_secret():
    key = SigningKey.generate()
    assert key.to_text() not in repr(key)
    assert key.key_id in repr(key)


def test_public_key_texts():
    raw = KEY.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pem = KEY.public_key.public_bytes(serialization.Encoding.PEM,
                                      serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    for text in (KEY.public_text, raw.hex(), base64.b64encode(raw).decode(), pem):
        assert key_id_of(public_key_from_text(text)) == KEY.key_id
    assert len(KEY.public_text) == 43


def _ec_pem() -> str:
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


def _encrypted_pem() -> str:
    return KEY.private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.BestAvailableEncryption(b"correct horse")).decode()


@pytest.mark.parametrize("text", [
    "",
    "   ",
    "this is not a key at all",
    "ab" * 31,  # 31 bytes of hex
    "ab" * 33,  # 33 bytes of hex
    "zz" * 32,  # 64 characters, not hex
    base64.b64encode(b"s3cr3t-but-only-31-bytes-long!!").decode(),
    base64.b64encode(bytes(range(33))).decode(),
    "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5IGF0IGFsbA==\n-----END PRIVATE KEY-----\n",
    _ec_pem(),
    _encrypted_pem(),
], ids=["empty", "blank", "words", "hex31", "hex33", "not-hex", "b64-31", "b64-33", "bad-pem", "ec-pem",
        "encrypted-pem"])
def test_bad_key_texts_raise_without_echoing_the_secret(text):
    with pytest.raises(SigningKeyError) as info:
        SigningKey.from_text(text)
    message = str(info.value)
    assert message
    if text.strip():
        assert text.strip() not in message
        for line in text.strip().splitlines():
            if len(line) >= 8 and not line.startswith("-----"):
                assert line not in message
    assert info.value.__cause__ is None  # no chained exception that might quote the text


def test_bad_public_key_texts_raise():
    for text in ("", "nope", "ab" * 31, _ec_pem()):
        with pytest.raises(SigningKeyError):
            public_key_from_text(text)


# --- signing and verifying ------------------------------------------------------------------------


def test_payload_format_is_the_documented_one():
    code = _code()
    prefix, body, signature = code.payload.split(".")
    assert prefix == PREFIX == "SAI1"
    assert code.signature == signature
    assert code.serial == "2FCGPEWZPEFN"
    document = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
    assert document == (f'{{"b":"B2026-07","k":"{KEY.key_id}","p":"SKU-12345","s":"2FCGPEWZPEFN",'
                        f'"t":{ISSUED_AT}}}')
    # Anyone with the raw public key can check it with plain Ed25519 over the ASCII "SAI1.<body>".
    KEY.public_key.verify(base64.urlsafe_b64decode(signature + "=="), f"SAI1.{body}".encode("ascii"))


def test_signed_code_verifies():
    code = _code()
    check = verify_payload(code.payload, TRUSTED)
    assert check == CodeCheck(valid=True, claims=Claims("SKU-12345", "B2026-07", "2FCGPEWZPEFN", KEY.key_id,
                                                        ISSUED_AT),
                              reason=f"signature valid (key {KEY.key_id})", ours=True)
    assert verify_payload(f"  {code.payload}\n", TRUSTED).valid  # a scanner's trailing newline is fine


def test_non_ascii_ids_round_trip():
    code = _code(product="Käse-Ü1", batch="партия-7")
    check = verify_payload(code.payload, TRUSTED)
    assert check.valid and check.claims.product_id == "Käse-Ü1" and check.claims.batch == "партия-7"


def _alternatives(ch: str, rng: random.Random) -> set[str]:
    """A different character that flips only the lowest bit of its base64 value (the bit an unpadded final
    character does not use), and a random different one from the base64url alphabet or '.'."""
    pool = [c for c in B64URL + "." if c != ch]
    alternatives = {rng.choice(pool)}
    if ch in B64URL:
        alternatives.add(B64URL[B64URL.index(ch) ^ 1])
    return alternatives


def test_changing_any_single_character_invalidates_the_code():
    payload = _code().payload
    rng = random.Random(5)
    tried = 0
    for i, ch in enumerate(payload):
        for replacement in _alternatives(ch, rng):
            altered = payload[:i] + replacement + payload[i + 1:]
            assert altered != payload
            check = verify_payload(altered, TRUSTED)
            assert not check.valid, (i, ch, replacement)
            assert check.claims is None
            tried += 1
    assert tried > 1.5 * len(payload)


def test_signature_of_another_key_is_unknown_until_that_key_is_trusted():
    code = _code(OTHER)
    check = verify_payload(code.payload, TRUSTED)
    assert check == CodeCheck(valid=False, claims=None, reason=f"signed with an unknown key {OTHER.key_id}",
                              ours=True)
    both = {**TRUSTED, OTHER.key_id: OTHER.public_key}
    assert verify_payload(code.payload, both).valid
    assert verify_payload(_code().payload, both).valid
    assert verify_payload(_code().payload, {}).reason == f"signed with an unknown key {KEY.key_id}"


def test_forged_signature_claiming_our_key_is_invalid():
    signed_text = _code().payload.rsplit(".", 1)[0]  # our key id is in the body
    forged = f"{signed_text}.{_b64url(OTHER.private.sign(signed_text.encode()))}"
    check = verify_payload(forged, TRUSTED)
    assert check == CodeCheck(valid=False, claims=None, ours=True,
                              reason="signature invalid: the code was forged or altered")


def test_body_of_one_code_with_the_signature_of_another_is_invalid():
    first, second = issue(KEY, "SKU-1", "B1", 2, ISSUED_AT)
    swapped = first.payload.rsplit(".", 1)[0] + "." + second.signature
    assert verify_payload(first.payload, TRUSTED).valid and verify_payload(second.payload, TRUSTED).valid
    assert verify_payload(swapped, TRUSTED).reason == "signature invalid: the code was forged or altered"


def _body(document: object) -> str:
    return _b64url(json.dumps(document, separators=(",", ":")).encode())


SIG = _b64url(bytes(64))
GOOD_DOC = {"b": "B1", "k": KEY.key_id, "p": "P1", "s": "S1", "t": 1}


@pytest.mark.parametrize("text", [
    "SAI1.",
    "SAI1.abc",
    "SAI1.a.b.c",
    f"SAI1..{SIG}",
    f"SAI1.!!!.{SIG}",
    f"SAI1.{_body(GOOD_DOC)}=.{SIG}",  # padding is not canonical
    f"SAI1.{_body(GOOD_DOC)}.{SIG}==",
    f"SAI1.{_body(GOOD_DOC)}.{_b64url(bytes(63))}",
    f"SAI1.{_b64url(b'hello')}.{SIG}",
    f"SAI1.{_b64url(bytes([0xff, 0xfe, 0x00]))}.{SIG}",
    f"SAI1.{_body([1, 2, 3])}.{SIG}",
    f"SAI1.{_body({k: v for k, v in GOOD_DOC.items() if k != 's'})}.{SIG}",
    f"SAI1.{_body({**GOOD_DOC, 'x': 1})}.{SIG}",
    f"SAI1.{_body({**GOOD_DOC, 't': '1'})}.{SIG}",
    f"SAI1.{_body({**GOOD_DOC, 't': True})}.{SIG}",
    f"SAI1.{_body({**GOOD_DOC, 't': 1.5})}.{SIG}",
    f"SAI1.{_body({**GOOD_DOC, 'p': 7})}.{SIG}",
    f"SAI1.{_body({**GOOD_DOC, 'k': 'not-a-key-id!!!!'})}.{SIG}",
    f"SAI1.{_body({**GOOD_DOC, 'k': KEY.key_id.upper()})}.{SIG}",
    f"SAI1.{_b64url(b'[' * 2500)}.{SIG}",  # deep nesting: a RecursionError inside json
    f"SAI1.{'A' * 5000}.{SIG}",
])
def test_malformed_codes_are_ours_but_invalid(text):
    check = verify_payload(text, TRUSTED)
    assert not check.valid and check.ours and check.claims is None
    assert check.reason.startswith("malformed code: ")


@pytest.mark.parametrize("text", ["", "hello", "https://example.com/p/1", "sai1.a.b", "SAI2.a.b", "SAI1",
                                  " . "])
def test_other_texts_are_not_ours(text):
    assert verify_payload(text, TRUSTED) == CodeCheck(valid=False, claims=None,
                                                      reason="not a ShopAI authenticity code", ours=False)


def test_non_text_is_not_ours():
    for value in (None, b"SAI1.a.b", 42):
        check = verify_payload(value, TRUSTED)  # type: ignore[arg-type]
        assert not check.valid and not check.ours


def test_verify_never_raises_on_fuzzed_input():
    rng = random.Random(11)
    payload = _code().payload
    alphabet = B64URL + ".=+/ \n\x00é€😀{}\"[]:,"
    for i in range(400):
        if i % 2:
            text = PREFIX + "." + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 300)))
        else:
            chars = list(payload)
            for _ in range(rng.randint(1, 6)):
                at = rng.randrange(len(chars))
                action = rng.randrange(3)
                if action == 0:
                    del chars[at]
                elif action == 1:
                    chars.insert(at, rng.choice(alphabet))
                else:
                    chars[at] = rng.choice(alphabet)
            text = "".join(chars)
        check = verify_payload(text, TRUSTED)
        assert isinstance(check, CodeCheck)
        assert check.valid == (text.strip() == payload)
    for _ in range(200):  # random JSON-ish bodies with a well-formed shape
        body = _b64url(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 120))))
        assert not verify_payload(f"SAI1.{body}.{SIG}", TRUSTED).valid


# --- serials, ids, issuing ------------------------------------------------------------------------


def test_new_serial_shape():
    serials = {new_serial() for _ in range(200)}
    assert len(serials) == 200
    assert all(len(s) == 12 and set(s) <= set(CROCKFORD) for s in serials)
    assert set("ILOU").isdisjoint("".join(serials))


def test_issue_gives_distinct_verifiable_codes():
    batch = issue(KEY, "SKU-42", "B-2026-07", 50, ISSUED_AT)
    assert len(batch) == 50
    assert len({code.serial for code in batch}) == 50
    assert len({code.payload for code in batch}) == 50
    for code in batch:
        assert len(code.serial) == 12 and set(code.serial) <= set(CROCKFORD)
        check = verify_payload(code.payload, TRUSTED)
        assert check.valid and check.claims.serial == code.serial and check.claims.product_id == "SKU-42"
        assert check.claims.issued_at == ISSUED_AT


@pytest.mark.parametrize("bad", ["", "a b", "tab\there", "x" * 65, "nul\x00", "new\nline", "nbsp\u00a0"])
def test_ids_must_be_short_printable_and_without_spaces(bad):
    with pytest.raises(ValueError, match="^batch must be 1..64 printable characters without spaces$"):
        issue(KEY, "SKU-1", bad, 1, ISSUED_AT)
    with pytest.raises(ValueError, match="^product_id must be 1..64 printable characters without spaces$"):
        issue(KEY, bad, "B1", 1, ISSUED_AT)
    assert codes.check_batch_name("x" * 64) == "x" * 64
    assert codes.check_product_id("Käse-1") == "Käse-1"


def test_issue_and_sign_reject_bad_arguments():
    for count in (0, -1, codes.MAX_ISSUE_COUNT + 1, True):
        with pytest.raises(ValueError, match="count"):
            issue(KEY, "SKU-1", "B1", count, ISSUED_AT)
    with pytest.raises(ValueError, match="key_id"):
        sign(KEY, Claims("SKU-1", "B1", "S1", OTHER.key_id, ISSUED_AT))
    with pytest.raises(ValueError, match="issued_at"):
        sign(KEY, Claims("SKU-1", "B1", "S1", KEY.key_id, -5))


# --- QR codes -------------------------------------------------------------------------------------


def _qr(payload: str, scale: int = 4) -> Image.Image:
    return Image.open(io.BytesIO(render_png(payload, scale=scale))).convert("RGB")


def test_render_png_is_a_png_that_reads_back():
    payload = _code().payload
    data = render_png(payload)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG" and image.width == image.height
    found = find_codes(image)  # a 1-bit or palette PNG, straight from segno
    assert [f.text for f in found] == [payload]
    x0, y0, x1, y1 = found[0].box
    border = 4 * 4  # 4 modules of 4 pixels
    assert abs(x0 - border) <= 1 and abs(y0 - border) <= 1
    assert abs(x1 - (image.width - border)) <= 1 and abs(y1 - (image.height - border)) <= 1


def test_bigger_scale_gives_a_bigger_picture():
    payload = _code().payload
    assert _qr(payload, scale=8).width == 2 * _qr(payload, scale=4).width
    with pytest.raises(ValueError):
        render_png(payload, scale=0)


def _photo(seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    photo = Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8))
    ImageDraw.Draw(photo).rectangle((20, 30, 180, 200), fill=(200, 40, 60))
    return photo


def _photo_with_code(payload: str) -> tuple[Image.Image, tuple[int, int, int, int]]:
    qr = _qr(payload)
    small = qr.resize((round(qr.width * 0.6), round(qr.height * 0.6)), Image.Resampling.LANCZOS)
    tilted = small.rotate(8, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=(255, 255, 255))
    photo = _photo()
    x, y = 150, 60
    photo.paste(tilted, (x, y))
    return photo, (x, y, x + tilted.width, y + tilted.height)


def _inside(box: tuple[int, int, int, int], region: tuple[int, int, int, int]) -> bool:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return (region[0] <= cx <= region[2] and region[1] <= cy <= region[3]
            and box[0] >= region[0] - 2 and box[1] >= region[1] - 2
            and box[2] <= region[2] + 2 and box[3] <= region[3] + 2
            and (box[2] - box[0]) * (box[3] - box[1])
            > 0.3 * (region[2] - region[0]) * (region[3] - region[1]))


def test_small_tilted_code_in_a_photo_is_found_where_it_was_pasted():
    payload = _code().payload
    photo, region = _photo_with_code(payload)
    found = find_codes(photo)
    assert [f.text for f in found] == [payload]
    assert _inside(found[0].box, region)


def test_jpeg_compressed_photo_still_decodes():
    payload = _code().payload
    photo, region = _photo_with_code(payload)
    out = io.BytesIO()
    photo.save(out, "JPEG", quality=60)
    found = find_codes(Image.open(io.BytesIO(out.getvalue())))
    assert [f.text for f in found] == [payload]
    assert _inside(found[0].box, region)


def test_photo_without_a_code_gives_nothing():
    assert find_codes(_photo(3)) == []
    assert find_codes(Image.new("RGB", (50, 40), "white")) == []


def test_heavily_blurred_code_never_gives_a_wrong_text():
    payload = _code().payload
    found = find_codes(_qr(payload, scale=2).filter(ImageFilter.GaussianBlur(6)))
    assert found == [] or [f.text for f in found] == [payload]


def test_two_codes_and_a_duplicate_are_each_reported_once():
    first, second = issue(KEY, "SKU-1", "B1", 2, ISSUED_AT)
    a, b = _qr(first.payload, scale=2), _qr(second.payload, scale=2)
    canvas = Image.new("RGB", (a.width * 3 + 40, a.height + 20), "white")
    for i, qr in enumerate((a, b, a)):
        canvas.paste(qr, (10 + i * (a.width + 10), 10))
    found = find_codes(canvas)
    assert sorted(f.text for f in found) == sorted([first.payload, second.payload])


def test_transparent_background_reads_as_white():
    payload = _code().payload
    qr = _qr(payload, scale=3).convert("L")
    rgba = Image.new("RGBA", qr.size, (0, 0, 0, 0))  # transparent black where the paper is
    rgba.putalpha(qr.point(lambda v: 255 - v))  # only the dark modules are opaque (black)
    assert [f.text for f in find_codes(rgba)] == [payload]


def test_fallback_variants_and_upscaled_boxes_map_back(monkeypatch):
    """When the plain and greyscale passes find nothing, the 2x upscale does, and its box is halved."""
    payload = _code().payload
    qr = _qr(payload, scale=1)  # 1-pixel modules, 65 px in all: below 400 px, so the upscale is tried
    real = codes.zxingcpp.read_barcodes
    seen: list[tuple[int, int]] = []

    def blind_twice(image, **kwargs):
        seen.append(image.size)
        return [] if len(seen) <= 2 else real(image, **kwargs)

    monkeypatch.setattr(codes.zxingcpp, "read_barcodes", blind_twice)
    found = find_codes(qr)
    assert seen == [qr.size, qr.size, (qr.width * 2, qr.height * 2)]
    assert found == [FoundCode(payload, found[0].box)]
    x0, y0, x1, y1 = found[0].box
    assert abs(x0 - 4) <= 1 and abs(y0 - 4) <= 1 and abs(x1 - 61) <= 1 and abs(y1 - 61) <= 1
