"""The kiosk's QR codes, drawn on the server as SVG with the `qrcode` library.

Why on the server: the page stays free of a QR library, and only links the operator configured
(HmiSettings on the bus) are ever encoded: there is no endpoint that turns any text into a code.
A code travels to the page as a `data:` URI that the page puts in an <img>; an SVG shown
through an <img> cannot run scripts, so the page never inserts markup it received.
"""

from __future__ import annotations

import base64
import logging
from functools import lru_cache
from urllib.parse import quote

import qrcode
from qrcode.constants import ERROR_CORRECT_M
from qrcode.exceptions import DataOverflowError
from qrcode.image.svg import SvgPathFillImage

log = logging.getLogger(__name__)

QUIET_ZONE_MODULES = 4  # the white border the QR standard asks for; scanners need it
CACHED_CODES = 64  # every configured link plus one per connector, with room for changes
CONNECTOR_ID_FIELD = "{connector_id}"
CHARGE_POINT_ID_FIELD = "{charge_point_id}"


@lru_cache(maxsize=CACHED_CODES)
def svg_data_uri(text: str) -> str | None:
    """`text` as a QR code: an SVG (dark modules on a white square, quiet zone included) in a
    base64 `data:` URI; None (logged once) when it does not fit in a QR code (over ~2,300
    bytes at error correction M). Cached, as the same few links are asked for every second."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=QUIET_ZONE_MODULES,
                         image_factory=SvgPathFillImage)
    code.add_data(text)
    try:
        code.make(fit=True)
    except (DataOverflowError, ValueError):  # qrcode 8 says ValueError("Invalid version")
        log.error("a link of %d bytes does not fit in a QR code and is not shown: %.60s...",
                  len(text.encode()), text)
        return None
    svg = code.make_image().to_string()
    return "data:image/svg+xml;base64," + base64.b64encode(svg).decode("ascii")


def connector_link(template: str, connector_id: int, charge_point_id: str) -> str:
    """The per-connector deep link: the template with {connector_id} and {charge_point_id}
    filled in (the id URL-quoted). Plain replacement, not str.format: the template is operator
    input, and format() would read attributes ("{connector_id.__class__}") or fail on a stray
    brace; any other braces stay as they are."""
    return (template.replace(CONNECTOR_ID_FIELD, str(connector_id))
            .replace(CHARGE_POINT_ID_FIELD, quote(charge_point_id, safe="")))
