"""A document parameter's ``allowedPattern`` checked as SSM checks it: the API's whole-value match
and SSM Agent's Go ``regexp``, run here by Google's RE2 (the engine Go's regexp follows).

What the engines do (amazon-ssm-agent, ``agent/framework/docparser``): before a command runs, the
agent fills in each missing parameter's default (``getValidatedParameters`` in ``docparser.go``),
then ``parameterstore.ValidateSSMParameters`` hands EVERY document parameter to
``allowedregexparamvalidator.Validate``, which calls Go's ``regexp.Compile(AllowedPattern)`` and
fails the command on a compile error ("encountered error while compiling allowed pattern"),
whatever the value, and otherwise requires ``MatchString(value)``: a search, not anchored. The
errors of all parameters are joined into one. Go's parser (``regexp/syntax/parse.go``,
``repeatIsValid``) refuses a repeat count over 1000 and nested repeats whose counts multiply past
1000: ``(x{0,254}){1,16}`` fails with "invalid repeat count". The API checks the same pattern with
Java and matches the whole value; for the anchored patterns certrotate writes, both agree.

RE2 applies the same limit (its parser's ``RepetitionWalker``, ``kMaxRepeat`` 1000) and refuses
what Go refuses that Python's ``re`` takes (look-around, back-references, possessive repeats).
One difference is known: Go stops counting under a ``{0}`` repeat and RE2 does not, so a pattern
such as ``(((a{100}){10}){0}){5}`` compiles in Go and not here: the runner is stricter there, never
more lenient. ``tests/integration/test_go_patterns.py`` compares both engines with Go itself.
"""

from __future__ import annotations

from typing import Any

try:
    import re2
except ImportError as exc:  # pragma: no cover - the demo and dev extras install it
    raise ImportError(
        "the local SSM runner checks allowedPattern with google-re2: pip install 'certrotate[demo]'"
    ) from exc

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would print every refused pattern on stderr


class PatternError(ValueError):
    """SSM Agent could not compile the pattern (Go's regexp refuses it)."""


def compile_pattern(pattern: str) -> Any:
    """The pattern compiled as SSM Agent compiles it.

    Raises:
        PatternError: the engine's reason, as Go's ``regexp.Compile`` would fail.
    """
    try:
        return re2.compile(pattern, options=_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise PatternError(f"allowedPattern {pattern} does not compile in SSM Agent's Go regexp: {reason}") from None


def agent_accepts(compiled: Any, value: str) -> bool:
    """SSM Agent's check: Go's ``MatchString``, a match anywhere in the value."""
    return compiled.search(value) is not None


def api_accepts(compiled: Any, value: str) -> bool:
    """The API's check: the pattern matches the whole value (Java's ``Matcher.matches``)."""
    return compiled.fullmatch(value) is not None


def accepts(compiled: Any, value: str) -> bool:
    """What gets past both: the API when the command is sent, then the agent on the instance."""
    return api_accepts(compiled, value) and agent_accepts(compiled, value)
