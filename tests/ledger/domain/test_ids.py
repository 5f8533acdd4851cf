"""GTIN/GLN check digits, the canonical lot id and GS1 Digital Link paths."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.ids import (
    GS1_CHARSET_82,
    LotId,
    check_gln,
    check_gs1_lot,
    check_gtin,
    gs1_check_digit,
    parse_lot_ref,
    percent_decode,
    percent_encode,
)
from ledger.errors import EncodingError

# Published examples: GS1 Digital Link's example GTIN, the EAN-13 and EAN-8
# examples of the Wikipedia "International Article Number" article, and the
# UPC-A example of the Wikipedia "Universal Product Code" article.
VALID_GTINS = {
    "09506000134352": "09506000134352",
    "9506000134352": "09506000134352",
    "4006381333931": "04006381333931",
    "96385074": "00000096385074",
    "036000291452": "00036000291452",
}
# Recipe: gs1_check_digit("950600000000") == 8 (weights 3,1 from the right: 42 -> 8);
# likewise "629104150021" -> 3.
VALID_GLNS = ["9506000000008", "6291041500213"]


@pytest.mark.parametrize(("given_gtin", "gtin14"), VALID_GTINS.items())
def test_valid_gtins_pad_to_14(given_gtin, gtin14):
    assert check_gtin(given_gtin) == gtin14


def test_check_digit_of_the_digital_link_example():
    assert gs1_check_digit("0950600013435") == 2


@pytest.mark.parametrize(
    "bad",
    [
        "09506000134353",  # check digit +1
        "09506000134342",  # a data digit changed
        "0950600013435",  # 13 digits: a different number, check digit wrong
        "12345678901",  # 11 digits
        "0950600013435x",
        "٠٩٥٠٦٠٠٠١٣٤٣٥٢",  # Arabic-Indic digits are digits, but not ASCII
        9506000134352,
        "",
    ],
)
def test_bad_gtins(bad):
    with pytest.raises(EncodingError) as info:
        check_gtin(bad, field="body.gtin")
    assert (info.value.code, info.value.field) == ("bad_gtin", "body.gtin")


@pytest.mark.parametrize("gln", VALID_GLNS)
def test_valid_glns(gln):
    assert check_gln(gln) == gln


@pytest.mark.parametrize("bad", ["9506000000005", "950600000008", "09506000000008", None])
def test_bad_glns(bad):
    with pytest.raises(EncodingError) as info:
        check_gln(bad, field="profile.gln")
    assert (info.value.code, info.value.field) == ("bad_gln", "profile.gln")


def test_check_digit_needs_digits():
    with pytest.raises(ValueError, match="digits"):
        gs1_check_digit("")


# ---------------------------------------------------------------------------
# Lot ids.


def test_gs1_lot_with_characters_that_need_encoding():
    lot = LotId.from_gs1(gtin="9506000134352", batch="AB/12%")
    assert lot.text == "gtin:09506000134352:AB%2F12%25"
    assert (lot.gtin, lot.batch, lot.producer) == ("09506000134352", "AB/12%", None)
    assert lot.digital_link_path() == "/01/09506000134352/10/AB%2F12%25"
    assert LotId.from_digital_link_path(lot.digital_link_path()) == lot
    assert LotId.parse(lot.text) == lot
    assert lot.to_json() == lot.text == str(lot)
    assert lot.is_gs1


@pytest.mark.parametrize(
    "batch",
    [
        "AB/12 3",  # space is not in character set 82
        "LOT#1",  # neither is '#'
        "ÄB12",  # nor any non-ASCII letter
        "A" * 21,  # 20 characters at most
        "",
    ],
)
def test_gs1_lot_outside_charset_82_is_refused_not_altered(batch):
    with pytest.raises(EncodingError) as info:
        LotId.from_gs1(gtin="09506000134352", batch=batch)
    assert info.value.code == "bad_gs1_lot"


def test_charset_82_has_82_characters():
    assert len(GS1_CHARSET_82) == 82
    specials = "!\"%&'()*+,-./:;<=>?_"  # the 20 non-alphanumerics of set 82
    assert check_gs1_lot(specials) == specials
    assert LotId.from_gs1(gtin="09506000134352", batch=specials).batch == specials


@given(st.text(alphabet=sorted(GS1_CHARSET_82), min_size=1, max_size=20))
def test_every_gs1_lot_round_trips(batch):
    lot = LotId.from_gs1(gtin="09506000134352", batch=batch)
    assert LotId.parse(lot.text).batch == batch
    assert LotId.from_digital_link_path(lot.digital_link_path()).batch == batch
    tail = lot.text.split(":", 2)[2]
    assert set(tail) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~%")


def test_producer_lot():
    lot = LotId.from_producer(participant_id="farm-7", code="R-2026.01_a")
    assert lot.text == "lot:farm-7:R-2026.01_a"
    assert (lot.producer, lot.code, lot.gtin, lot.batch) == ("farm-7", "R-2026.01_a", None, None)
    assert lot.digital_link_path() == "/l/lot:farm-7:R-2026.01_a"
    assert LotId.from_digital_link_path("/l/lot:farm-7:R-2026.01_a") == lot
    assert not lot.is_gs1


@pytest.mark.parametrize(
    "text",
    [
        "gtin:09506000134352:ab%2f12",  # lowercase hex is not canonical
        "gtin:09506000134352:%41B",  # an unreserved character escaped
        "gtin:09506000134352:AB/12",  # '/' must be escaped
        "gtin:09506000134352:AB%2",  # truncated escape
        "gtin:09506000134352:%C3%84",  # decodes, but 'Ä' is not in set 82
        "gtin:09506000134352:%FF",  # not UTF-8
        "gtin:09506000134353:AB",  # check digit
        "gtin:9506000134352:AB",  # 13 digits: the canonical form has 14
        "gtin:09506000134352:",
        "gtin:09506000134352",
        "lot:Farm-7:R1",  # participant ids are lowercase
        "lot:farm-7:R/1",
        "lot:farm-7:" + "x" * 41,
        "lot:farm-7:",
        "lot:farm-7",
        "batch:farm-7:R1",
        "",
        42,
    ],
)
def test_strict_parse_refuses(text):
    with pytest.raises(EncodingError) as info:
        LotId.parse(text, field="body.lot")
    assert (info.value.code, info.value.field) == ("bad_lot_id", "body.lot")


def test_parse_lot_ref_returns_the_text():
    assert parse_lot_ref("lot:farm-7:R1", field="body.lot") == "lot:farm-7:R1"


def test_digital_link_decoding_is_lenient_but_the_id_canonical():
    lot = LotId.from_digital_link_path("/01/9506000134352/10/ab%2f%41!")
    assert lot.batch == "ab/A!"
    assert lot.text == "gtin:09506000134352:ab%2FA%21"


@pytest.mark.parametrize(
    "path",
    [
        "/01/09506000134352/10/A/21/123",  # further key qualifiers
        "/01/09506000134352",
        "/10/AB/01/09506000134352",
        "01/09506000134352/10/AB",
        "/l/lot:farm-7:R1/extra",
        "/01/09506000134352/10/A B",
        "/01/09506000134352/10/A%2",
        None,
    ],
)
def test_bad_digital_link_paths(path):
    with pytest.raises(EncodingError):
        LotId.from_digital_link_path(path)


def test_bad_gtin_in_a_digital_link():
    with pytest.raises(EncodingError) as info:
        LotId.from_digital_link_path("/01/09506000134353/10/A")
    assert info.value.code == "bad_gtin"


def test_constructor_checks_its_parts():
    with pytest.raises(ValueError, match="do not match"):
        LotId(text="lot:farm-7:R1", producer="farm-8", code="R1")
    with pytest.raises(ValueError, match="canonical"):
        LotId(text="nonsense")


def test_percent_encoding():
    assert percent_encode("é~ -") == "%C3%A9~%20-"
    assert percent_decode("%C3%A9~%20-", field="x") == "é~ -"
    with pytest.raises(EncodingError):
        percent_decode("%c3%a9", field="x")
    assert percent_decode("%c3%a9", field="x", strict=False) == "é"
