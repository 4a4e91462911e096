"""``python -m scanbench`` runs the command line."""

from scanbench.entry import main

main()
