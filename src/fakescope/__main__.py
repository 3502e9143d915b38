"""``python -m fakescope`` runs the command-line interface."""

from fakescope.cli.main import main

if __name__ == "__main__":
    main()
