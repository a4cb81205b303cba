"""Run the command line as ``python -m eyesim``."""

from eyesim.cli import main

if __name__ == "__main__":
    main()
