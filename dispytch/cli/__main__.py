"""`python -m dispytch.cli`: the `dispytch` command (the supervisor starts workers so)."""

from dispytch.cli import main

main()
