"""Behaviour check of refactorings: every mart table of the default demo run matches the recorded digests.

The fixture `mart_digests.json` holds the digests of the default demo (`tests/integration/mart_digest.py` says
how they are computed). A change of what the pipeline outputs fails here; when the change is intended, regenerate
the fixture with `make mart-digests` and say so in the commit message.
"""

import json

from tests.integration.mart_digest import FIXTURE, differences, mart_digests


def test_every_mart_table_matches_the_recorded_digest(demo_run):
    expected = json.loads(FIXTURE.read_text(encoding="utf-8"))
    assert differences(expected, mart_digests(demo_run.warehouse)) == []
