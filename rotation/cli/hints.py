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
    if exc.code == "ResourceNotFoundException" and exc.service == "secretsmanager":
        account = f", account {where.account}" if where.account else ""
        return (
            f"looked in region {where.region}{account}{f' (profile {where.profile})' if where.profile else ''}; "
            "next: check the name, --region and --profile; `certrotate status` lists the certificate secrets there"
        )
    return ""
