"""The demo shop's settings that library calls take as arguments (pipeline/config/cdp.yaml): the libraries have no
shop defaults of their own."""

from pipeline.lib.identity import IdentityRules

DEMO_REGION = "ID"  # identity.default_region: the demo shop is Indonesian
DEMO_RULES = IdentityRules(default_region=DEMO_REGION)  # the identity rules' documented defaults in that region
