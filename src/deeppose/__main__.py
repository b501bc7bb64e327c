import sys

from deeppose.cli import main

sys.exit(main())
