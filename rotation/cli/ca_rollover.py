"""``certrotate ca-rollover plan|start|status|advance|abort``: move a fleet from one Private CA to another.

The state is the ``rollovers`` section of the issuance policy parameter (``--policy-parameter``,
default ``CERTROTATE_POLICY_PARAMETER``): only operators write it, and the rotation function reads it
with the policy. The phases and their gates are :mod:`rotation.rollover.phases`; this module parses
the command and prints what the phases report (:mod:`rotation.cli.ca_rollover_view`).

Exit codes: 0 done; 1 a gate does not hold (``advance`` refused, ``status --check`` stuck), the
blockers named on stderr; 3 the input is unusable (unknown rollover, a name taken, a bundle without
the old CA, an invalid policy document).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from rotation.cli import ca_rollover_view as view
from rotation.cli.examples import epilog
from rotation.cli.hosts import role_arn
from rotation.cli.output import Output
from rotation.cli.parser import ExitCode, Parser, global_options
from rotation.cli.session import AwsContext, UsageError
from rotation.fleet.ledger import LEDGER_TABLE_ENV
from rotation.issuance.policy.rollovers import BUNDLE_NAME
from rotation.issuance.policy_store import DEFAULT_TTL_SECONDS, POLICY_PARAMETER_ENV
from rotation.issuance.spec import CA_ARN_PATTERN
from rotation.rollover import phases
from rotation.rollover.aws_fleet import fleet_access

ACTIONS = {
    "plan": "what a rollover would change: bundles, hosts, secrets, time at the pace (nothing written)",
    "start": "record the rollover in the policy and add the new CA to every named bundle",
    "status": "each phase's progress: bundles, hosts done and lagging, leaves moved, time left",
    "advance": "finish the phase's work, then go to the next phase if the fleet allows it",
    "abort": "return to the state before the latest phase's change, and undo it",
}


def _ca_arn(flag: str) -> Any:
    def parse(value: str) -> str:
        if not CA_ARN_PATTERN.fullmatch(value):
            raise argparse.ArgumentTypeError(
                f"{flag} {value!r}: not a Private CA ARN (arn:aws:acm-pca:REGION:ACCOUNT:certificate-authority/ID)"
            )
        return value

    return parse


def _name(value: str) -> str:
    if not BUNDLE_NAME.fullmatch(value):
        raise argparse.ArgumentTypeError(f"{value!r}: letters, digits, '-' and '_', 1 to 64 characters")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="rollover_action", required=True, metavar="ACTION", parser_class=Parser)
    for action, text in ACTIONS.items():
        sub = actions.add_parser(
            action,
            help=text,
            description=text,
            epilog=epilog(f"ca-rollover {action}"),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.add_argument("name", type=_name, metavar="NAME", help="the rollover's name (e.g. root-2027)")
        if action in ("plan", "start"):
            sub.add_argument("--old-ca", type=_ca_arn("--old-ca"), required=True, metavar="ARN")
            sub.add_argument("--new-ca", type=_ca_arn("--new-ca"), required=True, metavar="ARN")
            sub.add_argument(
                "--bundle",
                type=_name,
                action="append",
                required=True,
                metavar="NAME",
                help="a trust bundle (certrotate/trust-bundles/NAME) that holds the old CA (repeat for each)",
            )
        if action == "status":
            sub.add_argument("--check", action="store_true", help="exit 1 when the phase cannot advance now")
        if action in ("advance", "abort", "start"):
            sub.add_argument(
                "--no-wait",
                action="store_true",
                help="do not wait out the function's policy cache before a re-issue: say when to run again",
            )
        sub.add_argument(
            "--policy-parameter",
            default=os.environ.get(POLICY_PARAMETER_ENV, ""),
            help=f"the issuance policy's SSM parameter (default ${POLICY_PARAMETER_ENV})",
        )
        sub.add_argument(
            "--role-arn",
            type=role_arn,
            action="append",
            default=[],
            metavar="ARN",
            help="read the hosts of this account through its FleetViewRole (repeat; default: your own account)",
        )
        sub.add_argument(
            "--ledger-table",
            default=os.environ.get(LEDGER_TABLE_ENV, ""),
            help=f"the issuance ledger: retire revokes old leaves by it (default ${LEDGER_TABLE_ENV})",
        )
        sub.add_argument(
            "--policy-ttl",
            type=float,
            default=DEFAULT_TTL_SECONDS,
            metavar="SECONDS",
            help=f"how long the rotation function keeps a policy it read ({DEFAULT_TTL_SECONDS:g})",
        )
        global_options(sub, on_command=True)


def run(aws: AwsContext, args: argparse.Namespace, out: Output) -> int:
    if not args.policy_parameter:
        raise UsageError(f"--policy-parameter: the issuance policy's SSM parameter (or set ${POLICY_PARAMETER_ENV})")
    if not 0 <= args.policy_ttl <= 3600:
        raise UsageError(f"--policy-ttl {args.policy_ttl:g}: seconds from 0 to 3600")
    with out.progress() as bar:
        fleet = fleet_access(
            aws,
            args.policy_parameter,
            role_arns=args.role_arn,
            ledger_table=args.ledger_table,
            policy_ttl=args.policy_ttl,
            wait=not getattr(args, "no_wait", False),
            progress=bar.update,
        )
        try:
            progress = _act(fleet, args)
        except phases.GateClosed as exc:
            view.show(out, exc.progress)
            out.note(f"certrotate: {exc}")
            return int(ExitCode.FAILED)
    view.show(out, progress)
    if args.rollover_action == "status" and args.check and progress.blockers:
        out.note(f"certrotate: {progress.rollover.name} cannot advance: " + "; ".join(progress.blockers))
        return int(ExitCode.FAILED)
    return int(ExitCode.OK)


def _act(fleet: phases.FleetAccess, args: argparse.Namespace) -> phases.Progress:
    action = args.rollover_action
    if action == "plan":
        return phases.plan(fleet, args.name, args.old_ca, args.new_ca, args.bundle)
    if action == "start":
        return phases.start(fleet, args.name, args.old_ca, args.new_ca, args.bundle)
    if action == "advance":
        return phases.advance(fleet, args.name)
    if action == "abort":
        return phases.abort(fleet, args.name)
    return phases.status(fleet, args.name)
