"""`mandi qr` and `mandi labels`: a lot's QR code, and A4 label sheets for a cooperative.

The QR code carries the lot's GS1 Digital Link URI on the server's public base
URL (``--base-url`` or ``MANDI_PUBLIC_BASE_URL``): ``{base}/01/{gtin}/10/{lot}``
for GS1 lots, ``{base}/l/{lot id}`` for producer lots, encoded by the
``qrcode`` package at error-correction level M, exactly as the server's
``/v1/lots/{lot}/qr.png`` does (this module does not import ``api``: the two
are independent, so the few lines that call ``qrcode`` are repeated there).

``mandi qr LOT -o FILE`` writes PNG or SVG by the file's extension and needs
no database. ``mandi labels LOT... -o labels.pdf|.html`` reads each lot from
the database (crop, producer, date) and lays out 3 x 8 labels per A4 page
(63.5 x 33.9 mm, the common office label sheet): the QR code, the human
readable lot id, crop and variety, producer and place, and the date. The HTML
sheet prints any script and is escaped throughout.

The PDF embeds fonts vendored in ``client/fonts/`` (licences beside them), so
it needs no system fonts: DejaVu Sans for Latin, Cyrillic, Greek and most other
alphabets, and Noto Naskh Arabic for any field that contains Arabic-script text
(Urdu, Sindhi, Punjabi Shahmukhi, Pashto), because DejaVu lacks common Urdu
letters such as U+06C1 and U+06D2. Text is shaped by HarfBuzz (``uharfbuzz``):
letters join and right-to-left runs read right to left, and a field whose first
strong character is right-to-left is right-aligned. Each field has a fixed
number of lines; a longer text is set smaller (down to 70 %) and then cut with
an ellipsis, so a label never overflows. A character that neither font has
(e.g. CJK, Devanagari) prints as U+FFFD, never as "?" and never silently dropped.
The lot id is ASCII by construction and stays in the built-in Courier.
"""

from __future__ import annotations

import contextlib
import html
import importlib.resources
import io
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.console import Console

from ledger.domain.ids import LotId
from ledger.errors import LedgerError
from ledger.service import Ledger
from ledger.statements import Statement

# qrcode, PIL, fpdf, ledger.datadir and ledger.storage.sql (SQLAlchemy, Alembic)
# are imported in the functions that use them: `mandi` must start fast.
if TYPE_CHECKING:
    import qrcode
    from fpdf import FPDF

__all__ = [
    "LabelInfo",
    "digital_link_uri",
    "label_html",
    "label_pdf",
    "labels_command",
    "qr_command",
    "qr_matrix",
    "qr_png",
    "qr_svg",
]

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
_out = Console(soft_wrap=True)
_err = Console(stderr=True, soft_wrap=True)

BaseUrlOpt = Annotated[
    str,
    typer.Option(
        "--base-url",
        help="Public base URL of the lot pages (the QR code's host).",
        envvar="MANDI_PUBLIC_BASE_URL",
    ),
]


def digital_link_uri(base_url: str, lot: str) -> str:
    """The GS1 Digital Link URI of canonical lot id ``lot`` on ``base_url``.

    Raises:
        EncodingError: ``bad_lot_id``.
    """
    return base_url.rstrip("/") + LotId.parse(lot, field="lot").digital_link_path()


def _code(uri: str, box_size: int = 10, border: int = 4) -> qrcode.QRCode[Any]:
    import qrcode
    import qrcode.constants

    code: qrcode.QRCode[Any] = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=box_size, border=border
    )
    code.add_data(uri)
    code.make(fit=True)
    return code


def qr_matrix(uri: str) -> list[list[bool]]:
    """The QR modules of ``uri`` (error correction M), without the quiet zone."""
    return [list(row) for row in _code(uri, border=0).get_matrix()]


def qr_png(uri: str, size: int = 10, border: int = 4) -> bytes:
    """PNG, ``size`` pixels per module, ``border`` modules of quiet zone."""
    from qrcode.image.pil import PilImage

    out = io.BytesIO()
    _code(uri, size, border).make_image(image_factory=PilImage).save(out)
    return out.getvalue()


def qr_svg(uri: str, size: int = 10, border: int = 4, *, unit: str = "") -> str:
    """SVG with one path; ``unit`` (e.g. ``mm``) sets the printed width and height."""
    matrix = qr_matrix(uri)
    n = len(matrix) + 2 * border
    runs = []
    for y, row in enumerate(matrix):
        x = 0
        while x < len(row):
            if not row[x]:
                x += 1
                continue
            start = x
            while x < len(row) and row[x]:
                x += 1
            runs.append(f"M{start + border},{y + border}h{x - start}v1h-{x - start}z")
    side = f"{n * size}{unit}"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{side}" height="{side}" '
        f'viewBox="0 0 {n} {n}" shape-rendering="crispEdges">'
        f'<rect width="{n}" height="{n}" fill="#fff"/>'
        f'<path fill="#000" d="{"".join(runs)}"/></svg>'
    )


def _fail(message: str) -> typer.Exit:
    _err.print(f"mandi: error: {message}", markup=False, highlight=False)
    return typer.Exit(1)


def qr_command(
    lot: Annotated[str, typer.Argument(help="Canonical lot id, e.g. lot:farm.punjab.1:paddy-01.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output file: .png or .svg.")],
    base_url: BaseUrlOpt = DEFAULT_BASE_URL,
    size: Annotated[
        int, typer.Option("--size", min=1, max=40, help="Pixels (PNG) or units (SVG) per module.")
    ] = 10,
    border: Annotated[int, typer.Option("--border", min=0, max=16, help="Quiet zone.")] = 4,
) -> None:
    """Write a lot's QR code (its GS1 Digital Link URI) as PNG or SVG."""
    suffix = output.suffix.lower()
    if suffix not in (".png", ".svg"):
        raise _fail(f"{output}: the file name must end in .png or .svg")
    try:
        uri = digital_link_uri(base_url, lot)
    except LedgerError as exc:
        raise _fail(f"{exc.code} [{exc.field}]: {exc.message}") from exc
    if suffix == ".png":
        output.write_bytes(qr_png(uri, size, border))
    else:
        output.write_text(qr_svg(uri, size, border), encoding="utf-8")
    _out.print(f"{output}: {uri}", highlight=False, markup=False)


# ---------------------------------------------------------------------------
# Label sheets


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelInfo:
    """What one label prints."""

    lot: str
    uri: str
    crop: str
    producer: str
    place: str
    date: str


def _label_info(ledger: Ledger, lot: str, base_url: str) -> LabelInfo:
    canonical = LotId.parse(lot, field="lot").text
    state = ledger.lot(canonical)
    statement = Statement.from_bytes(ledger.entry(state.created_at).statement)
    body = statement.body
    crop, variety, date = state.crop, None, statement.time[:10]
    if statement.kind == "harvest":
        variety, date = body.get("variety"), str(body.get("harvest_date", date))
    for output in body.get("outputs", []) if statement.kind == "transform" else []:
        if isinstance(output, dict) and output.get("lot") == canonical:
            variety = output.get("variety")
    record = ledger.store.participant(state.producer)
    profile: dict[str, Any] = dict(record.profile) if record is not None else {}
    location = profile.get("location")
    where: dict[str, Any] = location if isinstance(location, dict) else {}
    place = ", ".join(str(where[k]) for k in ("district", "province") if where.get(k))
    return LabelInfo(
        lot=canonical,
        uri=digital_link_uri(base_url, canonical),
        crop=f"{crop} {variety}" if variety else crop,
        producer=str(profile.get("name") or state.producer),
        place=place,
        date=date,
    )


# A4, 3 x 8 labels of 63.5 x 33.9 mm (office label sheets of that size).
_COLS, _ROWS = 3, 8
_LABEL_W, _LABEL_H = 63.5, 33.9
_LEFT, _TOP, _GAP = 7.2, 12.9, 2.5
_QR_MM = 27.0


def label_html(labels: list[LabelInfo]) -> str:
    """An A4 label sheet as one self-contained HTML page (prints at 100 %)."""
    cells = []
    for label in labels:
        svg = qr_svg(label.uri, 1, 2, unit="")
        svg = svg.replace(
            "<svg ", f'<svg class="qr" role="img" aria-label="{html.escape(label.uri)}" ', 1
        )
        cells.append(
            '<div class="label">'
            f"{svg}"
            '<div class="text">'
            f'<div class="lot">{html.escape(label.lot)}</div>'
            f'<div class="crop">{html.escape(label.crop)}</div>'
            f'<div class="who">{html.escape(label.producer)}</div>'
            f'<div class="where">{html.escape(label.place)}</div>'
            f'<div class="date">{html.escape(label.date)}</div>'
            "</div></div>"
        )
    pages = [cells[i : i + _COLS * _ROWS] for i in range(0, len(cells), _COLS * _ROWS)] or [[]]
    body = "".join(f'<section class="sheet">{"".join(page)}</section>' for page in pages)
    style = (
        "@page{size:A4;margin:0}*{box-sizing:border-box}body{margin:0;font:8pt/1.25 "
        "system-ui,Arial,'Noto Sans','Noto Nastaliq Urdu',sans-serif}"
        f".sheet{{width:210mm;height:297mm;padding:{_TOP}mm 0 0 {_LEFT}mm;display:grid;"
        f"grid-template-columns:repeat({_COLS},{_LABEL_W}mm);grid-auto-rows:{_LABEL_H}mm;"
        f"column-gap:{_GAP}mm;page-break-after:always;break-after:page}}"
        ".label{display:flex;align-items:center;gap:1.5mm;padding:1.5mm;overflow:hidden}"
        f".qr{{width:{_QR_MM}mm;height:{_QR_MM}mm;flex:none}}"
        ".text{min-width:0}.lot{font-family:ui-monospace,Menlo,Consolas,monospace;"
        "font-weight:700;word-break:break-all}.crop{font-weight:700;text-transform:capitalize}"
        ".who,.where,.date{color:#222}"
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Mandi labels</title><style>{style}</style></head><body>{body}</body></html>"
    )


# Fonts vendored in client/fonts/ (licences beside them), embedded as subsets.
# fpdf2 family name -> (regular file, bold file).
_FONT_FILES = {
    "dejavu": ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf"),
    "naskh": ("NotoNaskhArabic-Regular.ttf", "NotoNaskhArabic-Bold.ttf"),
}
# Arabic, Arabic Supplement, Arabic Extended-B/A, Presentation Forms-A and -B.
_ARABIC_SCRIPT = (
    (0x0600, 0x06FF),
    (0x0750, 0x077F),
    (0x0870, 0x08FF),
    (0xFB50, 0xFDFF),
    (0xFE70, 0xFEFF),
)
_MIN_SCALE = 0.7  # smallest font size, as a fraction of the field's own, before cutting


@dataclass(frozen=True, slots=True, kw_only=True)
class _Field:
    family: str
    style: str
    size: float  # points
    line_h: float  # mm
    max_lines: int


# Positions and sizes of the text column; every field fits its lines at any length.
_LOT = _Field(family="Courier", style="B", size=7, line_h=3, max_lines=2)
_CROP = _Field(family="dejavu", style="B", size=8, line_h=3.6, max_lines=2)
_PRODUCER = _Field(family="dejavu", style="", size=7, line_h=3.2, max_lines=2)
_SMALL = _Field(family="dejavu", style="", size=7, line_h=3.2, max_lines=1)  # place, date


def _is_arabic_script(text: str) -> bool:
    return any(lo <= ord(ch) <= hi for ch in text for lo, hi in _ARABIC_SCRIPT)


def _is_rtl(text: str) -> bool:
    """Whether the first strong character of ``text`` is right-to-left (UAX #9 P2)."""
    for ch in text:
        kind = unicodedata.bidirectional(ch)
        if kind in ("R", "AL"):
            return True
        if kind == "L":
            return False
    return False


def _printable(text: str, cmap: frozenset[int]) -> str:
    """``text`` on one line, with characters no vendored font has as U+FFFD."""
    out = []
    for ch in text:
        if unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            out.append(" ")
        elif ord(ch) in cmap or unicodedata.category(ch) == "Cf":
            out.append(ch)  # format characters (ZWNJ, RLM) steer shaping and bidi
        else:
            out.append("\ufffd")
    return " ".join("".join(out).split())


def _fit(pdf: FPDF, field: _Field, text: str, width: float) -> tuple[float, str]:
    """The font size and text that set ``text`` in at most ``field.max_lines`` lines.

    The current font must be the field's family and style. fpdf2 reshapes a line
    for every character it adds, so widths bound the work before any dry run.
    """

    def fits(size: float, candidate: str) -> bool:
        pdf.set_font_size(size)
        found = pdf.multi_cell(width, 3, candidate, dry_run=True, output="LINES")
        return len(cast("list[str]", found)) <= field.max_lines

    def wide(size: float, candidate: str) -> float:
        pdf.set_font_size(size)
        return pdf.get_string_width(candidate)

    inner = width - 2 * pdf.c_margin
    smallest = field.size * _MIN_SCALE
    if wide(field.size, text) <= inner:
        return field.size, text
    if wide(smallest, text) <= inner * field.max_lines:
        size = float(field.size)
        while not fits(size, text):
            if size <= smallest:
                break
            size = max(size - 0.5, smallest)
        else:
            return size, text
    ellipsis = "..." if field.family == "Courier" else "\u2026"
    lo, hi = 0, len(text)  # the longest prefix, with the ellipsis, that fits
    while lo < hi:  # first bound it by width alone: cheap
        mid = (lo + hi + 1) // 2
        if wide(smallest, text[:mid]) <= inner * field.max_lines:
            lo = mid
        else:
            hi = mid - 1
    lo, hi = 0, lo
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(smallest, text[:mid].rstrip() + ellipsis):
            lo = mid
        else:
            hi = mid - 1
    return smallest, text[:lo].rstrip() + ellipsis


def _print_field(pdf: FPDF, field: _Field, text: str, x: float, width: float) -> None:
    family = "naskh" if field.family == "dejavu" and _is_arabic_script(text) else field.family
    pdf.set_font(family, field.style, field.size)
    size, fitted = _fit(pdf, field, text, width)
    pdf.set_font_size(size)
    pdf.set_x(x)
    align = "R" if _is_rtl(fitted) else "L"
    pdf.multi_cell(width, field.line_h * size / field.size, fitted, align=align)


def _add_fonts(pdf: FPDF, stack: contextlib.ExitStack) -> frozenset[int]:
    """Register the vendored fonts; returns the code points that one of them has."""
    fonts = importlib.resources.files("client").joinpath("fonts")
    for family, files in _FONT_FILES.items():
        for style, name in zip(("", "B"), files, strict=True):
            # fpdf2 reads font tables lazily until output: keep the file until then.
            pdf.add_font(
                family, style, stack.enter_context(importlib.resources.as_file(fonts / name))
            )
    pdf.set_fallback_fonts(list(_FONT_FILES), exact_match=False)
    pdf.set_text_shaping(True)
    return frozenset(code for font in pdf.fonts.values() for code in getattr(font, "cmap", {}))


def label_pdf(labels: list[LabelInfo]) -> bytes:
    """An A4 label sheet as PDF; QR codes are vector rectangles, text is shaped Unicode."""
    from fpdf import FPDF

    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.set_auto_page_break(auto=False)
    pdf.set_creator("mandi labels")
    with contextlib.ExitStack() as stack:
        cmap = _add_fonts(pdf, stack)
        per_page = _COLS * _ROWS
        for n, label in enumerate(labels):
            if n % per_page == 0:
                pdf.add_page()
            col, row = n % _COLS, (n % per_page) // _COLS
            x = _LEFT + col * (_LABEL_W + _GAP)
            y = _TOP + row * _LABEL_H
            matrix = qr_matrix(label.uri)
            module = _QR_MM / (len(matrix) + 4)
            pdf.set_fill_color(0, 0, 0)
            for r, line in enumerate(matrix):
                c = 0
                while c < len(line):
                    if not line[c]:
                        c += 1
                        continue
                    start = c
                    while c < len(line) and line[c]:
                        c += 1
                    pdf.rect(
                        x + 1 + (start + 2) * module,
                        y + 3.4 + (r + 2) * module,
                        (c - start) * module,
                        module,
                        style="F",
                    )
            tx, width = x + _QR_MM + 2, _LABEL_W - _QR_MM - 3
            pdf.set_xy(tx, y + 5)
            _print_field(pdf, _LOT, label.lot, tx, width)
            _print_field(pdf, _CROP, _printable(label.crop, cmap), tx, width)
            for field, text in (
                (_PRODUCER, label.producer),
                (_SMALL, label.place),
                (_SMALL, label.date),
            ):
                if text:
                    _print_field(pdf, field, _printable(text, cmap), tx, width)
        if not labels:
            pdf.add_page()
        return bytes(pdf.output())


def labels_command(
    lots: Annotated[list[str], typer.Argument(help="Canonical lot ids.")],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Output file: .pdf or .html (A4).")
    ],
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="Data directory (default database).")
    ] = Path("var"),
    db: Annotated[
        str | None,
        typer.Option("--db", help="SQLAlchemy database URL.", envvar="MANDI_DATABASE_URL"),
    ] = None,
    base_url: BaseUrlOpt = DEFAULT_BASE_URL,
) -> None:
    """Print an A4 label sheet: QR code, lot id, crop, producer and date for each lot."""
    suffix = output.suffix.lower()
    if suffix not in (".pdf", ".html", ".htm"):
        raise _fail(f"{output}: the file name must end in .pdf or .html")
    from ledger.datadir import resolve_db_url
    from ledger.storage.sql import SqlStore

    try:
        store = SqlStore.open(resolve_db_url(data_dir, db))
    except LedgerError as exc:
        raise _fail(f"{exc.code}: {exc.message}") from exc
    try:
        ledger = Ledger.reader(store)
        infos = [_label_info(ledger, lot, base_url) for lot in lots]
    except LedgerError as exc:
        field = f" [{exc.field}]" if exc.field else ""
        raise _fail(f"{exc.code}{field}: {exc.message}") from exc
    finally:
        store.close()
    if suffix == ".pdf":
        output.write_bytes(label_pdf(infos))
    else:
        output.write_text(label_html(infos), encoding="utf-8")
    _out.print(f"{output}: {len(infos)} labels", highlight=False, markup=False)
