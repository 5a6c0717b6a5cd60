"""The README's table of the compiled tier is the tier's own parametrization."""

import os

from tests.test_integration import support_matrix

README = os.path.join(os.path.dirname(os.path.dirname(__file__)), "README.md")


def test_readme_tier_table_matches_the_tier():
    with open(README, encoding="utf-8") as f:
        text = f.read()
    start, end = "<!-- tier matrix -->\n", "<!-- end tier matrix -->"
    table = text[text.index(start) + len(start) : text.index(end)]
    assert table == support_matrix(), (
        "Regenerate the README table with tests.test_integration.support_matrix()"
    )
