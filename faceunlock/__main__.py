from __future__ import annotations

import sys

from faceunlock.cli import main

sys.exit(main())
