"""`python -m headsetd` runs the command line."""

from headsetd.cli import main

raise SystemExit(main())
