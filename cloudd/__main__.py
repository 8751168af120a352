import sys

from cloudd.cli import main

sys.exit(main())
