"""Pure parts of the command line's output: escapes, one-line errors, columns by width, days."""

from __future__ import annotations

import pytest

from rotation.cli.output import error_line, literal
from rotation.cli.status_tables import columns_for, days_left


def test_literal_shows_control_characters_and_keeps_markup_text() -> None:
    assert literal("[bold]x[/bold] :secret:").plain == "[bold]x[/bold] :secret:"
    assert literal("a\x1b[2Jb\x9bc\x07").plain == "a\\x1b[2Jb\\x9bc\\x07"
    assert literal("é ü 中").plain == "é ü 中"


def test_an_html_error_page_becomes_its_title_on_one_line() -> None:
    page = "secretsmanager ListSecrets failed: 500 (<!doctype html>\n<html>\n<title>502 Bad Gateway</title>\n</html>)"
    assert error_line(page) == (
        "secretsmanager ListSecrets failed: 500 (an HTML page, not an AWS response: 502 Bad Gateway)"
    )
    assert error_line("two\nlines  and   spaces") == "two lines and spaces"


@pytest.mark.parametrize(
    ("days", "shown"), [(None, "-"), (-1.0, "expired"), (0.0, "expired"), (0.25, "6h"), (0.01, "1h"), (365.0, "365")]
)
def test_days_left_is_whole_days_or_hours(days: float | None, shown: str) -> None:
    assert days_left(days) == shown


def test_columns_are_added_in_priority_order_while_they_fit() -> None:
    row = {
        "secret": "prod/web",
        "days left": "90",
        "health": "ok",
        "type": "PCA",
        "key": "EC_prime256v1",
        "subject": "web.example.internal",
        "rotation": "on",
        "last rotated": "2026-11-01",
        "next rotation": "2026-12-01",
    }
    assert columns_for([row], 40) == ["secret", "days left", "health", "type"]
    assert columns_for([row], 80)[:6] == ["secret", "days left", "health", "type", "key", "subject"]
    assert len(columns_for([row], 200)) == 9
    assert columns_for([row], 10) == ["secret", "days left", "health"]  # the core three always
