"""``python -m scanbench`` runs the command line."""

from scanbench.cli import main

main()
