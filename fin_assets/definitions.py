"""The code location: each flow contributes its own Definitions, merged here."""

import dagster as dg

from fin_assets.batch.definitions import defs as batch_defs
from fin_assets.resources.settings import settings_from_env

shared_defs = dg.Definitions(resources={"settings": settings_from_env()})

defs = dg.Definitions.merge(shared_defs, batch_defs)
