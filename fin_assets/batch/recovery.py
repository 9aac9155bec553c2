"""A sensor that settles runs whose process died, so the `alpha_vantage` pool slot they hold
does not block every later run (the default run launcher cannot check worker health)."""


import dagster as dg

from fin_assets.batch.schedules import JOB_NAME
from fin_assets.instance import release_dead_runs


@dg.sensor(
    name="dead_run_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=f"Marks {JOB_NAME} runs (and any run holding a pool slot) whose process is gone "
    "as failed and frees their slots, so the next scheduled run is not left QUEUED.",
)
def dead_run_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    released = release_dead_runs(context.instance, [JOB_NAME])
    if released:
        return dg.SkipReason(f"released dead run(s): {', '.join(released)}")
    return dg.SkipReason("no dead run")
