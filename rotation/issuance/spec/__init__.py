"""The certificate specification a secret holds, parsed once into a frozen :class:`CertSpec`. Pure: no AWS calls.

Accepts every field name and value of the original sample (``TYPE_RSA`` + ``KEY_SIZE``,
``SIGNING_ALGORITHM`` ``RSA``/``ECDSA`` + ``SIGNING_HASH``, ``ENVIRONMENT`` ``TEST``) and the newer
names (``RSA_2048`` … ``EC_secp521r1``). What AWS Private CA cannot sign is refused with a
:class:`~rotation.errors.SpecError` naming the field, the value and the allowed values. The
package, by job:

- :mod:`~rotation.issuance.spec.choices`: the closed choices (enums) and their other spellings;
- :mod:`~rotation.issuance.spec.record`: the :class:`CertSpec` record and the secret's limits;
- :mod:`~rotation.issuance.spec.values`: a JSON field read as text, a choice or a flag;
- :mod:`~rotation.issuance.spec.names`: COMMON_NAME, SUBJECT_ALTERNATIVE_NAMES and the secret's size;
- :mod:`~rotation.issuance.spec.fields`: one reader per field in one table, :func:`parse_spec`
  (the first problem) and :func:`spec_problems` (every problem).
"""

from rotation.issuance.spec.choices import (
    ACM_KEY_ALGORITHMS,
    DEFAULT_TEMPLATE_ARN,
    END_ENTITY_TEMPLATES,
    CertificateType,
    KeyAlgorithm,
    KeyFamily,
    RenewalPolicy,
    SigningHash,
    ValidityUnit,
)
from rotation.issuance.spec.fields import CA_ARN_PATTERN, FIELDS, SpecField, parse_spec, spec_problems
from rotation.issuance.spec.record import (
    BUNDLE_ALLOWANCE,
    MAX_NAMES,
    OUTPUT_FIELDS,
    SECRET_VALUE_LIMIT,
    CertSpec,
    Validity,
)
from rotation.issuance.spec.values import load_secret_fields

__all__ = [
    "ACM_KEY_ALGORITHMS",
    "BUNDLE_ALLOWANCE",
    "CA_ARN_PATTERN",
    "DEFAULT_TEMPLATE_ARN",
    "END_ENTITY_TEMPLATES",
    "FIELDS",
    "MAX_NAMES",
    "OUTPUT_FIELDS",
    "SECRET_VALUE_LIMIT",
    "CertSpec",
    "CertificateType",
    "KeyAlgorithm",
    "KeyFamily",
    "RenewalPolicy",
    "SigningHash",
    "SpecField",
    "Validity",
    "ValidityUnit",
    "load_secret_fields",
    "parse_spec",
    "spec_problems",
]
