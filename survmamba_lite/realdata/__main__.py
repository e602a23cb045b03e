"""``python -m survmamba_lite.realdata``: the real-data check (:mod:`.command`)."""
import sys

from survmamba_lite.realdata.command import main

sys.exit(main())
