import sys

from ledex.cli import main

sys.exit(main())
