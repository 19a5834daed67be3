"""``python -m ari_app.testcall ...`` is the same as ``python -m ari_app.testcall.softphone ...``."""

import sys

from ari_app.testcall.softphone import main

sys.exit(main())
