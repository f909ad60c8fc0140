"""`python -m tests.chargepoint.run_supervisor [--grace S] NAME=MODULE ...`: the real
chargepoint Supervisor over a given set of child modules (e.g. the toy services here), so
its rules (backoff, hang, stop, exit codes) can be tested without the whole station."""

from __future__ import annotations

import argparse

from workers.common.bootstrap import setup


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--grace", type=float, default=30.0, help="start-up grace, s")
    parser.add_argument("children", nargs="+", metavar="NAME=MODULE")
    args = parser.parse_args()
    setup("chargepoint", log_to_files=False)
    from workers.chargepoint.services import ServiceSpec
    from workers.chargepoint.supervisor import Supervisor

    specs = [ServiceSpec(*item.split("=", 1)) for item in args.children]
    return Supervisor(specs, startup_grace_s=args.grace).main()


if __name__ == "__main__":
    raise SystemExit(main())
