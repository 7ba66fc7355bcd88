"""What to do next, added to an AWS error's one line: where the call went, and the command that fixes it.

Pure: the facts (region, profile, endpoint, account) are passed in; :func:`next_step` only decides.
"""

from __future__ import annotations

from dataclasses import dataclass

from rotation.errors import AwsCallError
from rotation.redaction import quote

#: No usable credentials (missing, expired, unknown to AWS): exit 4, as an unreachable AWS.
CREDENTIALS_MISSING = frozenset(
    {
        "NoCredentialsError",
        "PartialCredentialsError",
        "CredentialRetrievalError",
        "TokenRetrievalError",
        "UnauthorizedSSOTokenError",
        "SSOTokenLoadError",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "ExpiredToken",
        "ExpiredTokenException",
    }
)
#: Credentials missing, expired or rejected: the fix is to (re)configure or log in.
CREDENTIALS = CREDENTIALS_MISSING | {"InvalidSignatureException", "SignatureDoesNotMatch"}
#: HTTP statuses with no AWS error document: the endpoint is a web server, not an AWS API.
NOT_AN_AWS_ENDPOINT = frozenset({"301", "302", "307", "308", "404", "405"})


@dataclass(frozen=True)
class Where:
    region: str
    profile: str | None
    endpoint: str | None
    account: str | None = None  # None when it cannot be read (no credentials)
    ledger_table: str = ""  # the command's --ledger-table (or CERTROTATE_LEDGER_TABLE)
    requested: tuple[str, ...] = ()  # the ARNs the command was given (a secret named by ARN)


#: The endpoint could not be reached at all (refused, no route, DNS, proxy).
UNREACHED = frozenset({"EndpointConnectionError", "ConnectTimeoutError", "ProxyConnectionError"})


def _elsewhere(where: Where) -> str:
    """What a requested ARN says that the call did not use: its region, its account ("" when none)."""
    for arn in where.requested:
        parts = arn.split(":")
        if len(parts) < 6 or parts[2] != "secretsmanager":
            continue
        region, account = parts[3], parts[4]
        other_region = region != where.region
        other_account = where.account is not None and account != where.account
        if other_region or other_account:
            asked = f"region {region}, account {account}"
            went = f"region {where.region}" + (f", account {where.account}" if where.account else "")
            fix = [f"--region {region}"] if other_region else []
            fix += [f"credentials of account {account} (--profile)"] if other_account else []
            return f"the ARN names {asked} but the call went to {went}; next: {' and '.join(fix)}"
    return ""


def next_step(exc: AwsCallError, where: Where) -> str:
    """The hint to append to ``exc``'s line ("" when there is nothing useful to add)."""
    profile = f" --profile {where.profile}" if where.profile else ""
    if exc.code in CREDENTIALS:
        return (
            f"no valid AWS credentials{f' for profile {where.profile}' if where.profile else ''}; "
            f"next: `aws configure{profile}` (access keys) or `aws sso login{profile}` (IAM Identity Center), "
            "then run this again"
        )
    if exc.code in NOT_AN_AWS_ENDPOINT:
        endpoint = where.endpoint or "the AWS endpoint"
        return (
            f"{endpoint} answered HTTP {exc.code}, not an AWS API; "
            "next: check --endpoint-url / AWS_ENDPOINT_URL (a moto server is http://127.0.0.1:PORT)"
        )
    if exc.service == "dynamodb" and where.ledger_table:
        account = f", account {where.account}" if where.account else ""
        return (
            f"the issuance ledger table is --ledger-table {quote(where.ledger_table)} (or CERTROTATE_LEDGER_TABLE), "
            f"region {where.region}{account}; next: use the central stack's IssuanceLedgerTableName output"
        )
    if exc.code in UNREACHED:
        if where.endpoint and any(host in where.endpoint for host in ("127.0.0.1", "localhost", "[::1]")):
            return (
                f"nothing answers at {where.endpoint}; next: start the sandbox "
                '(`eval "$(certrotate sandbox --detach)"`) or fix --endpoint-url / AWS_ENDPOINT_URL'
            )
        target = where.endpoint or f"the AWS endpoints of region {where.region}"
        return (
            f"could not connect to {target}; next: check the network, a proxy (HTTPS_PROXY), "
            "--region and --endpoint-url / AWS_ENDPOINT_URL"
        )
    if exc.code in ("ResourceNotFoundException", "AccessDeniedException") and exc.service == "secretsmanager":
        elsewhere = _elsewhere(where)
        if elsewhere:
            return elsewhere
    if exc.code == "ResourceNotFoundException" and exc.service == "secretsmanager":
        account = f", account {where.account}" if where.account else ""
        return (
            f"looked in region {where.region}{account}{f' (profile {where.profile})' if where.profile else ''}; "
            "next: check the name, --region and --profile; `certrotate status` lists the certificate secrets there"
        )
    return ""
