"""QR codes and label sheets, decoded by a decoder that is not our encoder (zxing-cpp).

The PNG from ``/v1/lots/{lot}/qr.png`` and from ``mandi qr`` must decode to the
exact GS1 Digital Link URI on the public base URL, at error correction M or
better, and that URI's path must resolve to the lot's page on the same app. The
SVG is rasterised here from its path data and decoded the same way. Parameters
are validated (problem+json), images are cached with a strong ETag.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import zlib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import zxingcpp
from fontTools.ttLib import TTFont
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from api.app import create_app
from api.routes import qr as qr_route
from api.settings import Settings
from client.cli.main import app as cli
from client.cli.qr import LabelInfo, label_html, label_pdf
from tests.api.support import Api, assert_problem
from tests.api.test_pages import BASE, GS1_LOT, XSS_NAME, build_chain

GS1_URI = f"{BASE}/01/09506000134352/10/AB%2F12%25"
RICE_URI = f"{BASE}/l/lot:mill-1:R"
EC_AT_LEAST_M = {"M", "Q", "H"}


@pytest.fixture
def settings():
    return Settings(run_checkpointer=False, public_base_url=BASE)


@pytest.fixture
def chain(world):
    return build_chain(world)


@pytest.fixture
def api(world, settings, chain):
    qr_route._store.clear()  # each test starts with a cold cache
    client = Api(create_app(settings, world.ledger))
    yield client
    client.close()


def decode(image: Image.Image) -> tuple[str, str]:
    (result,) = zxingcpp.read_barcodes(image)
    assert result.format == zxingcpp.BarcodeFormat.QRCode
    return result.text, result.ec_level


def decode_png(data: bytes) -> tuple[str, str]:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    return decode(Image.open(io.BytesIO(data)))


def rasterise_svg(svg: str, scale: int = 4) -> Image.Image:
    """Draw our SVG's rectangles (``M x,y h w v s h -w z`` runs) onto a bitmap."""
    width = int(float(re.search(r'viewBox="0 0 ([\d.]+) ', svg).group(1)))
    image = Image.new("L", (width * scale, width * scale), 255)
    draw = ImageDraw.Draw(image)
    path = re.search(r'<path fill="#000" d="([^"]*)"', svg).group(1)
    for x, y, w, h in re.findall(r"M([\d.]+),([\d.]+)h([\d.]+)v([\d.]+)h-[\d.]+z", path):
        x0, y0 = float(x) * scale, float(y) * scale
        draw.rectangle([x0, y0, x0 + float(w) * scale - 1, y0 + float(h) * scale - 1], fill=0)
    return image


def resolves_to(api, uri: str, lot: str) -> None:
    parts = urlsplit(uri)
    assert f"{parts.scheme}://{parts.netloc}" == BASE
    page = api.get(parts.path, headers={"accept": "text/html"})
    assert page.status_code == 200, page.text
    assert f"<bdi>{lot}</bdi>" in page.text
    data = api.get(parts.path, headers={"accept": "application/json"})
    assert data.json()["lot"]["lot"] == lot


# ---------------------------------------------------------------------------
# The endpoint


def test_png_decodes_to_the_exact_digital_link_uri_which_resolves(api, chain):
    r = api.get(f"/v1/lots/{chain.rice}/qr.png")
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/png"
    text, ec = decode_png(r.content)
    assert text == RICE_URI
    assert ec in EC_AT_LEAST_M
    resolves_to(api, text, chain.rice)


def test_gs1_lot_png_carries_01_gtin_10_lot(api, chain):
    r = api.get(f"/v1/lots/{GS1_LOT}/qr.png?size=4&border=4")
    assert r.status_code == 200, r.text
    text, ec = decode_png(r.content)
    assert text == GS1_URI
    assert ec in EC_AT_LEAST_M
    resolves_to(api, text, GS1_LOT)


def test_svg_decodes_too(api, chain):
    r = api.get(f"/v1/lots/{chain.rice}/qr.svg?size=3&border=2")
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/svg+xml"
    assert "<script" not in r.text
    text, _ = decode(rasterise_svg(r.text, scale=3))
    assert text == RICE_URI


def test_size_and_border_shape_the_image(api, chain):
    small = Image.open(io.BytesIO(api.get(f"/v1/lots/{chain.rice}/qr.png?size=2&border=0").content))
    big = Image.open(io.BytesIO(api.get(f"/v1/lots/{chain.rice}/qr.png?size=4&border=4").content))
    modules = small.size[0] // 2
    assert big.size[0] == (modules + 8) * 4
    svg = api.get(f"/v1/lots/{chain.rice}/qr.svg?size=5&border=1").text
    assert f'width="{(modules + 2) * 5}"' in svg


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("size=0", "size"),
        ("size=41", "size"),
        ("size=x", "size"),
        ("border=-1", "border"),
        ("border=17", "border"),
    ],
)
def test_bad_parameters_are_problems(api, chain, query, field):
    for fmt in ("png", "svg"):
        body = assert_problem(
            api.get(f"/v1/lots/{chain.rice}/qr.{fmt}?{query}"), 422, "validation_failed", field
        )
        assert body["detail"].startswith(field)


def test_unknown_and_malformed_lots(api):
    assert_problem(api.get("/v1/lots/lot:nobody:x/qr.png"), 404, "unknown_lot")
    assert_problem(api.get("/v1/lots/not-a-lot/qr.svg"), 400, "bad_lot_id")


def test_strong_caching_etag_and_in_process_cache(api, chain):
    url = f"/v1/lots/{chain.rice}/qr.png"
    first = api.get(url)
    etag = first.headers["etag"]
    assert re.fullmatch(r'"[0-9a-f]{32}"', etag)
    assert first.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert api.get(url).content == first.content
    assert api.get(url).headers["etag"] == etag
    not_modified = api.get(url, headers={"if-none-match": etag})
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    assert not_modified.headers["etag"] == etag
    assert api.get(url, headers={"if-none-match": f'"other", W/{etag}'}).status_code == 304
    assert api.get(url, headers={"if-none-match": '"other"'}).status_code == 200
    assert any(key[0] == RICE_URI for key in qr_route._store)
    assert api.get(f"{url}?size=9").headers["etag"] != etag


# ---------------------------------------------------------------------------
# The CLI


def test_mandi_qr_png_and_svg_decode_to_the_same_uri(api, chain, tmp_path: Path):
    runner = CliRunner()
    png = tmp_path / "rice.png"
    result = runner.invoke(cli, ["qr", chain.rice, "-o", str(png), "--base-url", BASE + "/"])
    assert result.exit_code == 0, result.output
    text, ec = decode_png(png.read_bytes())
    assert text == RICE_URI
    assert ec in EC_AT_LEAST_M
    resolves_to(api, text, chain.rice)
    # The CLI and the endpoint agree module for module.
    served = api.get(f"/v1/lots/{chain.rice}/qr.png?size=10&border=4").content
    assert Image.open(io.BytesIO(served)).tobytes() == Image.open(png).tobytes()

    svg = tmp_path / "mango.svg"
    result = runner.invoke(
        cli, ["qr", GS1_LOT, "-o", str(svg)], env={"MANDI_PUBLIC_BASE_URL": BASE}
    )
    assert result.exit_code == 0, result.output
    text, _ = decode(rasterise_svg(svg.read_text(), scale=4))
    assert text == GS1_URI


def test_mandi_qr_refuses_bad_input(tmp_path: Path):
    runner = CliRunner()
    bad_ext = runner.invoke(cli, ["qr", "lot:farm-1:A", "-o", str(tmp_path / "x.jpg")])
    assert bad_ext.exit_code == 1
    assert "png or .svg" in bad_ext.output
    bad_lot = runner.invoke(cli, ["qr", "farm-1/A", "-o", str(tmp_path / "x.png")])
    assert bad_lot.exit_code == 1
    assert "bad_lot_id" in bad_lot.output


# ---------------------------------------------------------------------------
# Label sheets


def _labels(n: int) -> list[LabelInfo]:
    return [
        LabelInfo(
            lot=f"lot:farm-1:L{i}",
            uri=f"{BASE}/l/lot:farm-1:L{i}",
            crop="rice basmati",
            producer=XSS_NAME if i == 0 else "Farm One",
            place="Sheikhupura, Punjab",
            date="2026-11-27",
        )
        for i in range(n)
    ]


def test_label_sheet_html_is_a4_escaped_and_decodable():
    sheet = label_html(_labels(25))
    assert "@page{size:A4" in sheet
    assert sheet.count('<section class="sheet">') == 2  # 24 labels per page
    assert sheet.count('class="label"') == 25
    assert "<script>" not in sheet
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in sheet
    first = re.search(r"<svg .*?</svg>", sheet).group(0)
    text, _ = decode(rasterise_svg(first, scale=6))
    assert text == f"{BASE}/l/lot:farm-1:L0"


def test_label_sheet_pdf_pages():
    one = label_pdf(_labels(3))
    assert one.startswith(b"%PDF-")
    assert len(re.findall(rb"/Type /Page\b", one)) == 1
    two = label_pdf(_labels(25))
    assert len(re.findall(rb"/Type /Page\b", two)) == 2


# A label printed for an Urdu-speaking cooperative: producer and place in Urdu
# (U+06C1 HEH GOAL, which DejaVu Sans lacks, included), crop with Cyrillic and CJK.
URDU_PRODUCER = "کسان کوآپریٹو"
URDU_PLACE = "ضلع شیخوپورہ، پنجاب"
URDU_LABELS = [
    LabelInfo(
        lot="lot:coop.sindh:pallet-01",
        uri=f"{BASE}/l/lot:coop.sindh:pallet-01",
        crop="mango sindhri",
        producer=URDU_PRODUCER,
        place=URDU_PLACE,
        date="2026-11-27",
    ),
    LabelInfo(
        lot="gtin:09506000134352:AB%2F12%25",
        uri=GS1_URI,
        crop="пшеница 小麦",
        producer="Farm One",
        place="Sheikhupura, Punjab",
        date="2026-11-28",
    ),
    LabelInfo(
        lot="lot:" + "f" * 64 + ":" + "L" * 40,  # the longest lot id the grammar allows
        uri=f"{BASE}/l/lot:farm-1:L",
        crop="wheat " * 30,
        producer="حیدرآباد سنڌ ڪسان " * 12,  # Sindhi letters too
        place="x" * 300,
        date="2026-11-29",
    ),
]
_MM = 72 / 25.4  # PDF points per millimetre
_PAGE_H_PT = 841.89  # A4 height in points, fpdf2's origin is the top left, PDF's the bottom


def _pdf_streams(pdf: bytes) -> list[bytes]:
    """Every stream of ``pdf``, inflated (fpdf2 compresses with FlateDecode)."""
    out = []
    for match in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S):
        try:
            out.append(zlib.decompress(match.group(1)))
        except zlib.error:
            out.append(match.group(1))
    return out


def _to_unicode(pdf: bytes) -> list[str]:
    """The text that the ToUnicode CMaps map the embedded fonts' glyphs to."""
    mapped = []
    for stream in _pdf_streams(pdf):
        if b"/CMapName /Adobe-Identity-UCS" not in stream:
            continue
        for block in re.findall(rb"beginbfchar(.*?)endbfchar", stream, re.S):
            for utf16 in re.findall(rb"<[0-9A-Fa-f]+>\s*<([0-9A-Fa-f]+)>", block):
                mapped.append(bytes.fromhex(utf16.decode()).decode("utf-16-be"))
        for block in re.findall(rb"beginbfrange(.*?)endbfrange", stream, re.S):
            for lo, hi, first in re.findall(
                rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block
            ):
                start = int(first, 16)
                mapped += [chr(start + i) for i in range(int(hi, 16) - int(lo, 16) + 1)]
    return mapped


def _rasterise_pdf(pdf: bytes, scale: int = 4) -> Image.Image:
    """Page 1: by pdftoppm where installed, else our own fill of its ``re f`` rectangles.

    The QR codes are vector rectangles, so filling them is an exact rendering of
    the code; pdftoppm (poppler) also renders the text and checks nothing covers it.
    """
    if shutil.which("pdftoppm"):
        png = subprocess.run(
            ["pdftoppm", "-png", "-r", str(72 * scale), "-f", "1", "-l", "1", "-"],
            input=pdf,
            capture_output=True,
            check=True,
        ).stdout
        return Image.open(io.BytesIO(png)).convert("L")
    image = Image.new("L", (round(595.28 * scale), round(_PAGE_H_PT * scale)), 255)
    draw = ImageDraw.Draw(image)
    content = b"".join(s for s in _pdf_streams(pdf) if b" re f" in s)
    for x, y, w, h in re.findall(rb"([-\d.]+) ([-\d.]+) ([-\d.]+) ([-\d.]+) re f", content):
        x0, y0 = float(x) * scale, (_PAGE_H_PT - float(y)) * scale
        x1, y1 = x0 + float(w) * scale, y0 - float(h) * scale
        draw.rectangle([round(x0), round(y0), round(x1) - 1, round(y1) - 1], fill=0)
    return image


def _embedded_fonts(pdf: bytes) -> list[TTFont]:
    """The TrueType font programs (FontFile2) embedded in ``pdf``."""
    return [TTFont(io.BytesIO(s)) for s in _pdf_streams(pdf) if s[:4] == b"\x00\x01\x00\x00"]


def _family(font: TTFont) -> str:
    return font["name"].getDebugName(1) if "name" in font else ""


def test_label_pdf_embeds_fonts_that_print_urdu():
    pdf = label_pdf(URDU_LABELS[:1])
    fonts = set(re.findall(rb"/BaseFont /(?:[A-Z]{6}\+)?([\w-]+)", pdf))
    assert b"NotoNaskhArabic" in fonts  # the Arabic-script fields
    assert b"DejaVuSansBold" in fonts  # the crop
    assert not any(name.startswith(b"Helvetica") for name in fonts)  # Latin-1 only: "?"
    assert {"Noto Naskh Arabic", "DejaVu Sans"} <= {_family(f) for f in _embedded_fonts(pdf)}
    mapped = _to_unicode(pdf)
    assert set((URDU_PRODUCER + URDU_PLACE).replace(" ", "")) <= set(mapped)
    assert "?" not in mapped  # nothing was substituted
    assert "\ufffd" not in mapped


def test_label_pdf_shapes_urdu_into_joined_forms():
    naskh = [
        f for f in _embedded_fonts(label_pdf(URDU_LABELS[:1])) if _family(f) == "Noto Naskh Arabic"
    ]
    glyphs = set().union(*(f.getGlyphOrder() for f in naskh))
    # Unshaped, every letter would print its isolated form (uni06A9 ...). Shaped,
    # joined letters take initial/medial/final forms: kaf initial FEDB and seen
    # medial FEB4 (the word's start), alef, reh and waw final FE8E, FEAE, FEEE.
    assert {"uniFEDB", "uniFEB4", "uniFE8E", "uniFEAE", "uniFEEE"} <= glyphs


def test_label_pdf_fits_long_text_inside_the_label():
    pdf = label_pdf(URDU_LABELS)
    content = b"".join(s for s in _pdf_streams(pdf) if b" Td" in s)
    origins = re.findall(rb"([\d.]+) ([\d.]+) (?:Td|Tm)", content)
    assert origins
    for x, y in origins:
        x_mm, y_mm = float(x) / _MM, (_PAGE_H_PT - float(y)) / _MM
        col = int((x_mm - 7.2) // (63.5 + 2.5))
        left = 7.2 + col * (63.5 + 2.5)
        assert left + 27 < x_mm < left + 63.5, (x_mm, y_mm)  # right of the QR code
        assert 12.9 + 5 < y_mm < 12.9 + 33.9, (x_mm, y_mm)  # all on the first row
    mapped = _to_unicode(pdf)
    assert "\u2026" in mapped  # the overlong fields were cut with an ellipsis
    assert "\ufffd" in mapped  # 小麦: in neither vendored font, printed as U+FFFD ...
    assert "?" not in mapped  # ... never as "?"
    assert set("пшеница") <= set(mapped)  # Cyrillic from DejaVu Sans
    assert set("ڌڪ") <= set(mapped)  # Sindhi from Noto Naskh Arabic


def test_label_pdf_qr_codes_decode_to_the_exact_uris():
    pdf = label_pdf(URDU_LABELS)
    page = _rasterise_pdf(pdf)
    results = zxingcpp.read_barcodes(page)
    assert sorted(r.text for r in results) == sorted(label.uri for label in URDU_LABELS)
    assert all(r.format == zxingcpp.BarcodeFormat.QRCode for r in results)
    assert all(r.ec_level in EC_AT_LEAST_M for r in results)


def test_mandi_labels_reads_the_lots_from_the_database(tmp_path: Path):
    runner = CliRunner()
    data = tmp_path / "data"
    result = runner.invoke(cli, ["demo", "--data-dir", str(data), "--json"])
    assert result.exit_code == 0, result.output
    lots = ["lot:mill.gujranwala:rice-01", "lot:farm.punjab.1:paddy-01", "lot:coop.sindh:pallet-01"]
    sheet = tmp_path / "labels.html"
    args = ["labels", *lots, "--data-dir", str(data), "-o", str(sheet), "--base-url", BASE]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    text = sheet.read_text()
    for lot in lots:
        assert f'<div class="lot">{lot}</div>' in text
    assert "Gujranwala Rice Mill" in text  # producer's public name
    assert "rice basmati 385" in text  # crop and variety
    assert "Sheikhupura, Punjab" in text  # the farm's district
    assert re.search(r'<div class="date">\d{4}-\d{2}-\d{2}</div>', text)
    uris = list(re.findall(r'aria-label="([^"]+)"', text))
    assert uris == [f"{BASE}/l/{lot}" for lot in lots]
    pdf = tmp_path / "labels.pdf"
    result = runner.invoke(cli, [*args[:-4], "-o", str(pdf), "--base-url", BASE])
    assert result.exit_code == 0, result.output
    assert pdf.read_bytes().startswith(b"%PDF-")
    missing = runner.invoke(
        cli, ["labels", "lot:nobody:x", "--data-dir", str(data), "-o", str(sheet)]
    )
    assert missing.exit_code == 1
    assert "unknown_lot" in missing.output
