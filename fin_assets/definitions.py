"""The code location: each flow contributes its own Definitions, merged here.

Only `defs` is a Definitions object at module scope (Dagster's loader insists on one).
"""

import dagster as dg

from fin_assets.batch import definitions as batch
from fin_assets.resources.settings import settings_from_env
from fin_assets.search import definitions as search
from fin_assets.simulator import definitions as simulator

# Every step here is small; running a run's steps in its own process, one after the other,
# saves the few seconds per step that a fresh Python process with dagster and pandas costs.
defs = dg.Definitions.merge(
    dg.Definitions(resources={"settings": settings_from_env()}, executor=dg.in_process_executor),
    batch.defs,
    simulator.defs,
    search.defs,
)
