import sys

from videofix.cli import main

sys.exit(main())
