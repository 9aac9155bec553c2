"""Where a test runs among the parallel workers (pytest-xdist, `--dist loadgroup`).

`waits_on_a_clock` marks tests that spend their time waiting, not computing: a lock held 7 s, a
server dribbling until a deadline, a pacing interval. They join one xdist group and so wait in
turn on one worker, while the other workers keep both cores busy; spread out, several workers
would idle at once.
"""

import pytest

# conftest.py puts every test with a tier marker in this group: one worker starts each service.
SERVICES_GROUP = "services"
waits_on_a_clock = pytest.mark.xdist_group("waits_on_a_clock")
