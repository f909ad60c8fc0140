"""`python manage.py ocpp ACTION ...`: ask ocpp16 to talk to the CSMS.

    ocpp data-transfer VENDOR [--message-id M] [--data D]

sends an OCPP DataTransfer.req (VENDOR: the CSMS vendor's id, up to 255 characters; M up to 50)
and prints the CSMS's answer: its status on the first line, then its data if any.

Exit codes: 0 Accepted; 1 any other answer (Rejected, UnknownVendorId, UnknownMessageId), no
answer (CALLERROR, timeout, not connected or not Accepted), ocpp16 or the bus not answering;
2 bad usage (an empty or too long vendor id or message id).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bus import Bus, BusRequestError, contract
from bus.messages import DataTransferReply, DataTransferRequest
from bus.service import REDIS_ERRORS
from webapp.station.management.cli import NOT_DONE

OCPP16 = "ocpp16"  # the service that serves contract.OCPP_DATA_TRANSFER
NOT_RUNNING_WAIT_S = 3.0
VENDOR_ID_MAX = 255
MESSAGE_ID_MAX = 50


def _text(limit: int) -> Any:
    def check(text: str) -> str:
        if not 1 <= len(text) <= limit:
            raise argparse.ArgumentTypeError(f"1 to {limit} characters, got {len(text)}")
        return text
    return check


class Command(BaseCommand):
    help = "Talk to the CSMS through ocpp16 (DataTransfer)."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        transfer = actions.add_parser("data-transfer", help="send DataTransfer.req and print the answer")
        transfer.add_argument("vendor_id", type=_text(VENDOR_ID_MAX), metavar="VENDOR",
                              help="the CSMS vendor's id (vendorId)")
        transfer.add_argument("--message-id", type=_text(MESSAGE_ID_MAX), help="messageId")
        transfer.add_argument("--data", help="data (free text the vendor defines)")

    def handle(self, *args: Any, **options: Any) -> None:
        request = DataTransferRequest(vendor_id=options["vendor_id"], message_id=options["message_id"],
                                      data=options["data"])
        reply = asyncio.run(_ask(request))
        if reply.failure is not None:
            raise CommandError(f"DataTransfer got no answer from the CSMS: {reply.failure} ({reply.detail})",
                               returncode=NOT_DONE)
        self.stdout.write(str(reply.status))
        if reply.data is not None:
            self.stdout.write(reply.data)
        if reply.status != "Accepted":
            raise CommandError(f"the CSMS answered {reply.status}", returncode=NOT_DONE)


async def _ask(request: DataTransferRequest) -> DataTransferReply:
    """The reply; without ocpp16's heartbeat only a short wait (no need to wait for the CSMS's
    timeout when nobody serves the command, and a lapsed heartbeat is no proof it is down)."""
    bus = Bus("manage.ocpp")
    running = False
    try:
        running = await bus.get(contract.HEARTBEAT, service=OCPP16) is not None
        return await bus.request(contract.OCPP_DATA_TRANSFER, request,
                                 timeout_s=None if running else NOT_RUNNING_WAIT_S)
    except BusRequestError as error:
        hint = "" if running else "; ocpp16 is not running (`manage.py chargepoint` starts it)"
        raise CommandError(f"ocpp16 did not answer: {error}{hint}", returncode=NOT_DONE) from error
    except REDIS_ERRORS as error:
        raise CommandError(f"cannot reach the bus (Redis): {error}", returncode=NOT_DONE) from error
    finally:
        await bus.close()
