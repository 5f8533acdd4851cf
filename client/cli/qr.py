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
readable lot id, crop and variety, producer and place, and the date. The PDF
uses the built-in Helvetica (Latin-1; other characters print as "?"); the HTML
sheet prints any script and is escaped throughout.
"""

from __future__ import annotations

import html
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import qrcode
import qrcode.constants
import typer
from fpdf import FPDF
from qrcode.image.pil import PilImage
from rich.console import Console

from ledger.datadir import resolve_db_url
from ledger.domain.ids import LotId
from ledger.errors import LedgerError
from ledger.service import Ledger
from ledger.statements import Statement
from ledger.storage.sql import SqlStore

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


def _latin1(text: str) -> str:
    return text.encode("latin-1", "replace").decode("latin-1")


def label_pdf(labels: list[LabelInfo]) -> bytes:
    """An A4 label sheet as PDF; QR codes are vector rectangles."""
    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.set_auto_page_break(auto=False)
    pdf.set_creator("mandi labels")
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
        pdf.set_font("Courier", "B", 7)
        pdf.multi_cell(width, 3, _latin1(label.lot))
        pdf.set_x(tx)
        pdf.set_font("Helvetica", "B", 8)
        pdf.multi_cell(width, 3.6, _latin1(label.crop))
        pdf.set_font("Helvetica", "", 7)
        for text in (label.producer, label.place, label.date):
            if text:
                pdf.set_x(tx)
                pdf.multi_cell(width, 3.2, _latin1(text))
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
