import sys

from dmf_tui.cli import main

sys.exit(main())
