import sys

from fin_assets.cli import main

sys.exit(main())
