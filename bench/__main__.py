"""`python -m bench [--quick] [...]`: run every scenario and write bench/results/."""

import sys

from bench.run import main

if __name__ == "__main__":
    sys.exit(main())
