import sys

from gitract.cli import main

sys.exit(main())
