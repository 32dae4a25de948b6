"""Customer segments: RFM, customer-base types, history and transitions, base shape."""

import dagster as dg

from pipeline.defs.segments.assets import SEGMENT_ASSETS

defs = dg.Definitions(assets=SEGMENT_ASSETS)
