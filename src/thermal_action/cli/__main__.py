"""``python -m thermal_action.cli`` (and ``torchrun ... -m thermal_action.cli``): the ``thermal-action`` command."""

import sys

from thermal_action.cli import main

sys.exit(main())
