"""The lot page's words in English and Urdu, and the choice between them.

Every label the public lot page shows (server-rendered or written by
``verify.js``) comes from :data:`STRINGS`; both languages carry exactly the
same keys (a test checks it). Participant-supplied text (names, crops, plots,
reasons) is data, never translated. :func:`choose_language` picks the language
from an explicit ``?lang=`` switch, else from ``Accept-Language``, else English.

This module holds words only; it renders nothing and reads no request.
"""

# ruff: noqa: RUF001 - the Urdu full stop (U+06D4) is correct punctuation, not a look-alike

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "DEFAULT_LANGUAGE",
    "JS_KEYS",
    "LANGUAGES",
    "RTL_LANGUAGES",
    "STRINGS",
    "choose_language",
    "strings_for",
]

DEFAULT_LANGUAGE = "en"
LANGUAGES = ("en", "ur")
RTL_LANGUAGES = frozenset({"ur"})

_EN: dict[str, str] = {
    "language_name": "English",
    "page_title": "Lot {lot}",
    "site_name": "Mandi provenance",
    "lot": "Lot",
    "crop": "Crop",
    "variety": "Variety",
    "quantity": "Quantity",
    "status": "Status",
    "holder": "Held by",
    "producer": "Produced by",
    "created": "First recorded",
    "journey": "Journey from farm to market",
    "upstream": "Made from these lots",
    "upstream_none": "This lot was harvested directly; it was not made from other lots.",
    "upstream_more": "and {count} more lots",
    "inspections": "Inspections and certificates",
    "inspections_none": "No inspections recorded.",
    "recall_title": "RECALLED: do not sell or eat",
    "recall_body": "This lot, or a lot it was made from, has been recalled.",
    "recall_lot": "Recalled lot",
    "reason": "Reason",
    "who": "Who",
    "where": "Where",
    "when": "When",
    "document": "Document SHA-256",
    "certificate": "Certificate",
    "result": "Result",
    "result_pass": "passed",
    "result_fail": "FAILED",
    "grade": "Grade",
    "valid_until": "Valid until",
    "harvest_date": "Harvest date",
    "plot": "Plot",
    "to": "To",
    "carrier": "Carrier",
    "transport": "Transport",
    "vehicle": "Vehicle",
    "facility": "Facility",
    "condition": "Condition",
    "temperature": "Temperature",
    "process": "Process",
    "inputs": "Lots used",
    "outputs": "Lots made",
    "contents": "Lots inside",
    "unit": "Packed in",
    "shipment": "Shipment",
    "price": "Price",
    "corrects": "Corrects",
    "corrected": "Declared wrong by a later statement",
    "entry": "Log entry",
    "qr_code": "QR code",
    "qr_alt": "QR code for this lot",
    "verifier_link": "Open the standalone verifier",
    "json_link": "Data (JSON)",
    "no_js": "Not verified on this device: JavaScript is off. The list below is what the "
    "server says.",
    "verifying": "Verifying on this device…",
    "verified": "Verified on this device",
    "verify_failed": "Verification FAILED",
    "verified_event": "signature and log entry verified",
    "pending_event": "not yet in a signed checkpoint",
    "checkpoint_size": "Signed log checkpoint: {size} entries",
    "checkpoint_age": "newest entry it covers was accepted {age} ago",
    "witnessed": "cosigned by {names}",
    "witnesses_one": "Vouched for by 1 independent witness",
    "witnesses_many": "Vouched for by {n} independent witnesses",
    "witnesses_none": "No witness has cosigned this checkpoint yet",
    "crypto_webcrypto": "Signatures checked with this browser's built-in WebCrypto Ed25519.",
    "crypto_noble": "This browser has no WebCrypto Ed25519: signatures checked with the bundled "
    "@noble/ed25519 library.",
    "limits": "This proves that every event shown was signed by the participant named and is "
    "in the log that the log key signed. It cannot prove that the server showed you every "
    "event: a withheld recall, correction or key revocation is found by witnesses and "
    "auditors, not by one phone.",
    "failed_what": "What did not verify",
    "age_s": "{n} s",
    "age_min": "{n} min",
    "age_h": "{n} h",
    "age_d": "{n} days",
    "not_found_title": "Lot not found",
    "not_found_body": "No lot with this id is recorded in this log.",
    "kind_harvest": "Harvested",
    "kind_store": "Stored",
    "kind_transform": "Processed",
    "kind_pack": "Packed",
    "kind_unpack": "Unpacked",
    "kind_ship": "Shipped",
    "kind_receive": "Received",
    "kind_inspect": "Inspected",
    "kind_sell": "Sold",
    "kind_recall": "Recalled",
    "kind_correct": "Correction",
    "status_held": "held",
    "status_in_transit": "in transit",
    "status_packed": "packed",
    "status_consumed": "used up",
    "status_sold": "sold",
    "role_producer": "farmer",
    "role_cooperative": "cooperative",
    "role_processor": "processor",
    "role_transporter": "transporter",
    "role_warehouse": "warehouse",
    "role_market": "market",
    "role_inspector": "inspector",
    "role_operator": "operator",
    "unit_g": "g",
    "unit_kg": "kg",
    "unit_t": "t",
    "unit_crate": "crates",
    "unit_sack": "sacks",
    "unit_bag": "bags",
    "unit_box": "boxes",
    "unit_bunch": "bunches",
    "unit_piece": "pieces",
}

_UR: dict[str, str] = {
    "language_name": "اردو",
    "page_title": "لاٹ {lot}",
    "site_name": "منڈی: اصل کا ریکارڈ",
    "lot": "لاٹ",
    "crop": "فصل",
    "variety": "قسم",
    "quantity": "مقدار",
    "status": "حیثیت",
    "holder": "اب کس کے پاس",
    "producer": "پیدا کنندہ",
    "created": "پہلا اندراج",
    "journey": "کھیت سے منڈی تک کا سفر",
    "upstream": "یہ لاٹ ان لاٹوں سے بنی",
    "upstream_none": "یہ لاٹ براہِ راست کٹائی سے آئی؛ کسی اور لاٹ سے نہیں بنی۔",
    "upstream_more": "اور {count} مزید لاٹیں",
    "inspections": "معائنے اور سرٹیفکیٹ",
    "inspections_none": "کوئی معائنہ درج نہیں۔",
    "recall_title": "واپس منگوائی گئی: نہ بیچیں، نہ کھائیں",
    "recall_body": "یہ لاٹ، یا وہ لاٹ جس سے یہ بنی، واپس منگوائی گئی ہے۔",
    "recall_lot": "واپس منگوائی گئی لاٹ",
    "reason": "وجہ",
    "who": "کون",
    "where": "کہاں",
    "when": "کب",
    "document": "دستاویز کا SHA-256",
    "certificate": "سرٹیفکیٹ",
    "result": "نتیجہ",
    "result_pass": "کامیاب",
    "result_fail": "ناکام",
    "grade": "درجہ",
    "valid_until": "میعاد",
    "harvest_date": "تاریخِ کٹائی",
    "plot": "کھیت",
    "to": "بنام",
    "carrier": "ٹرانسپورٹر",
    "transport": "نقل و حمل",
    "vehicle": "گاڑی",
    "facility": "جگہ",
    "condition": "حالت",
    "temperature": "درجۂ حرارت",
    "process": "عمل",
    "inputs": "استعمال شدہ لاٹیں",
    "outputs": "بننے والی لاٹیں",
    "contents": "اندر کی لاٹیں",
    "unit": "پیکنگ",
    "shipment": "کھیپ",
    "price": "قیمت",
    "corrects": "درستی برائے",
    "corrected": "بعد کے بیان میں غلط قرار دیا گیا",
    "entry": "لاگ اندراج",
    "qr_code": "کیو آر کوڈ",
    "qr_alt": "اس لاٹ کا کیو آر کوڈ",
    "verifier_link": "الگ تصدیقی صفحہ کھولیں",
    "json_link": "ڈیٹا (JSON)",
    "no_js": "اس آلے پر تصدیق نہیں ہوئی: جاوا اسکرپٹ بند ہے۔ نیچے کی فہرست سرور کا بیان ہے۔",
    "verifying": "اس آلے پر تصدیق ہو رہی ہے…",
    "verified": "اس آلے پر تصدیق شدہ",
    "verify_failed": "تصدیق ناکام",
    "verified_event": "دستخط اور لاگ اندراج کی تصدیق ہو گئی",
    "pending_event": "ابھی کسی دستخط شدہ چیک پوائنٹ میں نہیں",
    "checkpoint_size": "دستخط شدہ لاگ چیک پوائنٹ: {size} اندراجات",
    "checkpoint_age": "اس کا آخری اندراج {age} پہلے قبول ہوا",
    "witnessed": "گواہ: {names}",
    "witnesses_one": "ایک آزاد گواہ نے اس کی توثیق کی ہے",
    "witnesses_many": "{n} آزاد گواہوں نے اس کی توثیق کی ہے",
    "witnesses_none": "ابھی کسی گواہ نے اس چیک پوائنٹ پر دستخط نہیں کیے",
    "crypto_webcrypto": "دستخط اس براؤزر کے اپنے WebCrypto Ed25519 سے جانچے گئے۔",
    "crypto_noble": "اس براؤزر میں WebCrypto Ed25519 نہیں: دستخط ساتھ دی گئی @noble/ed25519 "
    "لائبریری سے جانچے گئے۔",
    "limits": "یہ ثابت کرتا ہے کہ دکھایا گیا ہر واقعہ اسی شریک نے دستخط کیا اور اُس لاگ میں ہے جس "
    "پر لاگ کی کلید نے دستخط کیے۔ یہ ثابت نہیں کر سکتا کہ سرور نے ہر واقعہ دکھایا: چھپائی گئی "
    "واپسی، درستی یا کلید کی منسوخی گواہ اور آڈیٹر پکڑتے ہیں، ایک فون نہیں۔",
    "failed_what": "کس چیز کی تصدیق نہیں ہوئی",
    "age_s": "{n} سیکنڈ",
    "age_min": "{n} منٹ",
    "age_h": "{n} گھنٹے",
    "age_d": "{n} دن",
    "not_found_title": "لاٹ نہیں ملی",
    "not_found_body": "اس شناخت کی کوئی لاٹ اس لاگ میں درج نہیں۔",
    "kind_harvest": "کٹائی",
    "kind_store": "ذخیرہ",
    "kind_transform": "پروسیسنگ",
    "kind_pack": "پیکنگ",
    "kind_unpack": "پیکنگ کھولی",
    "kind_ship": "روانگی",
    "kind_receive": "وصولی",
    "kind_inspect": "معائنہ",
    "kind_sell": "فروخت",
    "kind_recall": "واپسی",
    "kind_correct": "درستی",
    "status_held": "موجود",
    "status_in_transit": "راستے میں",
    "status_packed": "پیک شدہ",
    "status_consumed": "استعمال ہو چکی",
    "status_sold": "فروخت ہو چکی",
    "role_producer": "کاشتکار",
    "role_cooperative": "کوآپریٹو",
    "role_processor": "پروسیسر",
    "role_transporter": "ٹرانسپورٹر",
    "role_warehouse": "گودام",
    "role_market": "منڈی",
    "role_inspector": "معائنہ کار",
    "role_operator": "آپریٹر",
    "unit_g": "گرام",
    "unit_kg": "کلوگرام",
    "unit_t": "ٹن",
    "unit_crate": "کریٹ",
    "unit_sack": "بوریاں",
    "unit_bag": "تھیلے",
    "unit_box": "ڈبے",
    "unit_bunch": "گچھے",
    "unit_piece": "عدد",
}

STRINGS: Mapping[str, Mapping[str, str]] = {"en": _EN, "ur": _UR}
"""Every label of the lot page, by language; both languages have the same keys."""

_JS_PREFIXES = ("kind_", "role_", "unit_", "age_", "result_")
JS_KEYS: tuple[str, ...] = tuple(
    sorted(
        key
        for key in _EN
        if key.startswith(_JS_PREFIXES)
        or key
        in {
            "verifying",
            "verified",
            "verify_failed",
            "verified_event",
            "pending_event",
            "checkpoint_size",
            "checkpoint_age",
            "witnessed",
            "witnesses_one",
            "witnesses_many",
            "witnesses_none",
            "crypto_webcrypto",
            "crypto_noble",
            "limits",
            "failed_what",
            "who",
            "where",
            "when",
            "quantity",
            "crop",
            "variety",
            "plot",
            "harvest_date",
            "to",
            "carrier",
            "transport",
            "vehicle",
            "facility",
            "condition",
            "temperature",
            "process",
            "inputs",
            "outputs",
            "contents",
            "unit",
            "shipment",
            "price",
            "corrects",
            "corrected",
            "reason",
            "result",
            "grade",
            "certificate",
            "valid_until",
            "document",
            "entry",
            "recall_title",
            "recall_body",
            "recall_lot",
            "upstream",
            "upstream_none",
            "lot",
            "producer",
        }
    )
)
"""The labels ``verify.js`` needs to render verified events (handed to it by the page)."""


def strings_for(language: str) -> Mapping[str, str]:
    """The labels of ``language`` (English for an unknown one)."""
    return STRINGS.get(language, STRINGS[DEFAULT_LANGUAGE])


def choose_language(switch: str | None, accept_language: str | None) -> str:
    """The page language: the ``?lang=`` switch if known, else the best ``Accept-Language``.

    ``Accept-Language`` is read as RFC 9110 section 12.5.4 says: ranges with
    optional ``q`` weights; the highest-weighted range whose primary subtag is
    a language we have wins (ties keep header order); ``q=0`` excludes.
    """
    if switch is not None and switch in STRINGS:
        return switch
    best, best_q = DEFAULT_LANGUAGE, 0.0
    for part in (accept_language or "").split(","):
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().lower().split("-", 1)[0]
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if primary in STRINGS and q > best_q:
            best, best_q = primary, q
    return best
